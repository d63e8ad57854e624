//! Judging a recorded request log offline, tick by tick as the live loop
//! judged it: `serin analyze --replay`.
//!
//! The log is the proxy's access log, one JSON object per line:
//! `{"ts": 1764150000.123, "version": "stable", "status": 200, "latency_ms": 12.5}`
//! (`ts` is when the answer was recorded, Unix seconds), optionally followed
//! by `"weight"` (the canary weight of the route the request was sent by)
//! and `"revision"` (the canary revision that route pointed at), which the
//! proxy writes and a replay uses when present.
//!
//! A replay drives the real state machine ([`serin_rollout::step`]) with the
//! canary's [`Plan`] and a fresh judge per rollout, on the live loop's
//! cadence ([`crate::cadence`]):
//! - a rollout starts on the whole second its first request to the canary
//!   (or at a canary weight above 0) was routed in: the machine starts the
//!   revision and takes its first tick there;
//! - every whole second after it, the judge observes the requests answered
//!   in the second just ended, with the weight the machine had set, then may
//!   roll back between ticks;
//! - each tick the machine asks for is handled when due, after the
//!   observation of the same moment; the analysis it asks for reads
//!   per-version windows built like the proxy's recorder; a change of step
//!   calls [`Analyzer::step_advanced`]; failed checks, the threshold, holds
//!   and the progress deadline are the machine's own;
//! - gates and webhooks (not in a log) are taken as approved; custom metrics
//!   (no values in a log) are left out.
//!
//! Several rollouts in one log are judged one after the other, each on its
//! own traffic (a fresh judge and fresh windows). One ends when the machine
//! decides (promotion or rollback); a line with another `"revision"` ends it
//! too (the live rollout was replaced); so does a hole in the log longer than
//! the progress deadline. After a verdict, the canary's requests that go on
//! belong to it; the next rollout begins at a request to the canary with
//! another revision, at a canary weight above 0 after the log showed weight
//! 0, or after the canary served nothing for a whole interval.
//!
//! Lines are read one at a time, each at most [`MAX_LINE_BYTES`]; memory does
//! not grow with the log. Lines that are not request records are counted
//! and reported, not fatal.

use crate::{cadence, driver::analysis_result};
use serde::{Deserialize, Serialize};
use serin_analysis::{
    AnalysisConfig, Analyzer, ConfigError, Decision, MetricEvidence, MetricKind, TickInput, Verdict,
};
use serin_rollout::{
    Action, Event, HookKind, Phase, Plan, PlanError, RolloutState, Strategy, Timestamp,
};
use serin_stats::{Pair, Version, Window};
use std::{borrow::Cow, collections::VecDeque, io::BufRead, io::Read, sync::Arc, time::Duration};

/// The longest line a request log may have. A record is under 200 bytes
/// (plus its revision); the limit keeps a log without newlines, or a hostile
/// one, from being read into memory whole. Longer lines are skipped.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// Records kept to start a rollout with the requests answered between the
/// second it started in and the request that showed it.
const RECENT: usize = 4096;

/// The longest hole in the log a rollout is replayed across.
const MAX_GAP: Duration = Duration::from_secs(24 * 3600);

const SECOND_MS: u64 = 1000;

/// What a replay judges by.
#[derive(Clone, Debug)]
pub struct ReplaySetup {
    /// The state machine's plan (steps, interval, threshold, deadline…).
    pub plan: Plan,
    /// The analysis; custom metrics are left out.
    pub analysis: AnalysisConfig,
    /// Judge only the rollouts of this revision (needs `"revision"` fields).
    pub revision: Option<String>,
}

// === impl ReplaySetup ===

impl ReplaySetup {
    /// Judges by `plan` and `analysis`.
    pub fn new(plan: Plan, analysis: AnalysisConfig) -> Self {
        ReplaySetup {
            plan,
            analysis,
            revision: None,
        }
    }

    /// Without a canary file: Flagger's defaults (steps 10 to 50 % by 10,
    /// one-minute interval, threshold 5, the success-rate and duration
    /// checks), judged by serin's default judge.
    pub fn defaults() -> Self {
        let analysis = AnalysisConfig::flagger_defaults();
        let plan = Plan::new(
            Strategy::Canary {
                steps: analysis.steps.clone(),
            },
            analysis.interval,
            analysis.threshold,
        );
        ReplaySetup::new(plan, analysis)
    }

    /// The custom metrics a request log has no values for, left out.
    pub fn left_out(&self) -> Vec<&str> {
        self.analysis
            .metrics
            .iter()
            .filter(|m| !matches!(m.kind, MetricKind::Builtin(_)))
            .map(|m| m.name.as_str())
            .collect()
    }
}

/// Why a replay could not run, or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The analysis configuration is invalid.
    #[error("invalid analysis configuration: {0}")]
    Config(#[from] ConfigError),
    /// The plan is invalid.
    #[error("invalid rollout plan: {0}")]
    Plan(#[from] PlanError),
    /// Reading the log failed.
    #[error("line {line}: read error: {source}")]
    Io {
        /// 1-based line number where reading failed.
        line: u64,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The reports could not be written.
    #[error("cannot write the report: {0}")]
    Output(std::io::Error),
}

/// What the rollout does after a tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Keep going (the step may have advanced, held or counted a failure).
    Continue,
    /// Rolled back: this rollout's reports end.
    Rollback,
    /// Promoted: this rollout's reports end.
    Promote,
}

/// One analysis tick of a replay (or a rollback between ticks), as `serin
/// analyze` prints it: one JSON object per line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TickReport {
    /// Unix seconds of the tick (or of the rollback between ticks).
    pub ts: f64,
    /// What the rollout does next.
    pub decision: Outcome,
    /// The judge's verdict behind it.
    pub verdict: Verdict,
    /// Why, with numbers.
    pub reasons: Vec<String>,
    /// The canary weight during the judged interval, percent.
    pub weight: u8,
    /// Failed checks so far in this rollout.
    pub failed_checks: u32,
    /// Per-metric evidence.
    pub metrics: Vec<MetricEvidence>,
    /// Which rollout of the log, from 1.
    pub rollout: u32,
    /// The rollout's revision, when the log names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
}

/// How a rollout's judgement ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RolloutOutcome {
    /// The machine promoted the canary.
    Promoted,
    /// The machine rolled the canary back.
    RolledBack,
    /// The log ends before a verdict.
    InProgress,
    /// The log shows the live rollout ended before the replay reached a
    /// verdict (another revision replaced it, the canary was released, or
    /// the log has a hole longer than the progress deadline).
    Ended,
}

// === impl RolloutOutcome ===

impl RolloutOutcome {
    /// In words.
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutOutcome::Promoted => "promoted",
            RolloutOutcome::RolledBack => "rolled back",
            RolloutOutcome::InProgress => "in progress",
            RolloutOutcome::Ended => "ended without a verdict",
        }
    }
}

/// One rollout's judgement, once it ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RolloutSummary {
    /// Which rollout of the log, from 1.
    pub rollout: u32,
    /// Its revision, when the log names it.
    pub revision: Option<String>,
    /// Unix seconds of its first step.
    pub started: f64,
    /// Unix seconds of its verdict, or of the last moment judged.
    pub ended: f64,
    /// Analysis ticks reported.
    pub ticks: u32,
    /// Whether it rolled back between ticks (the sequential judge).
    pub between_ticks: bool,
    /// How it ended.
    pub outcome: RolloutOutcome,
    /// Why, in the machine's words.
    pub reason: String,
    /// Failed checks counted.
    pub failed_checks: u32,
    /// The canary weight it was last judged at.
    pub weight: u8,
    /// Requests of each version judged.
    pub canary_requests: u64,
    /// Requests of the stable version judged.
    pub stable_requests: u64,
    /// Where the log's `"weight"` first disagreed with the replay's, if it
    /// did: from there on the replay no longer follows the live rollout.
    pub diverged: Option<String>,
}

/// The whole log, once read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplaySummary {
    /// Lines read (blank ones included).
    pub lines: u64,
    /// Request records.
    pub records: u64,
    /// Of which to the canary.
    pub canary_records: u64,
    /// Lines that are not request records.
    pub malformed: u64,
    /// The first of them: `line N: what is wrong`.
    pub first_malformed: Option<String>,
    /// Rollouts judged.
    pub rollouts: u32,
    /// Of which rolled back.
    pub rolled_back: u32,
    /// Of which promoted.
    pub promoted: u32,
    /// Revisions seen (the first few).
    pub revisions: Vec<String>,
}

/// How many revisions a summary names.
const MAX_REVISIONS_NAMED: usize = 8;

// === impl ReplaySummary ===

impl ReplaySummary {
    /// Why the log cannot be judged at all, if it cannot: no request
    /// record, not one to the canary, or no rollout of the revision asked
    /// for.
    pub fn unusable(&self, setup: &ReplaySetup) -> Option<String> {
        if self.records == 0 {
            return Some(match &self.first_malformed {
                None => "no request record in it: nothing to judge".to_owned(),
                Some(first) => format!(
                    "none of its {} lines is a request record (first: {first}); expected {{\"ts\": <unix seconds>, \"version\": \"stable\"|\"canary\", \"status\": <code>, \"latency_ms\": <ms>}}",
                    self.malformed
                ),
            });
        }
        if self.canary_records == 0 {
            return Some(format!(
                "no request to the canary in its {} requests: nothing to judge",
                self.records
            ));
        }
        if self.rollouts == 0
            && let Some(revision) = &setup.revision
        {
            return Some(if self.revisions.is_empty() {
                format!("no rollout of revision {revision:?}: its lines carry no \"revision\"")
            } else {
                format!(
                    "no rollout of revision {revision:?}; revisions in it: {}",
                    self.revisions.join(", ")
                )
            });
        }
        None
    }
}

/// Where a replay's results go, as they come.
pub trait ReplaySink {
    /// An analysis tick, or a rollback between ticks.
    fn tick(&mut self, report: &TickReport) -> std::io::Result<()>;
    /// A rollout's judgement ended.
    fn rollout(&mut self, summary: &RolloutSummary) -> std::io::Result<()>;
    /// A line that is not a request record, skipped.
    fn malformed(&mut self, _line: u64, _message: &str) {}
    /// The log's weight disagrees with the replay's (once per rollout).
    fn diverged(&mut self, _rollout: u32, _message: &str) {}
}

/// A sink that keeps everything, for tests and small logs.
#[derive(Clone, Debug, Default)]
pub struct Collect {
    /// Every report.
    pub ticks: Vec<TickReport>,
    /// Every rollout's summary.
    pub rollouts: Vec<RolloutSummary>,
    /// Every malformed line: (number, message).
    pub malformed: Vec<(u64, String)>,
}

impl ReplaySink for Collect {
    fn tick(&mut self, report: &TickReport) -> std::io::Result<()> {
        self.ticks.push(report.clone());
        Ok(())
    }
    fn rollout(&mut self, summary: &RolloutSummary) -> std::io::Result<()> {
        self.rollouts.push(summary.clone());
        Ok(())
    }
    fn malformed(&mut self, line: u64, message: &str) {
        self.malformed.push((line, message.to_owned()));
    }
}

/// One request of the log.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// When its answer was recorded, Unix milliseconds.
    pub ts_ms: u64,
    /// Which version answered.
    pub version: Version,
    /// The status code.
    pub status: u16,
    /// From request received to response headers.
    pub latency: Duration,
    /// The canary weight of the route it was sent by, when logged.
    pub weight: Option<u8>,
    /// The canary revision of that route, when logged.
    pub revision: Option<Arc<str>>,
}

// === impl Record ===

impl Record {
    /// When it was routed (received), Unix milliseconds.
    pub fn routed_ms(&self) -> u64 {
        let latency_ms = u64::try_from(self.latency.as_millis()).unwrap_or(u64::MAX);
        self.ts_ms.saturating_sub(latency_ms)
    }

    /// Whether it shows the route sending the canary traffic.
    fn shows_canary(&self) -> bool {
        self.version == Version::Canary || self.weight.is_some_and(|w| w > 0)
    }
}

#[derive(Deserialize)]
struct Line<'a> {
    ts: f64,
    #[serde(borrow)]
    version: Cow<'a, str>,
    status: u16,
    latency_ms: f64,
    #[serde(default)]
    weight: Option<f64>,
    #[serde(default, borrow)]
    revision: Option<Cow<'a, str>>,
}

/// Parses one line: `Ok(None)` when blank. `interned` is the revision of the
/// previous record, reused when this one has the same.
pub fn parse_record(text: &str, interned: &mut Option<Arc<str>>) -> Result<Option<Record>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let line: Line<'_> = serde_json::from_str(text).map_err(|e| {
        format!(
            "not a request record ({e}): expected {{\"ts\": <unix seconds>, \"version\": \"stable\"|\"canary\", \"status\": <code>, \"latency_ms\": <ms>}}"
        )
    })?;
    let version = line
        .version
        .parse::<Version>()
        .map_err(|e| format!("version: {e}"))?;
    if !(line.ts.is_finite() && line.ts >= 0.0 && line.ts < 1e13) {
        return Err(format!("ts: must be Unix seconds, got {}", line.ts));
    }
    if !(line.latency_ms.is_finite() && line.latency_ms >= 0.0) {
        return Err(format!(
            "latency_ms: must be a non-negative number, got {}",
            line.latency_ms
        ));
    }
    let weight = match line.weight {
        None => None,
        Some(w) if w.is_finite() && (0.0..=100.0).contains(&w) && w.fract() == 0.0 => {
            // A whole number in 0..=100: the cast is exact.
            Some(w as u8)
        }
        Some(w) => return Err(format!("weight: must be a percentage 0..100, got {w}")),
    };
    let revision = line.revision.map(|r| match interned {
        Some(known) if **known == *r => known.clone(),
        _ => {
            let fresh: Arc<str> = Arc::from(r.as_ref());
            *interned = Some(fresh.clone());
            fresh
        }
    });
    Ok(Some(Record {
        // Finite and below 1e16 ms: the rounding casts are exact enough.
        ts_ms: (line.ts * 1000.0).round() as u64,
        version,
        status: line.status,
        latency: Duration::from_micros((line.latency_ms * 1000.0).round() as u64),
        weight,
        revision,
    }))
}

/// Judges the request log in `reader` under `setup`, handing each tick
/// report and each rollout's summary to `sink` as they come.
pub fn replay<R: BufRead>(
    mut reader: R,
    setup: &ReplaySetup,
    sink: &mut dyn ReplaySink,
) -> Result<ReplaySummary, ReplayError> {
    setup.plan.validate()?;
    let mut analysis = setup.analysis.clone();
    analysis
        .metrics
        .retain(|m| matches!(m.kind, MetricKind::Builtin(_)));
    analysis.validate()?;
    let mut replayer = Replayer::new(setup, analysis);
    let mut buf = Vec::with_capacity(256);
    loop {
        buf.clear();
        let line = replayer.summary.lines + 1;
        // One byte over the limit tells a line that is too long from one that fits.
        let limit = MAX_LINE_BYTES as u64 + 1;
        let read = (&mut reader)
            .take(limit)
            .read_until(b'\n', &mut buf)
            .map_err(|source| ReplayError::Io { line, source })?;
        if read == 0 {
            break;
        }
        replayer.summary.lines = line;
        if read > MAX_LINE_BYTES && buf.last() != Some(&b'\n') {
            skip_line(&mut reader).map_err(|source| ReplayError::Io { line, source })?;
            replayer.malformed(
                line,
                &format!("longer than {MAX_LINE_BYTES} bytes; not a request record"),
                sink,
            );
            continue;
        }
        let parsed = match std::str::from_utf8(&buf) {
            Ok(text) => parse_record(text, &mut replayer.interned),
            Err(_) => Err("not UTF-8 text".to_owned()),
        };
        match parsed {
            Ok(Some(record)) => replayer.record(record, sink)?,
            Ok(None) => {}
            Err(message) => replayer.malformed(line, &message, sink),
        }
    }
    replayer.finish(sink)?;
    Ok(replayer.summary)
}

/// Consumes the rest of an overlong line, in bounded memory.
fn skip_line<R: BufRead>(reader: &mut R) -> std::io::Result<()> {
    loop {
        let available = match reader.fill_buf() {
            Ok(available) => available,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(());
        }
        match available.iter().position(|b| *b == b'\n') {
            Some(at) => {
                reader.consume(at + 1);
                return Ok(());
            }
            None => {
                let n = available.len();
                reader.consume(n);
            }
        }
    }
}

/// The tail of the last rollout judged.
#[derive(Debug)]
struct After {
    revision: Option<Arc<str>>,
    /// When its judgement ended: requests answered before belonged to it.
    ended_ms: u64,
    /// When the canary was last sent a request (routed time).
    last_canary_ms: u64,
    /// When the first request the log shows sent at canary weight 0 since
    /// the verdict was routed.
    weight_zero_at: Option<u64>,
}

struct Replayer<'a> {
    setup: &'a ReplaySetup,
    analysis: AnalysisConfig,
    span: Duration,
    gap_ms: u64,
    quiet_ms: u64,
    summary: ReplaySummary,
    recent: VecDeque<Record>,
    session: Option<Session>,
    after: Option<After>,
    interned: Option<Arc<str>>,
}

// === impl Replayer ===

impl<'a> Replayer<'a> {
    fn new(setup: &'a ReplaySetup, analysis: AnalysisConfig) -> Self {
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Replayer {
            setup,
            span: cadence::window_span(&analysis),
            analysis,
            gap_ms: millis(setup.plan.effective_deadline().min(MAX_GAP)),
            quiet_ms: millis(setup.plan.interval).max(SECOND_MS),
            summary: ReplaySummary::default(),
            recent: VecDeque::with_capacity(RECENT),
            session: None,
            after: None,
            interned: None,
        }
    }

    fn malformed(&mut self, line: u64, message: &str, sink: &mut dyn ReplaySink) {
        self.summary.malformed += 1;
        if self.summary.first_malformed.is_none() {
            self.summary.first_malformed = Some(format!("line {line}: {message}"));
        }
        sink.malformed(line, message);
    }

    fn record(&mut self, record: Record, sink: &mut dyn ReplaySink) -> Result<(), ReplayError> {
        self.summary.records += 1;
        if record.version == Version::Canary {
            self.summary.canary_records += 1;
        }
        if let Some(revision) = &record.revision
            && self.summary.revisions.len() < MAX_REVISIONS_NAMED
            && !self.summary.revisions.iter().any(|r| **r == **revision)
        {
            self.summary.revisions.push(revision.to_string());
        }
        self.advance(&record, sink)?;
        match &mut self.session {
            Some(session) => session.feed(&record, sink),
            None => self.maybe_start(&record, sink)?,
        }
        if self.recent.len() >= RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(record);
        Ok(())
    }

    /// Moves the rollout in progress up to `record`, and ends it if the log
    /// shows it over.
    fn advance(&mut self, record: &Record, sink: &mut dyn ReplaySink) -> Result<(), ReplayError> {
        let Some(session) = &mut self.session else {
            return Ok(());
        };
        let hole = record.ts_ms.saturating_sub(session.last_record_ms);
        if hole > self.gap_ms {
            let until = session.last_record_ms.saturating_add(self.gap_ms);
            session.advance(until, &self.analysis, self.setup, sink)?;
            if session.decided.is_none() {
                let reason = format!(
                    "the log has no request for {}s, longer than the progress deadline: the live rollout stopped or the log was cut",
                    hole / SECOND_MS
                );
                return self.end(RolloutOutcome::Ended, reason, sink);
            }
        } else {
            session.advance(record.ts_ms, &self.analysis, self.setup, sink)?;
        }
        if session.decided.is_some() {
            return self.end_decided(sink);
        }
        if session.revision.is_some() && record.revision != session.revision {
            let reason = match &record.revision {
                Some(other) => format!(
                    "revision {other} replaced it in the log before the replay reached a verdict"
                ),
                None => "the log shows the canary released before the replay reached a verdict"
                    .to_owned(),
            };
            return self.end(RolloutOutcome::Ended, reason, sink);
        }
        Ok(())
    }

    /// Starts a rollout at `record` if it shows one.
    fn maybe_start(
        &mut self,
        record: &Record,
        sink: &mut dyn ReplaySink,
    ) -> Result<(), ReplayError> {
        if let Some(after) = &mut self.after
            && record.weight == Some(0)
            && after.weight_zero_at.is_none()
        {
            after.weight_zero_at = Some(record.routed_ms());
        }
        if !record.shows_canary() {
            return Ok(());
        }
        if let Some(wanted) = &self.setup.revision
            && record.revision.as_deref() != Some(wanted.as_str())
        {
            return Ok(());
        }
        let routed = record.routed_ms();
        if let Some(after) = &mut self.after {
            let other_revision = record.revision.is_some() && record.revision != after.revision;
            // Sent at a weight again after the route went back to 0 (not a
            // request sent before, answered late).
            let restarted = after
                .weight_zero_at
                .is_some_and(|zero| routed > zero && record.weight.is_some_and(|w| w > 0));
            let quiet = routed >= after.last_canary_ms.saturating_add(self.quiet_ms);
            if !(other_revision || restarted || quiet) {
                // What the live rollout still sent the canary after its verdict.
                after.last_canary_ms = after.last_canary_ms.max(routed);
                return Ok(());
            }
        }
        let start = routed - routed % SECOND_MS;
        // Requests the last rollout was fed are not this one's.
        let fresh_from = self.after.as_ref().map_or(start, |a| a.ended_ms.max(start));
        self.summary.rollouts += 1;
        let mut session = Session::start(
            self.summary.rollouts,
            record.revision.clone(),
            start,
            &self.analysis,
            self.span,
            self.setup,
            sink,
        )?;
        // The requests answered since the second it started in, so far.
        for earlier in self.recent.iter().filter(|r| {
            r.ts_ms >= fresh_from && (record.revision.is_none() || r.revision == record.revision)
        }) {
            session.advance(earlier.ts_ms, &self.analysis, self.setup, sink)?;
            session.feed(earlier, sink);
        }
        session.advance(record.ts_ms, &self.analysis, self.setup, sink)?;
        session.feed(record, sink);
        self.session = Some(session);
        if self.session.as_ref().is_some_and(|s| s.decided.is_some()) {
            self.end_decided(sink)?;
        }
        Ok(())
    }

    fn end_decided(&mut self, sink: &mut dyn ReplaySink) -> Result<(), ReplayError> {
        let Some((outcome, reason)) = self
            .session
            .as_ref()
            .and_then(|s| s.decided.as_ref())
            .map(|d| (d.outcome, d.reason.clone()))
        else {
            return Ok(());
        };
        self.end(outcome, reason, sink)
    }

    fn end(
        &mut self,
        outcome: RolloutOutcome,
        reason: String,
        sink: &mut dyn ReplaySink,
    ) -> Result<(), ReplayError> {
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        match outcome {
            RolloutOutcome::RolledBack => self.summary.rolled_back += 1,
            RolloutOutcome::Promoted => self.summary.promoted += 1,
            RolloutOutcome::InProgress | RolloutOutcome::Ended => {}
        }
        let ended_ms = session
            .decided
            .as_ref()
            .map_or(session.last_judged_ms, |d| d.at_ms);
        let summary = RolloutSummary {
            rollout: session.index,
            revision: session.revision.as_deref().map(str::to_owned),
            started: seconds(session.started_ms),
            ended: seconds(ended_ms),
            ticks: session.ticks,
            between_ticks: session.decided.as_ref().is_some_and(|d| d.between_ticks),
            outcome,
            reason,
            failed_checks: session.state.failed_checks,
            weight: session.judged_weight,
            canary_requests: session.requests[Version::Canary.index()],
            stable_requests: session.requests[Version::Stable.index()],
            diverged: session.diverged.clone(),
        };
        self.after = Some(After {
            revision: session.revision.clone(),
            ended_ms,
            last_canary_ms: session.last_canary_ms.max(ended_ms),
            weight_zero_at: None,
        });
        sink.rollout(&summary).map_err(ReplayError::Output)
    }

    fn finish(&mut self, sink: &mut dyn ReplaySink) -> Result<(), ReplayError> {
        let Some(session) = &mut self.session else {
            return Ok(());
        };
        // The log's last second is over: what was due at its end happens
        // (a live log ends when the proxy stops, after the verdict).
        let end = session
            .last_record_ms
            .div_ceil(SECOND_MS)
            .saturating_mul(SECOND_MS);
        session.advance(end, &self.analysis, self.setup, sink)?;
        if session.decided.is_some() {
            return self.end_decided(sink);
        }
        let reason = format!(
            "the log ends before a verdict, at canary weight {} after {} analysis ticks ({})",
            session.state.canary_weight, session.ticks, session.state.message
        );
        self.end(RolloutOutcome::InProgress, reason, sink)
    }
}

/// How a rollout was decided.
#[derive(Debug)]
struct Decided {
    outcome: RolloutOutcome,
    reason: String,
    at_ms: u64,
    between_ticks: bool,
}

/// One rollout being judged.
struct Session {
    index: u32,
    revision: Option<Arc<str>>,
    state: RolloutState,
    analyzer: Analyzer,
    /// Per-version windows, as the proxy's recorder keeps them.
    windows: [Window; 2],
    /// Requests answered since the last observation.
    delta: Pair,
    next_observe: u64,
    next_tick: Option<u64>,
    /// Analysis ticks reported.
    ticks: u32,
    started_ms: u64,
    last_record_ms: u64,
    last_canary_ms: u64,
    last_judged_ms: u64,
    /// The weight of the last interval judged.
    judged_weight: u8,
    requests: [u64; 2],
    decided: Option<Decided>,
    /// The analysis of the event being handled, with the weight it judged.
    analysis: Option<(Decision, u8)>,
    /// The log's weight and since when (routed time).
    log_weight: Option<(u8, u64)>,
    /// When the replay last changed the weight.
    weight_since: u64,
    diverged: Option<String>,
}

// === impl Session ===

impl Session {
    /// Starts revision `revision` at `start` (a whole second) and takes its
    /// first tick there.
    fn start(
        index: u32,
        revision: Option<Arc<str>>,
        start: u64,
        analysis: &AnalysisConfig,
        span: Duration,
        setup: &ReplaySetup,
        sink: &mut dyn ReplaySink,
    ) -> Result<Session, ReplayError> {
        let analyzer = Analyzer::new(analysis.clone())?;
        let mut session = Session {
            index,
            revision,
            state: RolloutState::new(Timestamp::from_millis(start)),
            analyzer,
            windows: [Window::covering(span), Window::covering(span)],
            delta: Pair::default(),
            next_observe: start.saturating_add(SECOND_MS),
            next_tick: None,
            ticks: 0,
            started_ms: start,
            last_record_ms: start,
            last_canary_ms: start,
            last_judged_ms: start,
            judged_weight: 0,
            requests: [0; 2],
            decided: None,
            analysis: None,
            log_weight: None,
            weight_since: start,
            diverged: None,
        };
        let revision = session.revision.as_deref().unwrap_or("canary").to_owned();
        session.handle(start, Event::Start { revision }, analysis, setup)?;
        session.advance(start, analysis, setup, sink)?;
        Ok(session)
    }

    /// Handles every observation and tick due at or before `until` (a
    /// request answered at `until` comes after them).
    fn advance(
        &mut self,
        until: u64,
        analysis: &AnalysisConfig,
        setup: &ReplaySetup,
        sink: &mut dyn ReplaySink,
    ) -> Result<(), ReplayError> {
        while self.decided.is_none() {
            let tick = self
                .next_tick
                .map(|t| cadence::tick_at(&self.state, Timestamp::from_millis(t)).as_millis());
            let (observation, at) = match tick {
                Some(t) if t < self.next_observe => (false, t),
                _ => (true, self.next_observe),
            };
            if at > until {
                return Ok(());
            }
            self.last_judged_ms = at;
            if observation {
                self.next_observe = at.saturating_add(SECOND_MS);
                self.observe(at, analysis, setup, sink)?;
            } else {
                self.next_tick = None;
                self.tick(at, analysis, setup, sink)?;
            }
        }
        Ok(())
    }

    /// The observation at `at`: the requests answered in the second before.
    fn observe(
        &mut self,
        at: u64,
        analysis: &AnalysisConfig,
        setup: &ReplaySetup,
        sink: &mut dyn ReplaySink,
    ) -> Result<(), ReplayError> {
        let delta = std::mem::take(&mut self.delta);
        if !cadence::judged(&self.state) {
            return Ok(());
        }
        let weight = self.state.canary_weight;
        self.analyzer.observe(at, weight, &delta);
        let Some(decision) = self.analyzer.early(at) else {
            return Ok(());
        };
        self.handle(
            at,
            Event::Harm {
                reasons: decision.reasons.clone(),
            },
            analysis,
            setup,
        )?;
        if self.state.phase == Phase::Failed {
            if let Some(decided) = &mut self.decided {
                decided.between_ticks = true;
            }
            self.judged_weight = weight;
            self.report(at, Outcome::Rollback, decision, weight, sink)?;
        }
        Ok(())
    }

    fn tick(
        &mut self,
        at: u64,
        analysis: &AnalysisConfig,
        setup: &ReplaySetup,
        sink: &mut dyn ReplaySink,
    ) -> Result<(), ReplayError> {
        let weight = self.state.canary_weight;
        self.handle(at, Event::Tick, analysis, setup)?;
        let outcome = match (&self.decided, self.state.phase) {
            (Some(d), _) if d.outcome == RolloutOutcome::RolledBack => Outcome::Rollback,
            (Some(d), _) if d.outcome == RolloutOutcome::Promoted => Outcome::Promote,
            _ => Outcome::Continue,
        };
        match self.analysis.take() {
            Some((decision, judged)) => {
                self.ticks += 1;
                self.judged_weight = judged;
                self.report(at, outcome, decision, judged, sink)?;
            }
            // Decided without an analysis (the progress deadline): say so.
            None if outcome != Outcome::Continue => {
                let decision = Decision {
                    verdict: if outcome == Outcome::Rollback {
                        Verdict::Rollback
                    } else {
                        Verdict::Pass
                    },
                    at_ms: at,
                    metrics: Vec::new(),
                    reasons: vec![self.state.message.clone()],
                    hold: None,
                };
                self.report(at, outcome, decision, weight, sink)?;
            }
            None => {}
        }
        Ok(())
    }

    fn report(
        &mut self,
        at: u64,
        decision: Outcome,
        judged: Decision,
        weight: u8,
        sink: &mut dyn ReplaySink,
    ) -> Result<(), ReplayError> {
        let report = TickReport {
            ts: seconds(at),
            decision,
            verdict: judged.verdict,
            reasons: judged.reasons,
            weight,
            failed_checks: self.state.failed_checks,
            metrics: judged.metrics,
            rollout: self.index,
            revision: self.revision.as_deref().map(str::to_owned),
        };
        sink.tick(&report).map_err(ReplayError::Output)
    }

    /// Applies one event and answers what the machine asks, as the live
    /// loop does ([`crate::driver::Driver`]): analyses from the windows,
    /// gates approved, hooks passed.
    fn handle(
        &mut self,
        now: u64,
        event: Event,
        analysis: &AnalysisConfig,
        setup: &ReplaySetup,
    ) -> Result<(), ReplayError> {
        let mut queue = VecDeque::from([event]);
        while let Some(event) = queue.pop_front() {
            let (weight, step) = (self.state.canary_weight, self.state.step_index);
            let actions = match serin_rollout::step(
                &mut self.state,
                &setup.plan,
                Timestamp::from_millis(now),
                event,
            ) {
                Ok(actions) => actions,
                Err(serin_rollout::Error::InvalidPlan(e)) => return Err(ReplayError::Plan(e)),
                // Stale or refused, as live: nothing happened.
                Err(_) => continue,
            };
            if self.state.step_index != step || self.state.canary_weight != weight {
                self.analyzer.step_advanced(now, self.state.canary_weight);
                self.weight_since = now;
            }
            for action in actions {
                match action {
                    Action::ScheduleTick { at } => self.next_tick = Some(at.as_millis()),
                    Action::RunAnalysis => {
                        let [stable, canary] = &self.windows;
                        let input = TickInput::builtin(analysis, |span| Pair {
                            stable: stable.last(now, span),
                            canary: canary.last(now, span),
                        });
                        let decision = self.analyzer.evaluate(now, &input);
                        queue.push_back(Event::Analysis(analysis_result(&decision)));
                        self.analysis = Some((decision, self.state.canary_weight));
                    }
                    Action::CallGate(kind) => queue.push_back(Event::Gate {
                        kind,
                        approved: true,
                    }),
                    Action::CallHook(kind @ (HookKind::PreRollout | HookKind::Rollout)) => {
                        queue.push_back(Event::Hook { kind, ok: true });
                    }
                    Action::CallHook(_)
                    | Action::SetRoute(_)
                    | Action::Promote
                    | Action::Finalise
                    | Action::Emit(_) => {}
                }
            }
            if self.decided.is_none() {
                let outcome = match self.state.phase {
                    Phase::Failed => Some(RolloutOutcome::RolledBack),
                    Phase::Promoting | Phase::Finalising | Phase::Succeeded => {
                        Some(RolloutOutcome::Promoted)
                    }
                    _ => None,
                };
                if let Some(outcome) = outcome {
                    self.decided = Some(Decided {
                        outcome,
                        reason: self.state.message.clone(),
                        at_ms: now,
                        between_ticks: false,
                    });
                }
            }
        }
        Ok(())
    }

    /// Counts one request of this rollout.
    fn feed(&mut self, record: &Record, sink: &mut dyn ReplaySink) {
        let index = record.version.index();
        self.delta
            .get_mut(record.version)
            .record(record.status, record.latency);
        if let Some(window) = self.windows.get_mut(index) {
            window.record(record.ts_ms, record.status, record.latency);
        }
        if let Some(n) = self.requests.get_mut(index) {
            *n = n.saturating_add(1);
        }
        self.last_record_ms = self.last_record_ms.max(record.ts_ms);
        let routed = record.routed_ms();
        if record.shows_canary() {
            self.last_canary_ms = self.last_canary_ms.max(routed);
        }
        let Some(logged) = record.weight else {
            return;
        };
        match self.log_weight {
            Some((weight, _)) if weight == logged => {}
            _ => self.log_weight = Some((logged, routed)),
        }
        let since = self
            .log_weight
            .map_or(routed, |(_, since)| since)
            .max(self.weight_since);
        // The route changes a moment after the tick that decides it: a
        // disagreement that lasts a second is a divergence.
        if self.diverged.is_none()
            && self.decided.is_none()
            && logged != self.state.canary_weight
            && routed >= since.saturating_add(SECOND_MS)
        {
            let message = format!(
                "from {:.3}: the log's canary weight is {logged} where the replay's is {}",
                seconds(routed),
                self.state.canary_weight
            );
            sink.diverged(self.index, &message);
            self.diverged = Some(message);
        }
    }
}

fn seconds(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // Tests fail loudly by design.

    use super::*;
    use serin_analysis::JudgeKind;
    use std::fmt::Write;

    const T: u64 = 1_764_150_000;

    /// `secs` seconds of `rps` requests from `T + from`, every
    /// `canary_every`-th to the canary (0: none), every `err_every`-th canary
    /// request failing (0: never); `extra` is appended to each line.
    fn log(
        from: u64,
        secs: u64,
        rps: u64,
        canary_every: u64,
        err_every: u64,
        extra: &str,
    ) -> String {
        let mut out = String::new();
        let mut k = 0u64;
        for s in 0..secs {
            for i in 0..rps {
                k += 1;
                let canary = canary_every > 0 && k.is_multiple_of(canary_every);
                let failing =
                    canary && err_every > 0 && (k / canary_every).is_multiple_of(err_every);
                let status = if failing { 503 } else { 200 };
                let ts = (T + from + s) as f64 + i as f64 / rps as f64;
                let _ = writeln!(
                    out,
                    r#"{{"ts": {ts:.3}, "version": "{}", "status": {status}, "latency_ms": 2.5{extra}}}"#,
                    if canary { "canary" } else { "stable" }
                );
            }
        }
        out
    }

    fn run(text: &str, setup: &ReplaySetup) -> (Collect, ReplaySummary) {
        let mut sink = Collect::default();
        let summary = replay(text.as_bytes(), setup, &mut sink).unwrap();
        (sink, summary)
    }

    fn with_judge(judge: JudgeKind) -> ReplaySetup {
        let mut setup = ReplaySetup::defaults();
        setup.analysis = setup.analysis.with_judge(judge);
        setup
    }

    #[test]
    fn a_healthy_log_walks_every_step_then_promotes_one_tick_per_interval() {
        let (out, summary) = run(
            &log(0, 400, 20, 5, 0, ""),
            &with_judge(JudgeKind::Threshold),
        );
        let ticks = &out.ticks;
        assert_eq!(ticks.len(), 5, "{ticks:#?}");
        // The rollout starts on the second of its first canary request.
        let start = T as f64;
        let at: Vec<f64> = ticks.iter().map(|t| t.ts - start).collect();
        assert_eq!(at, [60.0, 120.0, 180.0, 240.0, 300.0]);
        let weights: Vec<u8> = ticks.iter().map(|t| t.weight).collect();
        assert_eq!(weights, [10, 20, 30, 40, 50]);
        assert!(ticks[..4].iter().all(|t| t.decision == Outcome::Continue));
        assert_eq!(ticks[4].decision, Outcome::Promote);
        assert_eq!(summary.rollouts, 1);
        assert_eq!(summary.promoted, 1);
        assert_eq!(out.rollouts[0].outcome, RolloutOutcome::Promoted);
        assert_eq!(out.rollouts[0].ticks, 5);
        assert!(
            out.rollouts[0].reason.contains("analysis passed"),
            "{:?}",
            out.rollouts[0]
        );
        let json = serde_json::to_string(&ticks[0]).unwrap();
        assert!(json.contains(r#""decision":"continue""#), "{json}");
        assert!(!json.contains("revision"), "{json}");
    }

    #[test]
    fn a_broken_canary_rolls_back_between_ticks_or_at_the_threshold() {
        let text = log(0, 400, 20, 5, 4, "");
        let (out, summary) = run(&text, &ReplaySetup::defaults());
        let last = out.ticks.last().unwrap();
        assert_eq!(last.decision, Outcome::Rollback);
        assert!(last.ts < (T + 60) as f64, "rolled back at {}", last.ts);
        assert_eq!(summary.rolled_back, 1);
        assert!(out.rollouts[0].between_ticks);
        // The reports stop at the rollback although the log goes on.
        assert_eq!(summary.rollouts, 1);
        // Flagger's judge: the machine counts five failed checks.
        let (out, _) = run(&text, &with_judge(JudgeKind::Threshold));
        assert_eq!(out.ticks.len(), 5);
        let failed: Vec<u32> = out.ticks.iter().map(|t| t.failed_checks).collect();
        assert_eq!(failed, [1, 2, 3, 4, 5]);
        assert_eq!(out.ticks[4].decision, Outcome::Rollback);
        assert!(out.ticks.iter().all(|t| t.weight == 10));
        assert!(
            out.rollouts[0]
                .reason
                .contains("failed checks 5 reached threshold 5"),
            "{:?}",
            out.rollouts[0]
        );
    }

    #[test]
    fn observations_hold_the_second_before_them_and_the_first_step_its_second() {
        // Stable traffic from T, the canary's first request routed at T+5.3 s.
        let mut text = log(0, 5, 10, 0, 0, "");
        text.push_str(&format!(
            "{{\"ts\": {}.400, \"version\": \"canary\", \"status\": 200, \"latency_ms\": 100}}\n",
            T + 5
        ));
        text.push_str(&log(6, 70, 10, 2, 0, ""));
        let (out, _) = run(&text, &with_judge(JudgeKind::Threshold));
        assert_eq!(out.ticks[0].ts, (T + 65) as f64, "{:#?}", out.ticks[0]);
        // The window of the first tick is [T+5, T+65): 60 whole seconds.
        let rate = out.ticks[0]
            .metrics
            .iter()
            .find(|m| m.name == "request-success-rate")
            .unwrap();
        assert_eq!(rate.canary_requests, 1 + 5 * 59);
        assert_eq!(rate.stable_requests, 5 * 59);
    }

    #[test]
    fn rollouts_named_by_revision_are_judged_one_after_the_other() {
        let mut text = log(0, 130, 20, 5, 4, r#", "weight": 10, "revision": "v2""#);
        text.push_str(&log(130, 60, 20, 0, 0, r#", "weight": 0"#));
        text.push_str(&log(
            190,
            400,
            20,
            5,
            0,
            r#", "weight": 10, "revision": "v3""#,
        ));
        let setup = with_judge(JudgeKind::Threshold);
        let (out, summary) = run(&text, &setup);
        assert_eq!(summary.rollouts, 2, "{:#?}", out.rollouts);
        assert_eq!(out.rollouts[0].revision.as_deref(), Some("v2"));
        assert_eq!(out.rollouts[0].outcome, RolloutOutcome::Ended);
        assert!(
            out.rollouts[0].reason.contains("released"),
            "{:?}",
            out.rollouts[0]
        );
        assert_eq!(out.rollouts[1].revision.as_deref(), Some("v3"));
        // Its first request, answered at T+190.000, was routed 2.5 ms before.
        assert_eq!(out.rollouts[1].started, (T + 189) as f64);
        // The second rollout starts fresh: no failed check carried over.
        let second: Vec<&TickReport> = out.ticks.iter().filter(|t| t.rollout == 2).collect();
        assert!(second.iter().all(|t| t.failed_checks == 0), "{second:#?}");
        assert_eq!(out.rollouts[1].outcome, RolloutOutcome::Promoted);
        assert_eq!(summary.revisions, ["v2", "v3"]);
        // One revision only.
        let mut only = setup.clone();
        only.revision = Some("v3".into());
        let (out, summary) = run(&text, &only);
        assert_eq!(summary.rollouts, 1);
        assert!(
            out.ticks
                .iter()
                .all(|t| t.revision.as_deref() == Some("v3"))
        );
        only.revision = Some("v9".into());
        let (_, summary) = run(&text, &only);
        let why = summary.unusable(&only).unwrap();
        assert!(why.contains("v9") && why.contains("v2, v3"), "{why}");
    }

    #[test]
    fn without_revisions_a_quiet_interval_separates_rollouts() {
        // A rollback, a minute and a half without canary requests, another rollout.
        let mut text = log(0, 100, 20, 5, 3, "");
        text.push_str(&log(100, 90, 20, 0, 0, ""));
        text.push_str(&log(190, 400, 20, 5, 0, ""));
        let (out, summary) = run(&text, &ReplaySetup::defaults());
        assert_eq!(summary.rollouts, 2, "{:#?}", out.rollouts);
        assert_eq!(out.rollouts[0].outcome, RolloutOutcome::RolledBack);
        assert_eq!(out.rollouts[1].started, (T + 190) as f64);
        assert_eq!(summary.rolled_back, 1);
    }

    #[test]
    fn malformed_lines_are_counted_and_skipped() {
        let mut text = String::from("\nnot json\n");
        text.push_str("{\"ts\": 2, \"version\": \"blue\", \"status\": 200, \"latency_ms\": 1}\n");
        text.push_str(&" ".repeat(MAX_LINE_BYTES + 10));
        text.push('\n');
        text.push_str(&log(0, 100, 20, 5, 0, ""));
        let (out, summary) = run(&text, &ReplaySetup::defaults());
        assert_eq!(summary.malformed, 3);
        assert_eq!(
            out.malformed.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            [2, 3, 4]
        );
        assert!(
            out.malformed[1].1.starts_with("version"),
            "{:?}",
            out.malformed
        );
        assert!(
            out.malformed[2].1.starts_with("longer than"),
            "{:?}",
            out.malformed
        );
        assert_eq!(summary.records, 2000);
        assert_eq!(summary.rollouts, 1);
        assert!(summary.unusable(&ReplaySetup::defaults()).is_none());
    }

    #[test]
    fn logs_with_nothing_to_judge_say_why() {
        let setup = ReplaySetup::defaults();
        let why = |text: &str| run(text, &setup).1.unusable(&setup).unwrap();
        assert!(why("").contains("no request record"), "{}", why(""));
        assert!(why("\n\n").contains("no request record"));
        let garbage = why("garbage\n{\"ts\": -1}\n");
        assert!(
            garbage.contains("none of its 2 lines") && garbage.contains("line 1"),
            "{garbage}"
        );
        let stable = why(&log(0, 10, 5, 0, 0, ""));
        assert!(
            stable.contains("no request to the canary in its 50 requests"),
            "{stable}"
        );
    }

    #[test]
    fn a_hole_in_the_log_ends_the_rollout_in_bounded_steps() {
        let mut text = log(0, 30, 20, 5, 0, "");
        text.push_str(&log(10_000_000, 1, 20, 5, 0, ""));
        let (out, summary) = run(&text, &ReplaySetup::defaults());
        assert_eq!(summary.rollouts, 2);
        assert_eq!(out.rollouts[0].outcome, RolloutOutcome::Ended);
        assert!(
            out.rollouts[0].reason.contains("no request for"),
            "{:?}",
            out.rollouts[0]
        );
        assert_eq!(out.rollouts[1].outcome, RolloutOutcome::InProgress);
    }

    #[test]
    fn a_weight_the_replay_did_not_set_is_a_divergence() {
        // The log says the live rollout went to 20 % after its first minute;
        // the threshold judge fails every check here, so the replay stays at 10.
        let mut text = log(0, 61, 20, 5, 2, r#", "weight": 10"#);
        text.push_str(&log(61, 30, 20, 5, 2, r#", "weight": 20"#));
        let (out, _) = run(&text, &with_judge(JudgeKind::Threshold));
        let diverged = out.rollouts[0].diverged.as_deref().unwrap();
        assert!(
            diverged.contains("weight is 20 where the replay's is 10"),
            "{diverged}"
        );
    }

    #[test]
    fn records_parse_with_or_without_the_optional_fields() {
        let mut interned = None;
        let r = parse_record(
            r#"{"ts": 1764150000.123, "version": "canary", "status": 503, "latency_ms": 12.5, "weight": 25, "revision": "v2", "other": 1}"#,
            &mut interned,
        )
        .unwrap()
        .unwrap();
        assert_eq!(r.ts_ms, 1_764_150_000_123);
        assert_eq!(r.latency, Duration::from_micros(12_500));
        assert_eq!(r.routed_ms(), 1_764_150_000_111);
        assert_eq!((r.weight, r.revision.as_deref()), (Some(25), Some("v2")));
        let again = parse_record(
            r#"{"ts": 1, "version": "stable", "status": 200, "latency_ms": 1, "revision": "v2"}"#,
            &mut interned,
        )
        .unwrap()
        .unwrap();
        assert!(Arc::ptr_eq(
            r.revision.as_ref().unwrap(),
            again.revision.as_ref().unwrap()
        ));
        for bad in [
            r#"{"ts": 1, "version": "stable", "status": 200, "latency_ms": 1, "weight": 101}"#,
            r#"{"ts": 1, "version": "stable", "status": 200, "latency_ms": -1}"#,
            r#"{"ts": 1e300, "version": "stable", "status": 200, "latency_ms": 1}"#,
            r#"{"ts": 1, "version": "stable", "status": 200}"#,
        ] {
            assert!(parse_record(bad, &mut interned).is_err(), "{bad}");
        }
        assert_eq!(parse_record("   ", &mut interned), Ok(None));
    }

    #[test]
    fn an_invalid_setup_is_refused_before_reading() {
        let mut setup = ReplaySetup::defaults();
        setup.analysis.alpha = 2.0;
        let mut sink = Collect::default();
        assert!(matches!(
            replay("not json\n".as_bytes(), &setup, &mut sink),
            Err(ReplayError::Config(_))
        ));
        assert!(sink.malformed.is_empty());
    }

    proptest::proptest! {
        #[test]
        fn no_log_makes_a_replay_panic(lines in proptest::collection::vec(
            proptest::prop_oneof![
                ".{0,80}",
                r#"\{"ts": 17641500[0-9]{2}\.[0-9]{3}, "version": "(stable|canary)", "status": (200|503), "latency_ms": [0-9]{1,4}(, "weight": [0-9]{1,3})?(, "revision": "v[0-9]")?\}"#,
            ],
            0..60,
        )) {
            let text = lines.join("\n");
            let mut sink = Collect::default();
            let _ = replay(text.as_bytes(), &ReplaySetup::defaults(), &mut sink);
        }
    }
}
