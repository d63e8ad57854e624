//! Showing a rollout as it happens: a live progress display on a terminal,
//! plain lines in logs and CI, or JSON lines for programs.

use crate::cli::Output;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serin_analysis::{MetricStatus, Verdict};
use serin_daemon::revisions::{Tracker, metric_words};
use serin_server::Update;
use std::{io::IsTerminal, time::Duration};
use tokio::sync::broadcast;

/// Prints updates until the channel closes; returns what became of the
/// revisions seen (for the last line). `threshold`: the plan's failed checks
/// that roll back.
pub async fn show(
    mut updates: broadcast::Receiver<Update>,
    output: Output,
    name: String,
    threshold: u32,
) -> Tracker {
    let mut view = View::new(output, name, threshold);
    loop {
        match updates.recv().await {
            Ok(update) => view.update(&update),
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                view.line(&format!("({missed} updates skipped)"))
            }
            Err(broadcast::error::RecvError::Closed) => break,
        }
    }
    view.finish()
}

struct View {
    mode: Mode,
    name: String,
    /// Latest numbers, shown on the live line.
    weight: u8,
    phase: String,
    failed_checks: u32,
    canary_rps: f64,
    stable_rps: f64,
    last_decision: String,
    /// Each metric, canary vs stable, from the last decision.
    metrics: String,
    /// The last decision's reasons as the state machine quotes them in its
    /// records: printed with the decision, left out of the records.
    quoted_reasons: Option<String>,
    step: u32,
    /// What became of each revision.
    tracker: Tracker,
}

enum Mode {
    Live(ProgressBar),
    Plain,
    Json,
}

impl View {
    fn new(output: Output, name: String, threshold: u32) -> Self {
        let terminal = std::io::stderr().is_terminal();
        let mode = match output {
            Output::Json => Mode::Json,
            Output::Plain => Mode::Plain,
            Output::Auto if terminal => {
                let bar = ProgressBar::with_draw_target(Some(100), ProgressDrawTarget::stderr());
                // The template is a constant known to parse.
                let style = ProgressStyle::with_template(
                    "{prefix:.bold} [{bar:30.cyan/blue}] {pos:>3}% canary  {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
                bar.set_style(style);
                bar.set_prefix(name.clone());
                bar.enable_steady_tick(Duration::from_millis(250));
                Mode::Live(bar)
            }
            Output::Auto => Mode::Plain,
        };
        View {
            mode,
            name,
            weight: 0,
            phase: "Initializing".into(),
            failed_checks: 0,
            canary_rps: 0.0,
            stable_rps: 0.0,
            last_decision: String::new(),
            metrics: String::new(),
            quoted_reasons: None,
            step: 0,
            tracker: Tracker::new(Some(threshold), None),
        }
    }

    fn update(&mut self, update: &Update) {
        match update {
            Update::Decision { decision, .. } => self.tracker.decision(decision),
            Update::State { state, .. } => {
                self.tracker.state(state);
            }
            _ => {}
        }
        if let Mode::Json = self.mode {
            if let Ok(line) = serde_json::to_string(update) {
                println!("{line}");
            }
            return;
        }
        match update {
            Update::Record { at, record } => {
                let kind = match record.severity {
                    serin_rollout::Severity::Normal => "",
                    serin_rollout::Severity::Warning => "warning: ",
                };
                // The evidence was printed with the decision: the record
                // says what the machine did with it, without quoting it again.
                let message = match &self.quoted_reasons {
                    Some(quoted) if record.message.contains(quoted.as_str()) => record
                        .message
                        .replace(&format!(": {quoted}"), "")
                        .replace(quoted.as_str(), ""),
                    _ => record.message.clone(),
                };
                self.line(&format!(
                    "{} {} {kind}{message}",
                    clock(at.as_millis()),
                    self.name,
                ));
            }
            Update::Decision { at, decision } => {
                self.last_decision = decision.verdict.to_string();
                self.metrics = decision
                    .metrics
                    .iter()
                    .map(|m| {
                        format!(
                            "{} {}/{}",
                            short_name(&m.name),
                            number(m.canary),
                            number(m.stable)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("  ");
                // One line per metric in plain words; the judge's full
                // statistics stay in --output json, the API and the dashboard.
                for metric in &decision.metrics {
                    self.line(&format!(
                        "{} {}   {}",
                        clock(at.as_millis()),
                        self.name,
                        metric_words(metric)
                    ));
                }
                self.quoted_reasons =
                    (!decision.reasons.is_empty()).then(|| decision.reasons.join("; "));
                // The metric lines above say what passed and failed, and a
                // rollback's reason is the run's last line: the judge's
                // summary only when they cannot (a hold waits for something,
                // or no metric failed).
                let metric_failed = decision
                    .metrics
                    .iter()
                    .any(|m| matches!(m.status, MetricStatus::Fail | MetricStatus::Harm));
                let say_why = match decision.verdict {
                    Verdict::Pass => false,
                    Verdict::Hold => true,
                    Verdict::Fail | Verdict::Rollback => !metric_failed,
                };
                let reasons = match decision.reasons.first() {
                    Some(first) if say_why => {
                        format!(": {}", first.split("; ").next().unwrap_or(first))
                    }
                    _ => String::new(),
                };
                self.line(&format!(
                    "{} {} decision {}{reasons}",
                    clock(at.as_millis()),
                    self.name,
                    self.last_decision
                ));
            }
            Update::State { state, .. } => {
                self.weight = state.canary_weight;
                self.phase = state.phase.to_string();
                self.failed_checks = state.failed_checks;
                self.step = state.step_index;
            }
            Update::Webhook { at, kind, answer } => {
                for call in &answer.calls {
                    let outcome = match (call.status, &call.error) {
                        (Some(status), _) => format!("answered {status}"),
                        (None, Some(_)) => "failed".to_owned(),
                        (None, None) => "no answer".to_owned(),
                    };
                    // What a refusing receiver said, or why the call failed.
                    let detail = call.body.as_ref().or(call.error.as_ref());
                    self.line(&format!(
                        "{} {} {kind} webhook {} {outcome} in {} ms{}",
                        clock(at.as_millis()),
                        self.name,
                        call.name,
                        call.millis,
                        detail.map(|d| format!(": {d}")).unwrap_or_default()
                    ));
                }
            }
            Update::Traffic { delta, .. } => {
                self.canary_rps = delta.canary.requests as f64;
                self.stable_rps = delta.stable.requests as f64;
            }
            // The warning record that goes with it says it in words.
            Update::Repaired { .. } => {}
        }
        if let Mode::Live(bar) = &self.mode {
            bar.set_position(u64::from(self.weight));
            bar.set_message(format!(
                "step {} {}  checks failed {}  rps {:.0}/{:.0}  {}  (canary/stable)  last: {}",
                self.step,
                self.phase,
                self.failed_checks,
                self.canary_rps,
                self.stable_rps,
                self.metrics,
                self.last_decision
            ));
        }
    }

    fn line(&self, text: &str) {
        match &self.mode {
            Mode::Live(bar) => bar.println(text),
            Mode::Plain => eprintln!("{text}"),
            Mode::Json => {}
        }
    }

    fn finish(self) -> Tracker {
        if let Mode::Live(bar) = self.mode {
            bar.finish_and_clear();
        }
        self.tracker
    }
}

/// A metric name short enough for the live line.
fn short_name(name: &str) -> &str {
    match name {
        "request-success-rate" => "success%",
        "request-duration" => "p99ms",
        other => other.strip_prefix("request-duration-").unwrap_or(other),
    }
}

/// A value with as many decimals as it needs, or `-` without data.
fn number(value: Option<f64>) -> String {
    match value {
        Some(v) if v.is_finite() && v.abs() >= 100.0 => format!("{v:.0}"),
        Some(v) if v.is_finite() => format!("{v:.1}"),
        _ => "-".to_owned(),
    }
}

/// `HH:MM:SS` of a Unix time in milliseconds, UTC.
fn clock(millis: u64) -> String {
    let secs = millis / 1000;
    format!(
        "{:02}:{:02}:{:02}",
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60
    )
}
