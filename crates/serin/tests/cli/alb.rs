//! `serin run` on a `provider: alb` canary against a real moto_server on
//! loopback, through the official AWS SDK: the listener's forward action
//! follows the rollout's steps (read back from moto while serin runs), and
//! promotion leaves the canary's target group alone at weight 100.

use crate::support::*;
use serin_testkit::moto::{Alb, Moto, REGION};
use std::{
    process::Stdio,
    time::{Duration, Instant},
};

/// The target groups and weights the listener forwards to, sorted.
async fn forward(moto: &Moto, alb: &Alb) -> Vec<(String, i32)> {
    let listeners = moto
        .elb()
        .await
        .describe_listeners()
        .listener_arns(&alb.listener_arn)
        .send()
        .await
        .unwrap();
    let action = listeners.listeners()[0]
        .default_actions()
        .iter()
        .find(|a| a.r#type().is_some_and(|t| t.as_str() == "forward"))
        .unwrap()
        .clone();
    let mut groups: Vec<(String, i32)> = match action.forward_config() {
        Some(config) if !config.target_groups().is_empty() => config
            .target_groups()
            .iter()
            .map(|g| {
                (
                    g.target_group_arn().unwrap().to_owned(),
                    g.weight().unwrap_or(1),
                )
            })
            .collect(),
        _ => vec![(action.target_group_arn().unwrap().to_owned(), 100)],
    };
    groups.sort();
    groups
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_alb_rollout_follows_the_steps_and_promotion_gives_the_canary_100() {
    let moto = Moto::start().await;
    let alb = moto.create_alb().await;
    let dir = tempfile::tempdir().unwrap();
    // An ALB sends serin no request log and moto's CloudWatch has no
    // datapoints for it: the rollout is judged on no metric, so each step
    // passes at its interval and only the router is exercised.
    let file = write(
        dir.path(),
        "shop.yaml",
        &format!(
            "apiVersion: serin.dev/v1alpha1
kind: Canary
metadata:
  name: shop
spec:
  provider: alb
  alb:
    listenerArn: {listener}
    stableTargetGroupArn: {stable}
    region: {REGION}
    endpoint: {endpoint}
  upstreams:
    canary: {canary}
    revision: v2
  analysis:
    interval: 2s
    threshold: 2
    stepWeights: [10, 30, 50]
    metrics: []
",
            listener = alb.listener_arn,
            stable = alb.stable,
            canary = alb.canary,
            endpoint = moto.endpoint,
        ),
    );
    let mut child = serin()
        .args(["run", "--output", "plain"])
        .arg(&file)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The canary group's weight as moto holds it, each change once.
    let mut weights: Vec<i32> = Vec::new();
    let began = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            began.elapsed() < Duration::from_secs(90),
            "serin run did not end within 90 s"
        );
        let groups = forward(&moto, &alb).await;
        let weight = groups
            .iter()
            .find(|(arn, _)| *arn == alb.canary)
            .map_or(0, |(_, weight)| *weight);
        if weights.last() != Some(&weight) {
            weights.push(weight);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let output = child.wait_with_output().unwrap();
    let out = format!("{}\n{}", stdout(&output), stderr(&output));
    assert_eq!(output.status.code(), Some(0), "{out}");
    assert!(out.contains("shop: revision v2 promoted"), "{out}");
    assert_eq!(weights, [0, 10, 30, 50, 100], "{out}");
    // The canary's group is the stable one now, alone at full weight.
    assert_eq!(forward(&moto, &alb).await, [(alb.canary.clone(), 100)]);
}
