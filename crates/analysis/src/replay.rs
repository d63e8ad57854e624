//! Judging a recorded request log offline, exactly as the live system would.
//!
//! The log is the proxy's access log format, one JSON object per line:
//! `{"ts": 1764150000.123, "version": "stable", "status": 200, "latency_ms": 12.5}`.
//! Lines are parsed one at a time (memory does not grow with the log),
//! bucketed by second, and fed to an [`Analyzer`] on a simulated clock with
//! the runtime's protocol: `observe` + `early` after every second, `evaluate`
//! every `interval` from the first request, `step_advanced` when a step
//! passes. Progression is modelled like the state machine: `Pass` advances a
//! step (and promotes after the last), `Fail` counts a failed check and rolls
//! back when `threshold` checks have failed (Flagger's cumulative count, checked at the same tick: one
//! interval sooner than Flagger, which checks at the next tick), `Hold`
//! stays, `Rollback` rolls back at once.
//!
//! The log records what the router did, so the modelled weight only labels
//! the reports: the judges use the requests each version really served.
//! Custom metrics have no values in a request log and are left out.

use crate::{
    config::{AnalysisConfig, ConfigError, MetricKind},
    decision::{Decision, MetricEvidence, Verdict},
    input::TickInput,
    judge::Analyzer,
};
use serde::{Deserialize, Serialize};
use serin_stats::{Pair, Version, Window};
use std::{
    borrow::Cow,
    collections::VecDeque,
    io::{BufRead, Read},
    time::Duration,
};

/// The longest line a request log may have. A record is under 200 bytes; the
/// limit keeps a log without newlines (or a hostile one) from being read
/// into memory whole.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// Why a replay stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The analysis configuration is invalid.
    #[error("invalid analysis configuration: {0}")]
    Config(#[from] ConfigError),
    /// Reading the log failed.
    #[error("line {line}: read error: {source}")]
    Io {
        /// 1-based line number where reading failed.
        line: u64,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A line is longer than [`MAX_LINE_BYTES`].
    #[error("line {line}: longer than {MAX_LINE_BYTES} bytes; not a request record")]
    LineTooLong {
        /// 1-based line number.
        line: u64,
    },
    /// A line is not a request record.
    #[error("line {line}: {message}")]
    Parse {
        /// 1-based line number.
        line: u64,
        /// What is wrong with it.
        message: String,
    },
}

/// What the rollout does after a tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Keep going (the step may have advanced, held or counted a failure).
    Continue,
    /// Rolled back: the replay ends.
    Rollback,
    /// The last step passed: the replay ends.
    Promote,
}

/// One analysis tick of a replay, as `serin analyze` prints it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TickReport {
    /// Unix seconds of the tick (or of the early rollback).
    pub ts: f64,
    /// What the rollout does next.
    pub decision: Outcome,
    /// The judge's verdict behind it.
    pub verdict: Verdict,
    /// Why, with numbers.
    pub reasons: Vec<String>,
    /// The canary weight during the judged interval, percent.
    pub weight: u8,
    /// Failed checks so far (threshold and Mann-Whitney judges).
    pub failed_checks: u32,
    /// Per-metric evidence.
    pub metrics: Vec<MetricEvidence>,
}

#[derive(Deserialize)]
struct Record<'a> {
    ts: f64,
    #[serde(borrow)]
    version: Cow<'a, str>,
    status: u16,
    latency_ms: f64,
}

/// Judges the request log in `reader` under `config`, yielding one report
/// per analysis tick (plus an early rollback between ticks), and ending
/// after the first rollback, after promotion, at the end of the log or at the
/// first error.
pub fn replay<R: BufRead>(reader: R, config: &AnalysisConfig) -> Replay<R> {
    let mut config = config.clone();
    config
        .metrics
        .retain(|m| matches!(m.kind, MetricKind::Builtin(_)));
    let analyzer = Analyzer::new(config.clone());
    let span = config.longest_window();
    // A configuration error is the only item: the log is not read.
    let (analyzer, pending) = match analyzer {
        Ok(a) => (Some(a), VecDeque::new()),
        Err(e) => (None, VecDeque::from([Err(ReplayError::Config(e))])),
    };
    let done = analyzer.is_none();
    let interval_ms = u64::try_from(config.interval.as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    Replay {
        reader,
        buf: String::new(),
        line: 0,
        analyzer,
        interval_ms,
        windows: [Window::covering(span), Window::covering(span)],
        delta: Pair::default(),
        second: None,
        next_tick: 0,
        step: 0,
        failed: 0,
        done,
        pending,
        held: None,
        config,
    }
}

/// The iterator [`replay`] returns.
#[derive(Debug)]
pub struct Replay<R> {
    reader: R,
    buf: String,
    line: u64,
    analyzer: Option<Analyzer>,
    config: AnalysisConfig,
    interval_ms: u64,
    /// Per-version sliding windows, as the proxy's recorder keeps them.
    windows: [Window; 2],
    /// Requests of the current second.
    delta: Pair,
    /// Start (ms) of the second being filled.
    second: Option<u64>,
    next_tick: u64,
    step: usize,
    failed: u32,
    done: bool,
    pending: VecDeque<Result<TickReport, ReplayError>>,
    /// A record past the current second, applied once the seconds before it are closed.
    held: Option<Held>,
}

// === impl Replay ===

impl<R: BufRead> Replay<R> {
    fn weight(&self) -> u8 {
        self.config.steps.get(self.step).copied().unwrap_or(100)
    }

    fn report(&self, at_ms: u64, decision: Outcome, d: Decision) -> TickReport {
        TickReport {
            ts: at_ms as f64 / 1000.0,
            decision,
            verdict: d.verdict,
            reasons: d.reasons,
            weight: self.weight(),
            failed_checks: self.failed,
            metrics: d.metrics,
        }
    }

    /// Closes the second starting at `start`: observe, early, and the tick if one is due.
    fn close_second(&mut self, start: u64) {
        let at = start.saturating_add(1000);
        let weight = self.weight();
        let Some(analyzer) = self.analyzer.as_mut() else {
            return;
        };
        analyzer.observe(at, weight, &self.delta);
        self.delta.stable.clear();
        self.delta.canary.clear();
        if let Some(d) = analyzer.early(at) {
            let r = self.report(at, Outcome::Rollback, d);
            self.pending.push_back(Ok(r));
            self.done = true;
            return;
        }
        while at >= self.next_tick && !self.done {
            let tick = self.next_tick;
            self.next_tick = self.next_tick.saturating_add(self.interval_ms);
            self.tick(tick);
        }
    }

    fn tick(&mut self, at: u64) {
        let [stable, canary] = &self.windows;
        let now = at.saturating_sub(1);
        let input = TickInput::builtin(&self.config, |span: Duration| Pair {
            stable: stable.last(now, span),
            canary: canary.last(now, span),
        });
        let Some(analyzer) = self.analyzer.as_mut() else {
            return;
        };
        let d = analyzer.evaluate(at, &input);
        let outcome = match d.verdict {
            Verdict::Pass if self.step + 1 >= self.config.steps.len() => Outcome::Promote,
            Verdict::Pass => Outcome::Continue,
            Verdict::Hold => Outcome::Continue,
            Verdict::Fail => {
                self.failed = self.failed.saturating_add(1);
                if self.failed >= self.config.threshold {
                    Outcome::Rollback
                } else {
                    Outcome::Continue
                }
            }
            Verdict::Rollback => Outcome::Rollback,
        };
        let passed = d.verdict == Verdict::Pass;
        let r = self.report(at, outcome, d);
        self.pending.push_back(Ok(r));
        match outcome {
            Outcome::Continue if passed => {
                self.step += 1;
                let w = self.weight();
                if let Some(a) = self.analyzer.as_mut() {
                    a.step_advanced(at, w);
                }
            }
            Outcome::Continue => {}
            Outcome::Rollback | Outcome::Promote => self.done = true,
        }
    }

    fn fail(&mut self, e: ReplayError) {
        self.pending.push_back(Err(e));
        self.done = true;
    }

    /// Applies the held record or reads and applies one line; false at the
    /// end of the log.
    fn step_line(&mut self) -> bool {
        if let Some(record) = self.held.take() {
            return self.apply(record);
        }
        self.buf.clear();
        self.line += 1;
        // One byte over the limit tells a line that is too long from one that fits.
        let limit = MAX_LINE_BYTES as u64 + 1;
        let read = (&mut self.reader).take(limit).read_line(&mut self.buf);
        if matches!(read, Ok(n) if n > MAX_LINE_BYTES) {
            let line = self.line;
            self.fail(ReplayError::LineTooLong { line });
            return false;
        }
        match read {
            Ok(0) => {
                if let Some(s) = self.second.take() {
                    self.close_second(s);
                }
                self.done = true;
                return false;
            }
            Ok(_) => {}
            Err(source) => {
                let line = self.line;
                self.fail(ReplayError::Io { line, source });
                return false;
            }
        }
        let parsed = parse(self.buf.trim(), self.line);
        let (ts, version, status, latency_ms) = match parsed {
            Ok(Some(r)) => r,
            Ok(None) => return true,
            Err(e) => {
                self.fail(e);
                return false;
            }
        };
        let ts_ms = (ts * 1000.0) as u64;
        let latency = Duration::from_micros((latency_ms * 1000.0) as u64);
        self.apply(Held {
            second: ts_ms - ts_ms % 1000,
            version,
            status,
            latency,
        })
    }

    /// Applies one record, or closes the next second before it and holds it
    /// back: a gap in the log yields its ticks as they are read, instead of
    /// queueing a report per interval of the gap.
    fn apply(&mut self, record: Held) -> bool {
        let current = match self.second {
            None => {
                self.next_tick = record.second.saturating_add(self.interval_ms);
                record.second
            }
            Some(cur) => cur,
        };
        // Late records (clock skew in the log) count in the current second.
        if record.second > current {
            self.close_second(current);
            self.second = Some(current.saturating_add(1000));
            if !self.done {
                self.held = Some(record);
            }
            return !self.done;
        }
        self.second = Some(current);
        self.delta
            .get_mut(record.version)
            .record(record.status, record.latency);
        self.windows[record.version.index()].record(current, record.status, record.latency);
        true
    }
}

/// A parsed record: the start (ms) of its second, version, status, latency.
#[derive(Debug)]
struct Held {
    second: u64,
    version: Version,
    status: u16,
    latency: Duration,
}

/// One line: `None` when blank, else (ts, version, status, latency_ms).
fn parse(text: &str, line: u64) -> Result<Option<(f64, Version, u16, f64)>, ReplayError> {
    if text.is_empty() {
        return Ok(None);
    }
    let bad = |message: String| ReplayError::Parse { line, message };
    let record: Record<'_> = serde_json::from_str(text).map_err(|e| {
        bad(format!(
            "not a request record ({e}): expected {{\"ts\": <unix seconds>, \"version\": \"stable\"|\"canary\", \"status\": <code>, \"latency_ms\": <ms>}}"
        ))
    })?;
    let version = record
        .version
        .parse::<Version>()
        .map_err(|e| bad(format!("version: {e}")))?;
    if !(record.ts.is_finite() && record.ts >= 0.0 && record.ts < 1e13) {
        return Err(bad(format!("ts: must be Unix seconds, got {}", record.ts)));
    }
    if !(record.latency_ms.is_finite() && record.latency_ms >= 0.0) {
        return Err(bad(format!(
            "latency_ms: must be a non-negative number, got {}",
            record.latency_ms
        )));
    }
    Ok(Some((record.ts, version, record.status, record.latency_ms)))
}

impl<R: BufRead> Iterator for Replay<R> {
    type Item = Result<TickReport, ReplayError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Some(item);
            }
            if self.done || !self.step_line() && self.pending.is_empty() {
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::JudgeKind;
    use std::fmt::Write;

    /// `secs` seconds of `rps` requests, every `canary_every`-th to the canary,
    /// canary errors every `err_every`-th canary request (0 = never).
    fn log(secs: u64, rps: u64, canary_every: u64, err_every: u64) -> String {
        let mut out = String::new();
        let mut k = 0u64;
        for s in 0..secs {
            for i in 0..rps {
                k += 1;
                let canary = k.is_multiple_of(canary_every);
                let status =
                    if canary && err_every > 0 && (k / canary_every).is_multiple_of(err_every) {
                        503
                    } else {
                        200
                    };
                let ts = 1_764_150_000.0 + s as f64 + i as f64 / rps as f64;
                let _ = writeln!(
                    out,
                    r#"{{"ts": {ts:.3}, "version": "{}", "status": {status}, "latency_ms": 12.5}}"#,
                    if canary { "canary" } else { "stable" }
                );
            }
        }
        out
    }

    #[test]
    fn healthy_log_promotes_with_one_report_per_tick() {
        let text = log(400, 20, 5, 0);
        let cfg = AnalysisConfig::flagger_defaults().with_judge(JudgeKind::Threshold);
        let reports: Vec<_> = replay(text.as_bytes(), &cfg)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(reports.len(), 5, "{reports:#?}");
        assert_eq!(reports[0].ts, 1_764_150_060.0);
        assert_eq!(reports[0].weight, 10);
        assert_eq!(reports[4].decision, Outcome::Promote);
        let json = serde_json::to_string(&reports[0]).unwrap();
        assert!(json.contains(r#""decision":"continue""#), "{json}");
    }

    #[test]
    fn broken_canary_rolls_back_early_under_the_sequential_judge() {
        let text = log(400, 20, 5, 4);
        let cfg = AnalysisConfig::flagger_defaults();
        let reports: Vec<_> = replay(text.as_bytes(), &cfg)
            .collect::<Result<_, _>>()
            .unwrap();
        let last = reports.last().unwrap();
        assert_eq!(last.decision, Outcome::Rollback);
        assert!(last.ts < 1_764_150_060.0, "rolled back at {}", last.ts);
        // The threshold judge needs five failed checks.
        let cfg = cfg.with_judge(JudgeKind::Threshold);
        let reports: Vec<_> = replay(text.as_bytes(), &cfg)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(reports.len(), 5);
        assert_eq!(reports[4].decision, Outcome::Rollback);
        assert_eq!(reports[4].failed_checks, 5);
    }

    #[test]
    fn bad_lines_name_their_number_and_blank_lines_are_skipped() {
        let text = "\n{\"ts\": 1, \"version\": \"stable\", \"status\": 200, \"latency_ms\": 1}\n\n{\"ts\": 2, \"version\": \"blue\", \"status\": 200, \"latency_ms\": 1}\n";
        let out: Vec<_> = replay(text.as_bytes(), &AnalysisConfig::default()).collect();
        assert_eq!(out.len(), 1);
        let err = out[0].as_ref().unwrap_err().to_string();
        assert!(err.starts_with("line 4: version"), "{err}");
        let out: Vec<_> = replay("{\"ts\": 1}\n".as_bytes(), &AnalysisConfig::default()).collect();
        assert!(
            out[0]
                .as_ref()
                .unwrap_err()
                .to_string()
                .starts_with("line 1: not a request record")
        );
        let out: Vec<_> = replay(
            "{\"ts\": -1, \"version\": \"canary\", \"status\": 200, \"latency_ms\": 1}".as_bytes(),
            &AnalysisConfig::default(),
        )
        .collect();
        assert!(
            out[0]
                .as_ref()
                .unwrap_err()
                .to_string()
                .contains("ts: must be")
        );
        assert_eq!(replay("".as_bytes(), &AnalysisConfig::default()).count(), 0);
    }

    #[test]
    fn invalid_config_is_reported() {
        let mut cfg = AnalysisConfig::default();
        cfg.steps.clear();
        let out: Vec<_> = replay("".as_bytes(), &cfg).collect();
        assert!(matches!(out[0], Err(ReplayError::Config(_))));
        // The configuration error is the only item: the log is not read.
        let out: Vec<_> = replay("not json\n".as_bytes(), &cfg).collect();
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(matches!(out[0], Err(ReplayError::Config(_))));
    }

    #[test]
    fn an_overlong_line_is_refused_without_reading_it_whole() {
        let mut text = log(2, 5, 5, 0);
        text.push_str(&" ".repeat(MAX_LINE_BYTES + 10));
        text.push('\n');
        let out: Vec<_> = replay(text.as_bytes(), &AnalysisConfig::default()).collect();
        let err = out.last().unwrap().as_ref().unwrap_err().to_string();
        assert!(err.starts_with("line 11: longer than"), "{err}");
        // A line right at the limit is still read.
        let line = r#"{"ts": 1, "version": "stable", "status": 200, "latency_ms": 1}"#;
        let padded = format!("{line}{}\n", " ".repeat(MAX_LINE_BYTES - line.len() - 1));
        assert!(replay(padded.as_bytes(), &AnalysisConfig::default()).all(|r| r.is_ok()));
    }

    #[test]
    fn a_gap_in_the_log_yields_ticks_as_it_goes_rather_than_queueing_them() {
        let text = "{\"ts\": 1000, \"version\": \"stable\", \"status\": 200, \"latency_ms\": 1}\n\
                    {\"ts\": 1000000, \"version\": \"stable\", \"status\": 200, \"latency_ms\": 1}\n";
        let cfg = AnalysisConfig::flagger_defaults().with_judge(JudgeKind::Threshold);
        let mut replay = replay(text.as_bytes(), &cfg);
        assert!(replay.next().is_some());
        assert!(replay.pending.len() <= 1, "{} queued", replay.pending.len());
    }
}
