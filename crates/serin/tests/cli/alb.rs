//! `serin run` and `serin serve` on a `provider: alb` canary against a real
//! moto_server on loopback, through the official AWS SDK: the listener's
//! forward action follows the rollout's steps (read back from moto while
//! serin runs), and promotion leaves the canary's target group alone at
//! weight 100. The daemon, killed mid-rollout and restarted, resumes at the
//! weight it stored, and the listener never goes back to the stable group
//! alone in between.

use crate::serve::{Serve, messages};
use crate::support::*;
use serin_testkit::moto::{Alb, Moto, REGION};
use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

/// moto's test credentials, and no profile of the machine's.
const AWS_ENV: [(&str, &str); 2] = [
    ("AWS_ACCESS_KEY_ID", "testing"),
    ("AWS_SECRET_ACCESS_KEY", "testing"),
];

/// A canary file for `alb` with the canary's group and revision v2 set: the
/// rollout starts as the file is read. No metric: an ALB sends serin no
/// request log and moto's CloudWatch has no datapoints for it, so each step
/// passes at its interval and only the router is exercised.
fn alb_file(dir: &Path, moto: &Moto, alb: &Alb, interval: &str) -> PathBuf {
    write(
        dir,
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
    interval: {interval}
    threshold: 2
    stepWeights: [10, 30, 50]
    metrics: []
",
            listener = alb.listener_arn,
            stable = alb.stable,
            canary = alb.canary,
            endpoint = moto.endpoint,
        ),
    )
}

/// The canary group's weight in the listener's forward action (0 when the
/// action forwards to stable alone).
async fn canary_weight(moto: &Moto, alb: &Alb) -> i32 {
    forward(moto, alb)
        .await
        .iter()
        .find(|(arn, _)| *arn == alb.canary)
        .map_or(0, |(_, weight)| *weight)
}

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
    let file = alb_file(dir.path(), &moto, &alb, "2s");
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
        let weight = canary_weight(&moto, &alb).await;
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

/// Weights as moto holds them, each change once, polled until `done` says
/// so (bounded by `limit`).
async fn follow(
    moto: &Moto,
    alb: &Alb,
    weights: &mut Vec<i32>,
    limit: Duration,
    mut done: impl FnMut(i32) -> bool,
) -> bool {
    let began = Instant::now();
    while began.elapsed() < limit {
        let weight = canary_weight(moto, alb).await;
        if weights.last() != Some(&weight) {
            weights.push(weight);
        }
        if done(weight) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_drives_an_alb_to_promotion_across_a_restart_at_the_stored_weight() {
    let moto = Moto::start().await;
    let alb = moto.create_alb().await;
    let dir = tempfile::tempdir().unwrap();
    let file = alb_file(dir.path(), &moto, &alb, "3s");
    let api = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let serve = Serve::start_with(dir.path(), &file, api, 0, &AWS_ENV);

    // The file's revision starts a rollout; follow it to its second step.
    let mut weights = Vec::new();
    let stepped = follow(&moto, &alb, &mut weights, Duration::from_secs(60), |w| {
        w == 30
    })
    .await;
    assert!(stepped, "{weights:?} {}", serve.status("shop"));
    serve.kill_9();
    // Nobody moves the listener while serin is down: what it holds is what
    // the store says (the weight is saved before it is applied).
    let held = canary_weight(&moto, &alb).await;
    assert!(held == 30 || held == 50, "{held}");

    let serve = Serve::start_with(dir.path(), &file, api, 1, &AWS_ENV);
    let resumed = serve.status("shop");
    assert_eq!(resumed["phase"], "Progressing", "{resumed}");
    assert_eq!(resumed["revision"], "v2", "{resumed}");
    assert_eq!(resumed["canaryWeight"], held, "{resumed}");
    let promoted = follow(&moto, &alb, &mut weights, Duration::from_secs(90), |_| {
        serve.status("shop")["phase"] == "Succeeded"
    })
    .await;
    assert!(promoted, "{weights:?} {}", serve.status("shop"));
    // Every step once, in order; the listener never fell back to stable
    // alone (weight 0) at the restart.
    assert_eq!(weights, [0, 10, 30, 50, 100], "{:?}", messages(api, "shop"));
    assert_eq!(forward(&moto, &alb).await, [(alb.canary.clone(), 100)]);
    let status = serve.status("shop");
    assert_eq!(status["stable"], alb.canary.as_str(), "{status}");
    let advances: Vec<String> = messages(api, "shop")
        .into_iter()
        .filter(|m| m.starts_with("Advance canary weight"))
        .collect();
    assert_eq!(
        advances,
        [
            "Advance canary weight 0 -> 10 (step 1/3)",
            "Advance canary weight 10 -> 30 (step 2/3)",
            "Advance canary weight 30 -> 50 (step 3/3)"
        ]
    );
}
