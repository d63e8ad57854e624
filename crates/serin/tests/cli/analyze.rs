//! `serin analyze --replay`: a recorded request log judged offline.

use crate::support::*;
use std::fmt::Write as _;

/// A log of `seconds` seconds at `rate` requests per second, `share` of
/// them to the canary, whose error rate is `canary_errors`; deterministic.
fn log(seconds: u32, rate: u32, share: f64, canary_errors: f64) -> String {
    let mut out = String::new();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    for s in 0..seconds {
        for r in 0..rate {
            let ts = 1_764_150_000.0 + f64::from(s) + f64::from(r) / f64::from(rate);
            let canary = next() < share;
            let fail = canary && next() < canary_errors;
            let status = if fail { 500 } else { 200 };
            let version = if canary { "canary" } else { "stable" };
            let latency = 10.0 + 10.0 * next();
            writeln!(out, "{{\"ts\": {ts:.3}, \"version\": \"{version}\", \"status\": {status}, \"latency_ms\": {latency:.1}}}").unwrap();
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
fn bad_lines_name_their_line_number() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "requests.jsonl",
        "{\"ts\": 1, \"version\": \"stable\", \"status\": 200, \"latency_ms\": 1}\nnot json\n",
    );
    let out = output(serin().args(["analyze", "--replay"]).arg(&file));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("line 2"), "{}", stderr(&out));
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
