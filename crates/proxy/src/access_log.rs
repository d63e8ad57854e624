//! The access log: one JSON line per answered request in the request-log
//! format `serin analyze --replay` reads:
//! `{"ts": 1764150000.123, "version": "stable", "status": 200, "latency_ms": 12.5}`.
//!
//! Requests never wait for the disk: they hand a small record to a bounded
//! channel (`try_send`) and a background task formats and writes. When the
//! writer falls behind, lines are dropped and counted instead.

use crate::{Version, counters::Counters};
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

/// One answered request.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Line {
    pub ts_ms: u64,
    pub version: Version,
    pub status: u16,
    pub latency: Duration,
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

/// Appends one JSON line; fields are numbers and fixed names, so no escaping
/// is needed.
pub(crate) fn format_line(out: &mut String, line: &Line) {
    let secs = line.ts_ms / 1000;
    let millis = line.ts_ms % 1000;
    let latency_ms = line.latency.as_secs_f64() * 1000.0;
    // Writing to a String cannot fail.
    let _ = writeln!(
        out,
        r#"{{"ts": {secs}.{millis:03}, "version": "{}", "status": {}, "latency_ms": {latency_ms:.3}}}"#,
        line.version.as_str(),
        line.status,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_follow_the_request_log_format() {
        let mut s = String::new();
        format_line(
            &mut s,
            &Line {
                ts_ms: 1_764_150_000_123,
                version: Version::Canary,
                status: 502,
                latency: Duration::from_micros(12_500),
            },
        );
        assert_eq!(
            s,
            "{\"ts\": 1764150000.123, \"version\": \"canary\", \"status\": 502, \"latency_ms\": 12.500}\n"
        );
        let v: serde_json::Value = serde_json::from_str(&s).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v["ts"].as_f64(), Some(1_764_150_000.123));
    }
}
