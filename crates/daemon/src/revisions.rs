//! What became of each revision: one record per rollout of a revision —
//! promoted, rolled back, superseded by a later start before its verdict, or
//! still in progress — with the reason in a few plain words.
//!
//! The same [`Tracker`] follows a rollout wherever it runs: the store feeds
//! it every saved state (in the transaction that saves the state, so a
//! verdict is never lost), `serin run` feeds it the updates it shows, and
//! `serin status --wait --revision` reads the records through the API. Pure:
//! values in, values out.

use serde::{Deserialize, Serialize};
use serin_analysis::{Decision, MetricEvidence, MetricStatus, Verdict};
use serin_rollout::{Phase, RolloutState, Timestamp};
use std::time::Duration;

/// Longest reason kept; longer ones end in `…` (the full text stays in
/// `message` and in the history).
pub const MAX_REASON_CHARS: usize = 240;

/// How a revision's rollout ended, or that it has not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// No verdict yet.
    InProgress,
    /// Promoted: the revision is the stable version now.
    Promoted,
    /// Rolled back (failed analysis, a manual abort, a deadline, a webhook).
    RolledBack,
    /// Another revision was started before this one's verdict.
    Superseded,
}

// === impl Outcome ===

impl Outcome {
    /// The outcome's name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::InProgress => "in-progress",
            Outcome::Promoted => "promoted",
            Outcome::RolledBack => "rolled-back",
            Outcome::Superseded => "superseded",
        }
    }
}

/// The last analysis of a rollout, in brief.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastAnalysis {
    /// The judge's verdict.
    pub verdict: Verdict,
    /// The metrics that failed, in plain words (or the judge's first reason).
    pub words: String,
}

/// One rollout of one revision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RevisionOutcome {
    /// The revision.
    pub revision: String,
    /// The phase its rollout reached: `Succeeded` or `Failed` once decided;
    /// the phase it was in when superseded.
    pub phase: Phase,
    /// How it ended.
    pub outcome: Outcome,
    /// The revision started before this one's verdict, when superseded.
    pub superseded_by: Option<String>,
    /// When its rollout started.
    pub started_at: Option<Timestamp>,
    /// When it was decided (or superseded).
    pub ended_at: Option<Timestamp>,
    /// Canary steps taken.
    pub steps: u32,
    /// The canary weight it reached: the weight it was promoted or rolled
    /// back at once decided.
    pub canary_weight: u8,
    /// Failed checks.
    pub failed_checks: u32,
    /// Failed checks that roll back (`analysis.threshold`), when known.
    pub threshold: Option<u32>,
    /// Iterations done (A/B testing, blue/green).
    pub iterations: u32,
    /// Why it ended as it did, in a few words; while in progress, what the
    /// last analysis found wrong, if anything.
    pub reason: String,
    /// The rollout's last message, in full.
    pub message: String,
    /// The last analysis.
    #[serde(default)]
    pub last_analysis: Option<LastAnalysis>,
}

// === impl RevisionOutcome ===

impl RevisionOutcome {
    /// A rollout of `revision` that began at `started_at`.
    pub fn begin(revision: &str, started_at: Option<Timestamp>) -> Self {
        RevisionOutcome {
            revision: revision.to_owned(),
            phase: Phase::Waiting,
            outcome: Outcome::InProgress,
            superseded_by: None,
            started_at,
            ended_at: None,
            steps: 0,
            canary_weight: 0,
            failed_checks: 0,
            threshold: None,
            iterations: 0,
            reason: String::new(),
            message: String::new(),
            last_analysis: None,
        }
    }

    /// The verdict is in (or another revision took its place).
    pub fn is_done(&self) -> bool {
        self.outcome != Outcome::InProgress
    }

    /// How long the rollout took, once it ended.
    pub fn took(&self) -> Option<Duration> {
        Some(self.ended_at?.saturating_since(self.started_at?))
    }

    /// One sentence: which revision ended how and why, e.g. `myapp: revision
    /// v13 rolled back at canary weight 20 %: request-success-rate canary
    /// 97.1 % < min 99 (3 failed checks of 5)`.
    pub fn sentence(&self, canary: &str) -> String {
        let revision = &self.revision;
        match self.outcome {
            Outcome::Promoted => {
                let mut out = format!(
                    "{canary}: revision {revision} promoted after {} (canary weight {} %)",
                    self.progress_words(),
                    self.canary_weight
                );
                if let Some(took) = self.took() {
                    out.push_str(&format!(" in {}", human(took)));
                }
                if !self.reason.is_empty() && !self.reason.starts_with("analysis passed") {
                    out.push_str(&format!(": {}", self.reason));
                }
                out
            }
            Outcome::RolledBack => format!(
                "{canary}: revision {revision} rolled back at canary weight {} %: {}",
                self.canary_weight,
                if self.reason.is_empty() {
                    "no reason recorded"
                } else {
                    &self.reason
                }
            ),
            Outcome::Superseded => format!(
                "{canary}: revision {revision} was superseded by {} before its verdict",
                self.superseded_by.as_deref().unwrap_or("another revision")
            ),
            Outcome::InProgress => {
                let mut out = format!(
                    "{canary}: revision {revision} has no verdict yet ({}, canary weight {} %, failed checks {})",
                    self.phase, self.canary_weight, self.failed_checks
                );
                if !self.reason.is_empty() {
                    out.push_str(&format!("; last analysis: {}", self.reason));
                }
                out
            }
        }
    }

    fn progress_words(&self) -> String {
        match (self.steps, self.iterations) {
            (0, n) if n > 0 => plural(n, "iteration"),
            (n, _) => plural(n, "step"),
        }
    }

    /// Follows a state of this rollout.
    fn follow(&mut self, state: &RolloutState, threshold: Option<u32>) {
        if self.is_done() {
            return;
        }
        self.phase = state.phase;
        self.failed_checks = state.failed_checks;
        self.iterations = state.iterations;
        if threshold.is_some() {
            self.threshold = threshold;
        }
        if state.phase.is_before_promotion() {
            // The weight it is judged at; a rollback or promotion moves the
            // traffic away afterwards, the record keeps where it stood.
            self.canary_weight = state.canary_weight;
            self.steps = state.step_index;
        }
        self.message.clone_from(&state.message);
        match state.phase {
            Phase::Promoting if self.reason.is_empty() || self.last_is_reason() => {
                self.reason = promotion_reason(&state.message);
            }
            Phase::Succeeded => {
                if self.reason.is_empty() || self.last_is_reason() {
                    self.reason = promotion_reason(&state.message);
                }
                self.end(Outcome::Promoted, state.last_transition_time);
            }
            Phase::Failed => {
                self.reason = self.rollback_reason(state);
                self.end(Outcome::RolledBack, state.last_transition_time);
            }
            _ => {}
        }
    }

    /// Whether `reason` still holds the last analysis' words (in progress).
    fn last_is_reason(&self) -> bool {
        self.last_analysis
            .as_ref()
            .is_some_and(|last| last.words == self.reason)
    }

    fn end(&mut self, outcome: Outcome, at: Timestamp) {
        self.outcome = outcome;
        self.ended_at = Some(at);
    }

    /// Why the rollout at `state` (phase `Failed`) was rolled back.
    fn rollback_reason(&self, state: &RolloutState) -> String {
        let machine = machine_reason(&state.message);
        let analysis = self
            .last_analysis
            .as_ref()
            .filter(|last| matches!(last.verdict, Verdict::Fail | Verdict::Rollback));
        let reached = self
            .threshold
            .filter(|threshold| state.failed_checks > 0 && state.failed_checks >= *threshold);
        let reason = match (reached, analysis) {
            (Some(threshold), last) => {
                // What failed last: the analysis, or a webhook.
                let what = match (&state.stall_reason, last) {
                    (Some(stall), _) if !stall.starts_with("analysis failed") => stall.clone(),
                    (_, Some(last)) => last.words.clone(),
                    (Some(stall), None) => stall.clone(),
                    (None, None) => machine,
                };
                format!(
                    "{what} ({} failed checks of {threshold})",
                    state.failed_checks
                )
            }
            (None, Some(last)) if last.verdict == Verdict::Rollback => {
                format!("{} (decisive evidence of harm)", last.words)
            }
            (None, _) => machine,
        };
        shorten(&reason)
    }

    /// Another revision was started before this one's verdict; or, when
    /// promotion was underway (a revision started then waits for it), this
    /// one was promoted.
    fn replaced(&mut self, by: &str, at: Timestamp) {
        if self.is_done() {
            return;
        }
        if self.phase.is_promoting() {
            // The state machine never rolls back once promotion began: the
            // queued revision starts as promotion completes.
            self.phase = Phase::Succeeded;
            if self.reason.is_empty() || self.last_is_reason() {
                self.reason = "analysis passed".to_owned();
            }
            self.end(Outcome::Promoted, at);
        } else {
            self.superseded_by = Some(by.to_owned());
            self.reason = format!("superseded by {by} before its verdict");
            self.end(Outcome::Superseded, at);
        }
    }

    fn decision(&mut self, decision: &Decision) {
        if self.is_done() {
            return;
        }
        let words = analysis_words(decision);
        let wrong = matches!(decision.verdict, Verdict::Fail | Verdict::Rollback);
        if wrong {
            self.reason.clone_from(&words);
        } else if self.last_is_reason() {
            self.reason.clear();
        }
        self.last_analysis = Some(LastAnalysis {
            verdict: decision.verdict,
            words,
        });
    }
}

/// What one saved state did to the revision records.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Step {
    /// The record the state ended by starting another rollout (superseded,
    /// or promoted as a queued revision started).
    pub ended: Option<RevisionOutcome>,
    /// The state began a new record (now [`Tracker::current`]).
    pub began: bool,
}

/// Follows one canary's rollouts, revision by revision.
#[derive(Clone, Debug, Default)]
pub struct Tracker {
    threshold: Option<u32>,
    current: Option<RevisionOutcome>,
}

// === impl Tracker ===

impl Tracker {
    /// A tracker that goes on from `current` (the canary's latest record),
    /// for a plan rolling back at `threshold` failed checks when known.
    pub fn new(threshold: Option<u32>, current: Option<RevisionOutcome>) -> Self {
        Tracker { threshold, current }
    }

    /// The latest rollout's record.
    pub fn current(&self) -> Option<&RevisionOutcome> {
        self.current.as_ref()
    }

    /// An analysis of the rollout in progress (decisions come before the
    /// state they lead to).
    pub fn decision(&mut self, decision: &Decision) {
        if let Some(current) = &mut self.current {
            current.decision(decision);
        }
    }

    /// A state of the canary's rollout, in order.
    pub fn state(&mut self, state: &RolloutState) -> Step {
        let Some(revision) = state.revision.as_deref() else {
            return Step::default();
        };
        let same = self.current.as_ref().is_some_and(|current| {
            current.revision == revision && current.started_at == state.started_at
        });
        if same {
            if let Some(current) = &mut self.current {
                current.follow(state, self.threshold);
            }
            return Step::default();
        }
        let ended = match self.current.take() {
            Some(mut previous) if !previous.is_done() => {
                previous.replaced(revision, state.last_event_at);
                Some(previous)
            }
            _ => None,
        };
        let mut began = RevisionOutcome::begin(revision, state.started_at);
        began.follow(state, self.threshold);
        self.current = Some(began);
        Step { ended, began: true }
    }
}

/// One metric of one analysis in plain words, e.g. `request-success-rate:
/// canary 91.2 % vs stable 100 % over 68 canary requests: harm (below min
/// 99)`. The judge's full statistics stay in the decision's evidence.
pub fn metric_words(metric: &MetricEvidence) -> String {
    let unit = unit_of(&metric.name);
    let mut out = format!("{}: ", metric.name);
    match (metric.canary, metric.stable) {
        (Some(canary), Some(stable)) => out.push_str(&format!(
            "canary {}{unit} vs stable {}{unit}",
            num(canary),
            num(stable)
        )),
        (Some(canary), None) => out.push_str(&format!("canary {}{unit}", num(canary))),
        (None, _) => out.push_str("no canary value"),
    }
    if metric.canary_requests > 0 {
        out.push_str(&format!(
            " over {} canary request{}",
            metric.canary_requests,
            if metric.canary_requests == 1 { "" } else { "s" }
        ));
    }
    let status = match metric.status {
        MetricStatus::Pass => "ok",
        MetricStatus::Inconclusive => "no verdict yet",
        MetricStatus::Fail => "failed",
        MetricStatus::Harm => "harm",
        MetricStatus::NoData => "no data",
    };
    out.push_str(&format!(": {status}"));
    if matches!(metric.status, MetricStatus::Fail | MetricStatus::Harm) {
        let bound = match (metric.canary, metric.range) {
            (Some(canary), (Some(min), _)) if canary < min => format!("below min {}", num(min)),
            (Some(canary), (_, Some(max))) if canary > max => format!("above max {}", num(max)),
            (Some(_), _) if metric.stable.is_some() => "worse than stable".to_owned(),
            _ => String::new(),
        };
        if !bound.is_empty() {
            out.push_str(&format!(" ({bound})"));
        }
    }
    out
}

/// What an analysis found wrong, in plain words: each failing metric
/// against the bound it broke, or the judge's first reason.
pub fn analysis_words(decision: &Decision) -> String {
    let failing: Vec<String> = decision
        .metrics
        .iter()
        .filter(|m| matches!(m.status, MetricStatus::Fail | MetricStatus::Harm))
        .map(failing_words)
        .collect();
    if !failing.is_empty() {
        return shorten(&failing.join("; "));
    }
    let first = decision
        .reasons
        .first()
        .map(|r| r.split("; ").next().unwrap_or(r).to_owned())
        .unwrap_or_else(|| "no reason given".to_owned());
    shorten(&first)
}

/// A failing metric against the bound it broke, e.g. `request-success-rate
/// canary 97.1 % < min 99`.
fn failing_words(metric: &MetricEvidence) -> String {
    let unit = unit_of(&metric.name);
    let name = &metric.name;
    match (metric.canary, metric.range, metric.stable) {
        (Some(canary), (Some(min), _), _) if canary < min => {
            format!("{name} canary {}{unit} < min {}", num(canary), num(min))
        }
        (Some(canary), (_, Some(max)), _) if canary > max => {
            format!("{name} canary {}{unit} > max {}", num(canary), num(max))
        }
        (Some(canary), _, Some(stable)) => format!(
            "{name} canary {}{unit} vs stable {}{unit}",
            num(canary),
            num(stable)
        ),
        (Some(canary), _, None) => format!("{name} canary {}{unit}", num(canary)),
        (None, _, _) => format!("{name} has no canary value"),
    }
}

/// The unit a built-in metric is measured in, with its leading space.
fn unit_of(name: &str) -> &'static str {
    if name == "request-success-rate" {
        " %"
    } else if name.starts_with("request-duration") {
        " ms"
    } else {
        ""
    }
}

/// The rollback's reason as the state machine gave it: the words between
/// `Rolling back: ` and `. Canary failed!`.
fn machine_reason(message: &str) -> String {
    let reason = message.strip_prefix("Rolling back: ").unwrap_or(message);
    let reason = reason
        .split_once(". Canary failed!")
        .map_or(reason, |(reason, _)| reason);
    shorten(reason)
}

/// Why a revision was promoted, from the machine's `Copying canary revision
/// … to primary: REASON` (the whole message otherwise).
fn promotion_reason(message: &str) -> String {
    let reason = message
        .split_once(" to primary: ")
        .map_or(message, |(_, reason)| reason);
    shorten(reason)
}

/// At most [`MAX_REASON_CHARS`] characters.
fn shorten(text: &str) -> String {
    if text.chars().count() <= MAX_REASON_CHARS {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(MAX_REASON_CHARS - 1).collect();
    out.push('…');
    out
}

/// A number with the digits it needs: `99`, `97.1`, `250`, `0.042`.
pub fn num(value: f64) -> String {
    if !value.is_finite() {
        return "-".to_owned();
    }
    let text = if value.abs() >= 100.0 {
        format!("{value:.0}")
    } else if value.abs() >= 1.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.3}")
    };
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

fn plural(n: u32, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

/// `4m12s`, `1h3m`, `45s`, `250ms`.
pub fn human(d: Duration) -> String {
    let millis = d.as_millis();
    if millis < 1000 {
        return format!("{millis}ms");
    }
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serin_rollout::{Event, Plan, Strategy};

    fn at(secs: u64) -> Timestamp {
        Timestamp::from_millis(1_700_000_000_000 + secs * 1000)
    }

    fn plan() -> Plan {
        Plan::new(
            Strategy::Canary {
                steps: vec![10, 20, 50],
            },
            Duration::from_secs(60),
            2,
        )
    }

    /// Drives the real state machine and a tracker side by side.
    struct Run {
        plan: Plan,
        state: RolloutState,
        tracker: Tracker,
        now: u64,
        ended: Vec<RevisionOutcome>,
    }

    impl Run {
        fn new() -> Self {
            let plan = plan();
            let mut state = RolloutState::new(at(0));
            serin_rollout::step(&mut state, &plan, at(0), Event::Initialize).unwrap();
            Run {
                tracker: Tracker::new(Some(plan.threshold), None),
                plan,
                state,
                now: 0,
                ended: Vec::new(),
            }
        }

        fn event(&mut self, event: Event) {
            self.now += 60;
            serin_rollout::step(&mut self.state, &self.plan, at(self.now), event).unwrap();
            let step = self.tracker.state(&self.state);
            self.ended.extend(step.ended);
        }

        fn start(&mut self, revision: &str) {
            self.event(Event::Start {
                revision: revision.into(),
            });
        }

        /// A tick and, when it asks for one, an analysis answering `decision`.
        fn analysis(&mut self, decision: &Decision) {
            self.event(Event::Tick);
            if self.state.pending == Some(serin_rollout::Pending::Analysis) {
                self.tracker.decision(decision);
                self.event(Event::Analysis(serin_server::analysis_result(decision)));
            }
        }

        fn current(&self) -> &RevisionOutcome {
            self.tracker.current().unwrap()
        }
    }

    fn metric(name: &str, status: MetricStatus, canary: f64, stable: f64) -> MetricEvidence {
        let mut m = MetricEvidence::new(name, status, format!("{name}: the judge's long reason"));
        m.canary = Some(canary);
        m.stable = Some(stable);
        m.canary_requests = 120;
        m.range = if name == "request-success-rate" {
            (Some(99.0), None)
        } else {
            (None, Some(500.0))
        };
        m
    }

    fn decision(verdict: Verdict, metrics: Vec<MetricEvidence>) -> Decision {
        Decision {
            verdict,
            at_ms: 0,
            reasons: vec![format!("the judge says {verdict}; and more")],
            metrics,
            hold: None,
        }
    }

    fn pass() -> Decision {
        decision(
            Verdict::Pass,
            vec![metric(
                "request-success-rate",
                MetricStatus::Pass,
                100.0,
                100.0,
            )],
        )
    }

    fn fail() -> Decision {
        decision(
            Verdict::Fail,
            vec![
                metric("request-success-rate", MetricStatus::Fail, 97.14, 100.0),
                metric("request-duration", MetricStatus::Pass, 20.0, 18.0),
            ],
        )
    }

    #[test]
    fn a_promotion_says_how_far_it_went_and_how_long_it_took() {
        let mut run = Run::new();
        run.start("v13");
        for _ in 0..10 {
            if run.state.phase.is_terminal() {
                break;
            }
            if run.state.phase.is_before_promotion() {
                run.analysis(&pass());
            } else {
                run.event(Event::Tick);
            }
        }
        let current = run.current();
        assert_eq!(current.outcome, Outcome::Promoted, "{current:?}");
        assert_eq!(current.phase, Phase::Succeeded);
        assert_eq!((current.steps, current.canary_weight), (3, 50));
        let sentence = current.sentence("myapp");
        assert!(
            sentence
                .starts_with("myapp: revision v13 promoted after 3 steps (canary weight 50 %) in "),
            "{sentence}"
        );
    }

    #[test]
    fn a_rollback_on_failed_checks_names_the_metric_and_the_count() {
        let mut run = Run::new();
        run.start("v13");
        run.analysis(&pass());
        run.analysis(&pass());
        run.analysis(&fail());
        assert_eq!(run.current().outcome, Outcome::InProgress);
        assert_eq!(
            run.current().reason,
            "request-success-rate canary 97.1 % < min 99"
        );
        run.analysis(&fail());
        let current = run.current();
        assert_eq!(current.outcome, Outcome::RolledBack);
        assert_eq!(
            current.sentence("myapp"),
            "myapp: revision v13 rolled back at canary weight 20 %: request-success-rate canary 97.1 % < min 99 (2 failed checks of 2)"
        );
    }

    #[test]
    fn decisive_harm_and_an_abort_say_so() {
        let mut run = Run::new();
        run.start("v13");
        run.analysis(&pass());
        run.analysis(&pass());
        let harm = decision(
            Verdict::Rollback,
            vec![metric("request-duration", MetricStatus::Harm, 640.0, 20.0)],
        );
        run.tracker.decision(&harm);
        run.event(Event::Harm {
            reasons: harm.reasons.clone(),
        });
        assert_eq!(
            run.current().reason,
            "request-duration canary 640 ms > max 500 (decisive evidence of harm)"
        );
        assert_eq!(run.current().canary_weight, 20);

        run.start("v14");
        run.event(Event::Abort);
        let current = run.current();
        assert_eq!(current.revision, "v14");
        assert_eq!(current.outcome, Outcome::RolledBack);
        assert!(
            current.reason.starts_with("aborted by operator"),
            "{current:?}"
        );
        assert!(run.ended.is_empty(), "v13 had its verdict: {:?}", run.ended);
    }

    #[test]
    fn a_start_before_the_verdict_supersedes_the_revision_in_progress() {
        let mut run = Run::new();
        run.start("v13");
        run.analysis(&pass());
        run.start("v14");
        assert_eq!(run.ended.len(), 1);
        let v13 = &run.ended[0];
        assert_eq!(v13.outcome, Outcome::Superseded);
        assert_eq!(v13.superseded_by.as_deref(), Some("v14"));
        assert_eq!(
            v13.sentence("myapp"),
            "myapp: revision v13 was superseded by v14 before its verdict"
        );
        assert_eq!(run.current().revision, "v14");
        assert!(!run.current().is_done());
    }

    #[test]
    fn a_revision_queued_during_promotion_leaves_the_promotion_standing() {
        let mut run = Run::new();
        run.start("v13");
        while run.state.phase.is_before_promotion() {
            run.analysis(&pass());
        }
        assert_eq!(run.state.phase, Phase::Promoting);
        run.start("v14");
        while run.state.revision.as_deref() == Some("v13") {
            run.event(Event::Tick);
        }
        assert_eq!(run.ended.len(), 1, "{:?}", run.ended);
        assert_eq!(run.ended[0].outcome, Outcome::Promoted);
        assert_eq!(run.current().revision, "v14");
    }

    #[test]
    fn the_same_revision_started_again_is_a_new_rollout() {
        let mut run = Run::new();
        run.start("v13");
        run.event(Event::Abort);
        run.start("v13");
        assert!(run.ended.is_empty());
        assert_eq!(run.current().outcome, Outcome::InProgress);
    }

    #[test]
    fn plain_words_for_one_metric() {
        let m = metric("request-success-rate", MetricStatus::Harm, 91.25, 100.0);
        assert_eq!(
            metric_words(&m),
            "request-success-rate: canary 91.2 % vs stable 100 % over 120 canary requests: harm (below min 99)"
        );
        let m = metric("request-duration", MetricStatus::Inconclusive, 42.0, 17.9);
        assert_eq!(
            metric_words(&m),
            "request-duration: canary 42 ms vs stable 17.9 ms over 120 canary requests: no verdict yet"
        );
        assert_eq!(num(0.0421), "0.042");
        assert_eq!(human(Duration::from_secs(252)), "4m12s");
    }

    #[test]
    fn records_read_back_as_written() {
        let mut run = Run::new();
        run.start("v13");
        run.analysis(&fail());
        let text = serde_json::to_string(run.current()).unwrap();
        let back: RevisionOutcome = serde_json::from_str(&text).unwrap();
        assert_eq!(&back, run.current());
        assert!(text.contains("\"outcome\":\"in-progress\""), "{text}");
    }
}
