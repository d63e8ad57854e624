//! An ALB behind the `Router` port, against a real moto_server on loopback
//! through the official SDK: weights at every step read back from moto,
//! promotion and rollback, a rule instead of the listener, stickiness,
//! drift repaired, and moto unreachable or throttling: the operation fails
//! (so the runtime keeps it pending) and applies once moto answers again.

use aws_sdk_elasticloadbalancingv2::{
    config::Credentials,
    types::{Action, ActionTypeEnum},
};
use serin_providers::{AlbRouter, alb::stickiness_seconds};
use serin_rollout::{
    Route,
    ports::{CanaryTarget, PortError, Router},
};
use serin_spec::AlbSpec;
use serin_testkit::moto::{Alb, Moto, REGION, Relay, RelayMode};

fn spec(alb: &Alb, endpoint: &str, rule: bool) -> AlbSpec {
    AlbSpec {
        listener_arn: alb.listener_arn.clone(),
        rule_arn: rule.then(|| alb.rule_arn.clone()),
        stable_target_group_arn: alb.stable.clone(),
        region: REGION.into(),
        endpoint: Some(endpoint.into()),
    }
}

/// The router with serin's own SDK settings (timeouts, retries) and moto's
/// test credentials.
async fn router(spec: &AlbSpec, stickiness: Option<i32>) -> AlbRouter {
    let config = serin_providers::aws::loader(&spec.region, spec.endpoint.as_deref())
        .credentials_provider(Credentials::new("testing", "testing", None, None, "moto"))
        .load()
        .await;
    AlbRouter::with_config(spec, stickiness, &config).unwrap()
}

fn route(canary_weight: u8) -> Route {
    Route {
        canary_weight,
        ..Route::STABLE
    }
}

fn target(arn: &str) -> CanaryTarget {
    CanaryTarget {
        address: arn.into(),
        revision: arn.rsplit('/').nth(1).unwrap().into(),
    }
}

/// The listener's (or rule's) forward target groups with their weights,
/// read from moto by a client of the test's own.
async fn held(moto: &Moto, alb: &Alb, rule: bool) -> Vec<(String, i32)> {
    let forward = forward_action(moto, alb, rule).await;
    let config = forward.forward_config().unwrap();
    let mut groups: Vec<(String, i32)> = config
        .target_groups()
        .iter()
        .map(|g| {
            (
                g.target_group_arn().unwrap().to_owned(),
                g.weight().unwrap(),
            )
        })
        .collect();
    groups.sort();
    groups
}

async fn forward_action(moto: &Moto, alb: &Alb, rule: bool) -> Action {
    let elb = moto.elb().await;
    let actions = if rule {
        let rules = elb
            .describe_rules()
            .rule_arns(&alb.rule_arn)
            .send()
            .await
            .unwrap();
        rules.rules()[0].actions().to_vec()
    } else {
        let listeners = elb
            .describe_listeners()
            .listener_arns(&alb.listener_arn)
            .send()
            .await
            .unwrap();
        listeners.listeners()[0].default_actions().to_vec()
    };
    actions
        .into_iter()
        .find(|a| a.r#type() == Some(&ActionTypeEnum::Forward))
        .unwrap()
}

fn sorted(mut groups: Vec<(&str, i32)>) -> Vec<(String, i32)> {
    groups.sort();
    groups
        .into_iter()
        .map(|(arn, weight)| (arn.to_owned(), weight))
        .collect()
}

#[tokio::test]
async fn a_rollout_moves_the_listeners_weights_and_promotion_keeps_the_new_group() {
    let moto = Moto::start().await;
    let alb = moto.create_alb().await;
    let router = router(&spec(&alb, &moto.endpoint, false), None).await;

    router.set_canary(&target(&alb.canary)).await.unwrap();
    assert_eq!(
        held(&moto, &alb, false).await,
        sorted(vec![(&alb.stable, 100), (&alb.canary, 0)])
    );
    for weight in [10, 30, 50] {
        router.set_route(route(weight)).await.unwrap();
        assert_eq!(
            held(&moto, &alb, false).await,
            sorted(vec![
                (&alb.stable, 100 - i32::from(weight)),
                (&alb.canary, i32::from(weight))
            ]),
            "at {weight}%"
        );
    }
    router.promote().await.unwrap();
    assert_eq!(
        held(&moto, &alb, false).await,
        sorted(vec![(&alb.canary, 100)])
    );
    router.set_route(Route::STABLE).await.unwrap();
    router.finalise().await.unwrap();
    assert_eq!(
        held(&moto, &alb, false).await,
        sorted(vec![(&alb.canary, 100)]),
        "the promoted group stays stable until the next start"
    );

    // The next rollout starts from the promoted group and rolls back.
    router.set_canary(&target(&alb.next)).await.unwrap();
    router.set_route(route(20)).await.unwrap();
    assert_eq!(
        held(&moto, &alb, false).await,
        sorted(vec![(&alb.canary, 80), (&alb.next, 20)])
    );
    router.set_route(Route::STABLE).await.unwrap();
    router.finalise().await.unwrap();
    assert_eq!(
        held(&moto, &alb, false).await,
        sorted(vec![(&alb.canary, 100)]),
        "after a rollback the stable group has everything"
    );
    // The rule serin does not own was never touched.
    let rule = forward_action(&moto, &alb, true).await;
    assert_eq!(rule.target_group_arn(), Some(alb.stable.as_str()));
}

#[tokio::test]
async fn a_rule_is_driven_instead_of_the_listener_with_stickiness() {
    let moto = Moto::start().await;
    let alb = moto.create_alb().await;
    let seconds = stickiness_seconds(Some(600));
    let router = router(&spec(&alb, &moto.endpoint, true), Some(seconds)).await;
    router.set_canary(&target(&alb.canary)).await.unwrap();
    router.set_route(route(25)).await.unwrap();
    assert_eq!(
        held(&moto, &alb, true).await,
        sorted(vec![(&alb.stable, 75), (&alb.canary, 25)])
    );
    let stickiness = forward_action(&moto, &alb, true)
        .await
        .forward_config()
        .unwrap()
        .target_group_stickiness_config()
        .cloned()
        .unwrap();
    assert_eq!(stickiness.enabled(), Some(true));
    assert_eq!(stickiness.duration_seconds(), Some(600));
    // The listener's default action is not serin's here.
    let listener = forward_action(&moto, &alb, false).await;
    assert_eq!(listener.target_group_arn(), Some(alb.stable.as_str()));
    assert!(
        listener
            .forward_config()
            .is_none_or(|c| c.target_groups().len() <= 1)
    );
}

#[tokio::test]
async fn drift_made_by_hand_is_repaired() {
    let moto = Moto::start().await;
    let alb = moto.create_alb().await;
    let router = router(&spec(&alb, &moto.endpoint, false), None).await;
    router.set_canary(&target(&alb.canary)).await.unwrap();
    router.set_route(route(40)).await.unwrap();

    // Someone puts everything back on the stable group in the console.
    moto.elb()
        .await
        .modify_listener()
        .listener_arn(&alb.listener_arn)
        .default_actions(
            Action::builder()
                .r#type(ActionTypeEnum::Forward)
                .target_group_arn(&alb.stable)
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        router.held().await.unwrap(),
        vec![(alb.stable.clone(), 100)]
    );
    let drift = router.repair().await.unwrap().expect("drift is reported");
    assert!(drift.contains(&alb.listener_arn), "{drift}");
    assert_eq!(
        held(&moto, &alb, false).await,
        sorted(vec![(&alb.stable, 60), (&alb.canary, 40)])
    );
    // Repaired: the next look finds nothing to do.
    assert_eq!(router.repair().await.unwrap(), None);
}

#[tokio::test]
async fn unreachable_or_throttled_stays_an_error_until_aws_answers() {
    let moto = Moto::start().await;
    let alb = moto.create_alb().await;
    let relay = Relay::start(moto.port).await;
    let router = router(&spec(&alb, &relay.endpoint, false), None).await;
    router.set_canary(&target(&alb.canary)).await.unwrap();

    relay.set(RelayMode::Down);
    let down = router.set_route(route(10)).await.unwrap_err();
    assert!(
        matches!(
            down,
            PortError::Unavailable { .. } | PortError::Timeout { .. }
        ),
        "{down}"
    );
    assert_eq!(
        held(&moto, &alb, false).await,
        sorted(vec![(&alb.stable, 100), (&alb.canary, 0)]),
        "nothing reached moto"
    );

    relay.set(RelayMode::Throttle);
    let throttled = router.set_route(route(10)).await.unwrap_err();
    match &throttled {
        PortError::Refused { message, .. } => {
            assert!(message.starts_with("Throttling"), "{message}")
        }
        other => panic!("expected a refusal, got {other}"),
    }

    // The runtime retries the pending route; once AWS answers it applies.
    relay.set(RelayMode::Up);
    router.set_route(route(10)).await.unwrap();
    assert_eq!(
        held(&moto, &alb, false).await,
        sorted(vec![(&alb.stable, 90), (&alb.canary, 10)])
    );
}

#[tokio::test]
async fn a_listener_without_a_forward_action_is_refused() {
    let moto = Moto::start().await;
    let alb = moto.create_alb().await;
    moto.elb()
        .await
        .modify_listener()
        .listener_arn(&alb.listener_arn)
        .default_actions(
            Action::builder()
                .r#type(ActionTypeEnum::FixedResponse)
                .fixed_response_config(
                    aws_sdk_elasticloadbalancingv2::types::FixedResponseActionConfig::builder()
                        .status_code("503")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let router = router(&spec(&alb, &moto.endpoint, false), None).await;
    let error = router.set_canary(&target(&alb.canary)).await.unwrap_err();
    assert!(
        error.to_string().contains("has no forward action"),
        "{error}"
    );
    let bad = router
        .set_canary(&CanaryTarget {
            address: "127.0.0.1:9002".into(),
            revision: "v2".into(),
        })
        .await
        .unwrap_err();
    assert!(bad.to_string().contains("target group ARN"), "{bad}");
}
