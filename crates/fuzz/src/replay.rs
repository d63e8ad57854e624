//! Request logs: arbitrary bytes as the log `serin analyze --replay` reads,
//! line by line through [`parse_record`] and whole through [`replay`] with
//! the real state machine and judge (Flagger's defaults, as without a
//! canary file).
//!
//! Properties:
//! - nothing panics, whatever the bytes;
//! - every line is counted once: as a record, a blank line or a malformed
//!   one, and a malformed one says why;
//! - a record that parses keeps its meaning when written back as the proxy
//!   writes it (timestamp to the millisecond, latency to the microsecond).

use serin_server::replay::{Collect, ReplaySetup, parse_record, replay};
use std::sync::{Arc, OnceLock};

/// Runs the target on one input.
///
/// # Panics
///
/// When a property above fails.
pub fn check(data: &[u8]) {
    const MAX: usize = serin_server::replay::MAX_LINE_BYTES;
    let mut interned = None;
    let (mut lines, mut records, mut blank, mut malformed) = (0u64, 0u64, 0u64, 0u64);
    for line in data.split_inclusive(|b| *b == b'\n') {
        lines += 1;
        // As the replay reads: at most MAX bytes and the newline.
        let overlong = line.len() > MAX + 1 || (line.len() == MAX + 1 && line[MAX] != b'\n');
        let Ok(text) = std::str::from_utf8(line) else {
            malformed += 1;
            continue;
        };
        if overlong {
            malformed += 1;
            continue;
        }
        match parse_record(text, &mut interned) {
            Ok(Some(record)) => {
                records += 1;
                round_trip(&record);
            }
            Ok(None) => blank += 1,
            Err(message) => {
                assert!(!message.is_empty(), "a malformed line without a reason");
                malformed += 1;
            }
        }
    }

    static SETUP: OnceLock<ReplaySetup> = OnceLock::new();
    let setup = SETUP.get_or_init(ReplaySetup::defaults);
    let mut sink = Collect::default();
    let summary = match replay(data, setup, &mut sink) {
        Ok(summary) => summary,
        Err(error) => panic!("replay of an in-memory log failed: {error}"),
    };
    assert_eq!(summary.lines, lines, "lines counted");
    assert_eq!(
        sink.malformed.len() as u64,
        malformed,
        "malformed lines ({lines} lines, {records} records, {blank} blank)"
    );
    for (line, message) in &sink.malformed {
        assert!(
            (1..=lines).contains(line),
            "malformed line {line} of {lines}"
        );
        assert!(
            !message.is_empty(),
            "malformed line {line} without a reason"
        );
    }
}

/// A record written back as the access log writes it parses to itself.
fn round_trip(record: &serin_server::replay::Record) {
    let mut line = serde_json::json!({
        "ts": record.ts_ms as f64 / 1000.0,
        "version": record.version.to_string(),
        "status": record.status,
        "latency_ms": record.latency.as_micros() as f64 / 1000.0,
    });
    if let Some(weight) = record.weight {
        line["weight"] = weight.into();
    }
    if let Some(revision) = &record.revision {
        line["revision"] = revision.as_ref().into();
    }
    let text = line.to_string();
    let mut interned: Option<Arc<str>> = None;
    match parse_record(&text, &mut interned) {
        Ok(Some(again)) => assert_eq!(&again, record, "{text}"),
        other => panic!("a parsed record written back does not parse: {text}: {other:?}"),
    }
}
