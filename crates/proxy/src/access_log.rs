//! The access log: one JSON line per answered request in the request-log
//! format `serin analyze --replay` reads:
//! `{"ts": 1764150000.123, "version": "stable", "status": 200, "latency_ms": 12.5}`,
//! followed by two optional fields a replay uses when present: `"weight"`,
//! the canary weight of the route the request was sent by, and `"revision"`,
//! the canary revision that route pointed at (absent between rollouts).
//!
//! Requests never wait for the disk: they hand a small record to a bounded
//! channel (`try_send`) and a background task formats and writes. When the
//! writer falls behind, lines are dropped and counted instead.

use crate::{Version, counters::Counters, routes::Routed};
use std::{fmt::Write as _, path::Path, sync::Arc, time::Duration};
use tokio::{
    io::{AsyncWriteExt, BufWriter},
    sync::{Notify, mpsc},
    task::JoinHandle,
};

/// Lines buffered between requests and the writer.
const CHANNEL_CAPACITY: usize = 16 * 1024;
/// How often written lines reach the file at the latest.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Lines taken from the channel per wake-up.
const BATCH: usize = 256;

/// Revisions longer than this are cut (at a character boundary) in the log,
/// so a line stays far below what a replay reads.
const MAX_REVISION_BYTES: usize = 512;

/// One answered request.
#[derive(Clone, Debug)]
pub(crate) struct Line {
    pub ts_ms: u64,
    pub version: Version,
    pub status: u16,
    pub latency: Duration,
    /// The route it was sent by.
    pub routed: Routed,
}

/// The requests' side: cheap to clone, never blocks.
#[derive(Clone, Debug)]
pub(crate) struct AccessLog {
    tx: mpsc::Sender<Line>,
    counters: Arc<Counters>,
}

/// The writer's side, started by `serve`.
#[derive(Debug)]
pub(crate) struct Writer {
    rx: mpsc::Receiver<Line>,
    file: std::fs::File,
    counters: Arc<Counters>,
    stop: Arc<Notify>,
}

// === impl AccessLog ===

impl AccessLog {
    /// Opens (creates or appends to) `path`.
    pub(crate) fn open(
        path: &Path,
        counters: Arc<Counters>,
        stop: Arc<Notify>,
    ) -> std::io::Result<(AccessLog, Writer)> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let log = AccessLog {
            tx,
            counters: counters.clone(),
        };
        Ok((
            log,
            Writer {
                rx,
                file,
                counters,
                stop,
            },
        ))
    }

    pub(crate) fn record(&self, line: Line) {
        if self.tx.try_send(line).is_err() {
            Counters::incr(&self.counters.log_lines_dropped);
        }
    }
}

// === impl Writer ===

impl Writer {
    pub(crate) fn spawn(self) -> JoinHandle<()> {
        tokio::spawn(self.run())
    }

    async fn run(mut self) {
        let file = tokio::fs::File::from_std(self.file);
        let mut out = BufWriter::with_capacity(64 * 1024, file);
        let mut text = String::with_capacity(BATCH * 80);
        let mut batch = Vec::with_capacity(BATCH);
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut dirty = false;
        loop {
            tokio::select! {
                n = self.rx.recv_many(&mut batch, BATCH) => {
                    if n == 0 {
                        break;
                    }
                    text.clear();
                    for line in batch.drain(..) {
                        format_line(&mut text, &line);
                    }
                    if out.write_all(text.as_bytes()).await.is_err() {
                        Counters::incr(&self.counters.log_write_errors);
                    }
                    dirty = true;
                }
                _ = tick.tick() => {
                    if dirty {
                        if out.flush().await.is_err() {
                            Counters::incr(&self.counters.log_write_errors);
                        }
                        dirty = false;
                    }
                }
                _ = self.stop.notified() => {
                    // Shutdown: take whatever is already queued, then stop.
                    self.rx.close();
                }
            }
        }
        if out.flush().await.is_err() {
            Counters::incr(&self.counters.log_write_errors);
        }
        let mut file = out.into_inner();
        if file.flush().await.is_err() {
            Counters::incr(&self.counters.log_write_errors);
        }
    }
}

/// Appends one JSON line; every field but the revision is a number or a
/// fixed name, and the revision is escaped.
pub(crate) fn format_line(out: &mut String, line: &Line) {
    let secs = line.ts_ms / 1000;
    let millis = line.ts_ms % 1000;
    let latency_ms = line.latency.as_secs_f64() * 1000.0;
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        r#"{{"ts": {secs}.{millis:03}, "version": "{}", "status": {}, "latency_ms": {latency_ms:.3}, "weight": {}"#,
        line.version.as_str(),
        line.status,
        line.routed.weight,
    );
    if let Some(revision) = &line.routed.revision {
        out.push_str(r#", "revision": ""#);
        escape_into(out, cut(revision, MAX_REVISION_BYTES));
        out.push('"');
    }
    out.push_str("}\n");
}

/// `text` cut to at most `max` bytes at a character boundary.
fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Appends `text` as the inside of a JSON string.
fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_follow_the_request_log_format() {
        let mut s = String::new();
        let mut line = Line {
            ts_ms: 1_764_150_000_123,
            version: Version::Canary,
            status: 502,
            latency: Duration::from_micros(12_500),
            routed: Routed {
                weight: 10,
                revision: Some(Arc::from("v2")),
            },
        };
        format_line(&mut s, &line);
        assert_eq!(
            s,
            "{\"ts\": 1764150000.123, \"version\": \"canary\", \"status\": 502, \"latency_ms\": 12.500, \"weight\": 10, \"revision\": \"v2\"}\n"
        );
        let v: serde_json::Value = serde_json::from_str(&s).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v["ts"].as_f64(), Some(1_764_150_000.123));
        // Between rollouts there is no revision.
        line.routed = Routed::default();
        s.clear();
        format_line(&mut s, &line);
        assert!(
            s.ends_with("\"latency_ms\": 12.500, \"weight\": 0}\n"),
            "{s}"
        );
    }

    #[test]
    fn revisions_are_escaped_and_bounded() {
        let mut s = String::new();
        let odd = format!("a\"b\\c\nd\u{1}é{}", "x".repeat(1000));
        format_line(
            &mut s,
            &Line {
                ts_ms: 1_000,
                version: Version::Stable,
                status: 200,
                latency: Duration::ZERO,
                routed: Routed {
                    weight: 0,
                    revision: Some(Arc::from(odd.as_str())),
                },
            },
        );
        let v: serde_json::Value = serde_json::from_str(&s).unwrap_or_else(|e| panic!("{e}: {s}"));
        let revision = v["revision"].as_str().unwrap_or_default();
        assert!(revision.starts_with("a\"b\\c\nd\u{1}é"), "{revision}");
        assert!(revision.len() <= MAX_REVISION_BYTES, "{}", revision.len());
    }
}
