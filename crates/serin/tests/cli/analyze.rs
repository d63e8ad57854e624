//! `serin analyze --replay`: a recorded request log judged offline.

use crate::support::*;
use std::fmt::Write as _;

/// A log of `seconds` seconds at `rate` requests per second, `share` of
/// them to the canary, whose error rate is `canary_errors`; deterministic.
fn log(seconds: u32, rate: u32, share: f64, canary_errors: f64) -> String {
    log_from(0, seconds, rate, share, canary_errors, "")
}

/// As [`log`], from `from` seconds on, with `extra` fields on every line.
fn log_from(
    from: u32,
    seconds: u32,
    rate: u32,
    share: f64,
    canary_errors: f64,
    extra: &str,
) -> String {
    let mut out = String::new();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    for s in from..from + seconds {
        for r in 0..rate {
            let ts = 1_764_150_000.0 + f64::from(s) + f64::from(r) / f64::from(rate);
            let canary = next() < share;
            let fail = canary && next() < canary_errors;
            let status = if fail { 500 } else { 200 };
            let version = if canary { "canary" } else { "stable" };
            let latency = 10.0 + 10.0 * next();
            writeln!(out, "{{\"ts\": {ts:.3}, \"version\": \"{version}\", \"status\": {status}, \"latency_ms\": {latency:.1}{extra}}}").unwrap();
        }
    }
    out
}

#[test]
fn a_healthy_log_never_rolls_back() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "requests.jsonl", &log(600, 20, 0.2, 0.0));
    let out = output(serin().args(["analyze", "--replay"]).arg(&file));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!lines.is_empty());
    for line in &lines {
        assert!(line["ts"].as_f64().is_some());
        assert!(line["reasons"].is_array());
        assert_ne!(line["decision"], "rollback");
    }
}

#[test]
fn a_failing_canary_rolls_back_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "requests.jsonl", &log(600, 20, 0.2, 0.2));
    for judge in ["sequential", "threshold"] {
        let out = output(
            serin()
                .args(["analyze", "--judge", judge, "--replay"])
                .arg(&file),
        );
        assert_eq!(out.status.code(), Some(1), "{judge}: {}", stderr(&out));
        let last: serde_json::Value =
            serde_json::from_str(stdout(&out).lines().last().unwrap()).unwrap();
        assert_eq!(last["decision"], "rollback", "{judge}");
        assert!(!last["reasons"].as_array().unwrap().is_empty());
    }
}

#[test]
fn bad_lines_are_named_counted_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("not json\n");
    text.push_str(&log(300, 20, 0.2, 0.0));
    text.push_str(
        "{\"ts\": 1764150400, \"version\": \"blue\", \"status\": 200, \"latency_ms\": 1}\n",
    );
    let file = write(dir.path(), "requests.jsonl", &text);
    let out = output(serin().args(["analyze", "--replay"]).arg(&file));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("requests.jsonl: line 1: not a request record"),
        "{err}"
    );
    assert!(err.contains("requests.jsonl: line 6002: version"), "{err}");
    assert!(err.contains("2 malformed lines skipped"), "{err}");
    assert!(!stdout(&out).is_empty());
}

#[test]
fn a_log_with_nothing_to_judge_is_invalid_input() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("empty.jsonl", String::new(), "no request record"),
        (
            "garbage.jsonl",
            "garbage\n{\"ts\": \"soon\"}\n\u{1}\n".to_owned(),
            "none of its 3 lines is a request record",
        ),
        (
            "stable.jsonl",
            log(60, 10, 0.0, 0.0),
            "no request to the canary in its 600 requests",
        ),
    ];
    for (name, text, why) in cases {
        let file = write(dir.path(), name, &text);
        let out = output(serin().args(["analyze", "--replay"]).arg(&file));
        assert_eq!(out.status.code(), Some(2), "{name}: {}", stderr(&out));
        assert!(stdout(&out).is_empty(), "{name}: {}", stdout(&out));
        let err = stderr(&out);
        assert!(err.contains(&format!("{name}: {why}")), "{name}: {err}");
    }
    let out = output(
        serin()
            .args(["analyze", "--replay"])
            .arg(dir.path().join("missing.jsonl")),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("missing.jsonl: cannot open"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn several_rollouts_are_judged_one_after_the_other_with_a_summary_each() {
    let dir = tempfile::tempdir().unwrap();
    // v2 fails and is rolled back; the route goes back to stable; v3 is healthy.
    let mut text = log_from(0, 120, 20, 0.2, 0.2, r#", "weight": 10, "revision": "v2""#);
    text.push_str(&log_from(120, 60, 20, 0.0, 0.0, r#", "weight": 0"#));
    text.push_str(&log_from(
        180,
        600,
        20,
        0.2,
        0.0,
        r#", "weight": 10, "revision": "v3""#,
    ));
    let file = write(dir.path(), "requests.jsonl", &text);
    let out = output(serin().args(["analyze", "--replay"]).arg(&file));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let first: Vec<_> = lines.iter().filter(|l| l["rollout"] == 1).collect();
    let second: Vec<_> = lines.iter().filter(|l| l["rollout"] == 2).collect();
    assert_eq!(first.last().unwrap()["decision"], "rollback");
    assert_eq!(first.last().unwrap()["revision"], "v2");
    assert!(!second.is_empty());
    assert!(
        second
            .iter()
            .all(|l| l["decision"] != "rollback" && l["revision"] == "v3")
    );
    // Every line keeps the per-tick contract.
    for line in &lines {
        assert!(
            line["ts"].as_f64().is_some() && line["reasons"].is_array(),
            "{line}"
        );
    }
    let err = stderr(&out);
    assert!(
        err.contains("requests.jsonl: rollout 1 (revision v2): rolled back"),
        "{err}"
    );
    assert!(
        err.contains("requests.jsonl: rollout 2 (revision v3): "),
        "{err}"
    );
    assert!(err.contains("2 rollouts judged: 1 rolled back"), "{err}");
    // One of them only.
    let out = output(
        serin()
            .args(["analyze", "--revision", "v3", "--replay"])
            .arg(&file),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out)
            .lines()
            .all(|l| l.contains(r#""revision":"v3""#))
    );
    let out = output(
        serin()
            .args(["analyze", "--revision", "v9", "--replay"])
            .arg(&file),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no rollout of revision \"v9\""),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_config_file_sets_the_analysis() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "requests.jsonl", &log(300, 20, 0.2, 0.0));
    let out = output(serin().args(["demo", "--print-config"]));
    let config = write(dir.path(), "demo.yaml", &stdout(&out));
    let out = output(
        serin()
            .args(["analyze", "--replay"])
            .arg(&file)
            .arg("--config")
            .arg(&config),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // The demo's 6 s interval gives many more ticks than the default minute.
    assert!(stdout(&out).lines().count() >= 4, "{}", stdout(&out));
}
