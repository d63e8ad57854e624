//! An AWS Application Load Balancer as a [`Router`]: serin owns the forward
//! action of one listener (its default action) or of one listener rule
//! (`spec.alb.ruleArn`) and splits it between the stable and the canary
//! target group by weight (`ForwardConfig.TargetGroups`), with the official
//! AWS SDK for Rust.
//!
//! Every operation reads the action back first (`DescribeListeners` /
//! `DescribeRules`), writes only when it differs from what serin wants
//! (`ModifyListener` / `ModifyRule`), and reads it back again: a change made
//! by hand in the console is repaired by the next operation or by
//! [`AlbRouter::repair`], and a write the ALB did not keep is an error. The
//! other actions of the listener or rule (authentication before the forward,
//! say) are kept as they are, and so is the forward action's stickiness
//! unless the canary asks for session affinity.
//!
//! A call AWS refuses (throttled, access denied, a target group not found)
//! or that never arrives is returned as an error: the runtime keeps the
//! operation pending and retries it with backoff, and the analysis holds.

use crate::aws::{port_error, sdk_config};
use crate::desired::{Balancer, Steered};
use aws_sdk_elasticloadbalancingv2::{
    Client,
    types::{
        Action, ActionTypeEnum, ForwardActionConfig, TargetGroupStickinessConfig, TargetGroupTuple,
    },
};
use serin_rollout::ports::{BoxFuture, PortError};
use serin_spec::{
    AlbSpec,
    alb::{ArnKind, DEFAULT_STICKINESS_SECONDS, MAX_STICKINESS_SECONDS, parse_arn},
};

/// The weight of a version that takes all traffic. ALB weights go from 0 to
/// 999; serin's percentages fit as they are.
const FULL_WEIGHT: i32 = 100;

/// The target groups serin wants the forward action to hold.
pub type Desired = crate::desired::Desired<String>;

/// The forward action serin writes: what [`AlbRouter`] sends and what
/// `serin render` prints come from here, so they never disagree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForwardPlan {
    /// Target group ARN and weight, stable first.
    pub target_groups: Vec<(String, i32)>,
    /// Group stickiness in seconds, when the canary asks for session
    /// affinity; `None` leaves the action's stickiness as it is.
    pub stickiness: Option<i32>,
}

// === impl ForwardPlan ===

impl ForwardPlan {
    /// The forward action for `desired`: both target groups while a canary
    /// is set (weight 0 included: the ALB accepts it and the action shows
    /// which group is next), one at full weight otherwise or once the canary
    /// is the stable one.
    pub fn new(desired: &Desired, stickiness: Option<i32>) -> ForwardPlan {
        let weight = i32::from(desired.canary_weight).min(FULL_WEIGHT);
        let target_groups = match &desired.canary {
            Some(canary) if *canary != desired.stable => vec![
                (desired.stable.clone(), FULL_WEIGHT - weight),
                (canary.clone(), weight),
            ],
            _ => vec![(desired.stable.clone(), FULL_WEIGHT)],
        };
        ForwardPlan {
            target_groups,
            stickiness,
        }
    }

    /// The action as the Elastic Load Balancing API spells it in JSON
    /// (`{"Type":"forward","ForwardConfig":{...}}`), for `serin render`.
    pub fn to_json(&self) -> serde_json::Value {
        let groups: Vec<serde_json::Value> = self
            .target_groups
            .iter()
            .map(|(arn, weight)| serde_json::json!({"TargetGroupArn": arn, "Weight": weight}))
            .collect();
        let mut config = serde_json::json!({ "TargetGroups": groups });
        if let Some(seconds) = self.stickiness
            && let Some(object) = config.as_object_mut()
        {
            object.insert(
                "TargetGroupStickinessConfig".into(),
                serde_json::json!({"Enabled": true, "DurationSeconds": seconds}),
            );
        }
        serde_json::json!({"Type": "forward", "ForwardConfig": config})
    }

    /// The SDK's action replacing `existing` (its order and, unless the
    /// plan sets one, its stickiness kept).
    fn to_action(&self, existing: Option<&Action>) -> Action {
        let mut config = ForwardActionConfig::builder().set_target_groups(Some(
            self.target_groups
                .iter()
                .map(|(arn, weight)| {
                    TargetGroupTuple::builder()
                        .target_group_arn(arn)
                        .weight(*weight)
                        .build()
                })
                .collect(),
        ));
        let stickiness = match self.stickiness {
            Some(seconds) => Some(
                TargetGroupStickinessConfig::builder()
                    .enabled(true)
                    .duration_seconds(seconds)
                    .build(),
            ),
            None => existing
                .and_then(Action::forward_config)
                .and_then(ForwardActionConfig::target_group_stickiness_config)
                .cloned(),
        };
        config = config.set_target_group_stickiness_config(stickiness);
        Action::builder()
            .r#type(ActionTypeEnum::Forward)
            .set_order(existing.and_then(Action::order))
            .forward_config(config.build())
            .build()
    }

    /// Whether `action` already forwards as planned: the same target groups
    /// at the same weights (in any order) and, when the plan sets it, the
    /// same stickiness.
    fn is_held_by(&self, action: &Action) -> bool {
        let mut held = held_groups(action);
        held.sort();
        let mut wanted = self.target_groups.clone();
        wanted.sort();
        if held != wanted {
            return false;
        }
        match self.stickiness {
            None => true,
            Some(seconds) => action
                .forward_config()
                .and_then(ForwardActionConfig::target_group_stickiness_config)
                .is_some_and(|s| {
                    s.enabled() == Some(true) && s.duration_seconds() == Some(seconds)
                }),
        }
    }
}

/// The target groups and weights a forward action holds. An action naming
/// one group by `TargetGroupArn` alone sends it everything.
fn held_groups(action: &Action) -> Vec<(String, i32)> {
    match action.forward_config() {
        Some(config) if !config.target_groups().is_empty() => config
            .target_groups()
            .iter()
            .map(|group| {
                (
                    group.target_group_arn().unwrap_or_default().to_owned(),
                    // The API's default weight.
                    group.weight().unwrap_or(1),
                )
            })
            .collect(),
        _ => action
            .target_group_arn()
            .map(|arn| vec![(arn.to_owned(), FULL_WEIGHT)])
            .unwrap_or_default(),
    }
}

/// The group stickiness a canary's session affinity asks for: its
/// `maxAge` (or a day), within what an ALB accepts.
pub fn stickiness_seconds(max_age: Option<i64>) -> i32 {
    let seconds = max_age
        .unwrap_or(DEFAULT_STICKINESS_SECONDS)
        .clamp(1, MAX_STICKINESS_SECONDS);
    // Clamped to at most 604800 above: it fits in an i32.
    i32::try_from(seconds).unwrap_or(i32::MAX)
}

/// The group stickiness of `canary`: its `analysis.sessionAffinity`, when
/// it asks for one.
pub fn stickiness_of(canary: &serin_spec::Canary) -> Option<i32> {
    canary
        .analysis()
        .session_affinity
        .as_ref()
        .map(|affinity| stickiness_seconds(affinity.max_age))
}

/// What serin owns: the listener's default forward action or a rule's.
#[derive(Clone, Debug)]
enum Owned {
    /// `spec.alb.listenerArn`'s default actions.
    Listener(String),
    /// `spec.alb.ruleArn`'s actions.
    Rule(String),
}

/// An AWS Application Load Balancer behind the
/// [`Router`](serin_rollout::ports::Router) port: the desired state
/// ([`Steered`]) over the forward action serin owns.
pub type AlbRouter = Steered<AlbForward>;

/// The forward action serin owns, and the client that reads and writes it.
#[derive(Debug)]
pub struct AlbForward {
    client: Client,
    owned: Owned,
    stickiness: Option<i32>,
    /// `alb listener ARN` / `alb rule ARN`, for messages.
    system: String,
}

// === impl AlbRouter ===

impl AlbRouter {
    /// A router for the canary's `spec.alb`, everything on the stable target
    /// group. `stickiness` is the group stickiness in seconds when the
    /// canary asks for session affinity ([`stickiness_seconds`]).
    /// Validation checked the block; should it be wrong anyway it is
    /// refused here, never guessed.
    pub async fn new(spec: &AlbSpec, stickiness: Option<i32>) -> Result<Self, PortError> {
        let config = sdk_config(&spec.region, spec.endpoint.as_deref()).await;
        Self::with_config(spec, stickiness, &config)
    }

    /// [`new`](Self::new) with an SDK configuration made elsewhere (tests
    /// give theirs credentials of their own; `spec.alb.region` and
    /// `endpoint` are then the configuration's).
    pub fn with_config(
        spec: &AlbSpec,
        stickiness: Option<i32>,
        config: &aws_config::SdkConfig,
    ) -> Result<Self, PortError> {
        let refused = |message: String| PortError::Refused {
            system: "alb".into(),
            message,
        };
        parse_arn(&spec.listener_arn, ArnKind::Listener)
            .map_err(|e| refused(format!("spec.alb.listenerArn: {e}")))?;
        parse_arn(&spec.stable_target_group_arn, ArnKind::TargetGroup)
            .map_err(|e| refused(format!("spec.alb.stableTargetGroupArn: {e}")))?;
        if spec.region.trim().is_empty() {
            return Err(refused("spec.alb.region: required".into()));
        }
        let owned = match &spec.rule_arn {
            Some(rule) => {
                parse_arn(rule, ArnKind::Rule)
                    .map_err(|e| refused(format!("spec.alb.ruleArn: {e}")))?;
                Owned::Rule(rule.clone())
            }
            None => Owned::Listener(spec.listener_arn.clone()),
        };
        let system = match &owned {
            Owned::Listener(arn) => format!("alb listener {arn}"),
            Owned::Rule(arn) => format!("alb rule {arn}"),
        };
        let forward = AlbForward {
            client: Client::new(config),
            owned,
            stickiness,
            system,
        };
        Ok(Steered::new_with(
            forward,
            spec.stable_target_group_arn.clone(),
        ))
    }

    /// The forward action serin wants now.
    pub fn plan(&self) -> ForwardPlan {
        ForwardPlan::new(&self.desired(), self.balancer().stickiness)
    }

    /// The target groups and weights the ALB holds now, read back.
    pub async fn held(&self) -> Result<Vec<(String, i32)>, PortError> {
        let forward = self.balancer();
        let actions = forward.read().await?;
        let (_, action) = forward.forward_of(&actions)?;
        Ok(held_groups(action))
    }
}

// === impl AlbForward ===

impl AlbForward {
    /// Reads the action back and, when it differs from `desired`, writes it
    /// and reads it back again; says what it held before.
    async fn bring_to(&self, desired: &Desired) -> Result<Option<String>, PortError> {
        let plan = ForwardPlan::new(desired, self.stickiness);
        let actions = self.read().await?;
        let (index, forward) = self.forward_of(&actions)?;
        if plan.is_held_by(forward) {
            return Ok(None);
        }
        let before = held_groups(forward);
        tracing::info!(system = %self.system, held = ?before, wanted = ?plan.target_groups, "updating the ALB's forward action");
        let replacement = plan.to_action(Some(forward));
        let mut written: Vec<Action> = actions.iter().map(keep_secret).collect();
        written[index] = replacement;
        self.write(written).await?;
        let actions = self.read().await?;
        let (_, forward) = self.forward_of(&actions)?;
        if plan.is_held_by(forward) {
            Ok(Some(format!(
                "{} forwarded {before:?}, rewritten to {:?}",
                self.system, plan.target_groups
            )))
        } else {
            Err(PortError::Refused {
                system: self.system.clone(),
                message: format!(
                    "the forward action reads back as {:?} after serin wrote {:?}",
                    held_groups(forward),
                    plan.target_groups
                ),
            })
        }
    }

    /// The forward action among `actions`, with its index.
    fn forward_of<'a>(&self, actions: &'a [Action]) -> Result<(usize, &'a Action), PortError> {
        actions
            .iter()
            .enumerate()
            .find(|(_, action)| action.r#type() == Some(&ActionTypeEnum::Forward))
            .ok_or_else(|| PortError::Refused {
                system: self.system.clone(),
                message: "has no forward action: serin changes the weights of an existing forward action; give it one (to the stable target group) first".into(),
            })
    }

    /// The listener's default actions or the rule's actions.
    async fn read(&self) -> Result<Vec<Action>, PortError> {
        match &self.owned {
            Owned::Listener(arn) => {
                let answer = self
                    .client
                    .describe_listeners()
                    .listener_arns(arn)
                    .send()
                    .await
                    .map_err(|e| port_error(&self.system, e))?;
                let listener = answer.listeners().first().ok_or_else(|| self.not_found())?;
                Ok(listener.default_actions().to_vec())
            }
            Owned::Rule(arn) => {
                let answer = self
                    .client
                    .describe_rules()
                    .rule_arns(arn)
                    .send()
                    .await
                    .map_err(|e| port_error(&self.system, e))?;
                let rule = answer.rules().first().ok_or_else(|| self.not_found())?;
                Ok(rule.actions().to_vec())
            }
        }
    }

    /// Replaces the listener's default actions or the rule's actions.
    async fn write(&self, actions: Vec<Action>) -> Result<(), PortError> {
        match &self.owned {
            Owned::Listener(arn) => self
                .client
                .modify_listener()
                .listener_arn(arn)
                .set_default_actions(Some(actions))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| port_error(&self.system, e)),
            Owned::Rule(arn) => self
                .client
                .modify_rule()
                .rule_arn(arn)
                .set_actions(Some(actions))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| port_error(&self.system, e)),
        }
    }

    fn not_found(&self) -> PortError {
        PortError::Refused {
            system: self.system.clone(),
            message: "not found".into(),
        }
    }
}

/// An action to write back as read, except that an OIDC authentication
/// action (whose client secret is never read back) keeps its secret.
fn keep_secret(action: &Action) -> Action {
    match action.authenticate_oidc_config() {
        Some(oidc) if oidc.client_secret().is_none() => {
            let mut oidc = oidc.clone();
            oidc.use_existing_client_secret = Some(true);
            let mut action = action.clone();
            action.authenticate_oidc_config = Some(oidc);
            action
        }
        _ => action.clone(),
    }
}

impl Balancer for AlbForward {
    type Addr = String;

    fn name(&self) -> &str {
        "alb"
    }

    fn canary_addr(&self, address: &str) -> Result<String, PortError> {
        parse_arn(address, ArnKind::TargetGroup)
            .map(|_| address.to_owned())
            .map_err(|message| PortError::Refused {
                system: "alb".into(),
                message: format!("canary: {message}"),
            })
    }

    fn sync<'a>(
        &'a self,
        desired: &'a Desired,
    ) -> BoxFuture<'a, Result<Option<String>, PortError>> {
        Box::pin(self.bring_to(desired))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TG1: &str =
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/shop-v1/73e2d6bc24d8a067";
    const TG2: &str =
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/shop-v2/83e2d6bc24d8a067";

    fn desired(canary: Option<&str>, weight: u8) -> Desired {
        Desired {
            stable: TG1.into(),
            canary: canary.map(String::from),
            canary_weight: weight,
        }
    }

    #[test]
    fn the_plan_follows_the_rollout() {
        let groups = |d: &Desired| ForwardPlan::new(d, None).target_groups;
        assert_eq!(groups(&desired(None, 0)), [(TG1.to_owned(), 100)]);
        assert_eq!(
            groups(&desired(Some(TG2), 0)),
            [(TG1.to_owned(), 100), (TG2.to_owned(), 0)]
        );
        assert_eq!(
            groups(&desired(Some(TG2), 30)),
            [(TG1.to_owned(), 70), (TG2.to_owned(), 30)]
        );
        assert_eq!(
            groups(&desired(Some(TG2), 250)),
            [(TG1.to_owned(), 0), (TG2.to_owned(), 100)]
        );
        assert_eq!(groups(&desired(Some(TG1), 40)), [(TG1.to_owned(), 100)]);
    }

    #[test]
    fn json_and_sdk_actions_agree() {
        let plan = ForwardPlan::new(&desired(Some(TG2), 10), Some(3600));
        assert_eq!(
            plan.to_json(),
            serde_json::json!({
                "Type": "forward",
                "ForwardConfig": {
                    "TargetGroups": [
                        {"TargetGroupArn": TG1, "Weight": 90},
                        {"TargetGroupArn": TG2, "Weight": 10},
                    ],
                    "TargetGroupStickinessConfig": {"Enabled": true, "DurationSeconds": 3600},
                },
            })
        );
        let action = plan.to_action(None);
        assert!(plan.is_held_by(&action));
        assert_eq!(held_groups(&action), plan.target_groups);
        let other = ForwardPlan::new(&desired(Some(TG2), 20), Some(3600));
        assert!(!other.is_held_by(&action));
        let unsticky = ForwardPlan::new(&desired(Some(TG2), 10), Some(60));
        assert!(!unsticky.is_held_by(&action));
        let no_stickiness = ForwardPlan::new(&desired(None, 0), None);
        assert!(!no_stickiness.to_json().to_string().contains("Stickiness"));
        // Stickiness set by hand is kept when the canary asks for none.
        let kept = no_stickiness.to_action(Some(&action));
        assert_eq!(
            kept.forward_config()
                .and_then(|c| c.target_group_stickiness_config())
                .and_then(|s| s.duration_seconds()),
            Some(3600)
        );
    }

    #[test]
    fn a_single_target_group_arn_holds_everything() {
        let action = Action::builder()
            .r#type(ActionTypeEnum::Forward)
            .target_group_arn(TG1)
            .build();
        assert!(ForwardPlan::new(&desired(None, 0), None).is_held_by(&action));
        assert!(!ForwardPlan::new(&desired(Some(TG2), 0), None).is_held_by(&action));
    }

    #[test]
    fn stickiness_stays_within_what_an_alb_accepts() {
        assert_eq!(stickiness_seconds(None), 86_400);
        assert_eq!(stickiness_seconds(Some(0)), 1);
        assert_eq!(stickiness_seconds(Some(i64::MAX)), 604_800);
        assert_eq!(stickiness_seconds(Some(120)), 120);
    }
}
