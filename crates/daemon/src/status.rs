//! A canary's status as the API shows it: Flagger's status fields
//! (`phase`, `canaryWeight`, `failedChecks`, `iterations`, `conditions`,
//! `lastTransitionTime`) plus where its proxy listens and what it routes to,
//! what serin cannot do for it right now (faults, as conditions after
//! Flagger's `Promoted`), and how its analysis compares it with stable.

use serde::{Deserialize, Serialize};
use serin_analysis::AnalysisConfig;
use serin_rollout::{ConditionStatus, Phase, RolloutState, Timestamp};
use serin_server::Placement;

/// The longest fault message kept; the log has the rest.
const MAX_FAULT_MESSAGE: usize = 2_000;

/// One canary's status.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CanaryStatus {
    /// The canary's name.
    pub name: String,
    /// Flagger's phase.
    pub phase: Phase,
    /// Percent of live traffic on the canary.
    pub canary_weight: u8,
    /// Failed checks of the current revision.
    pub failed_checks: u32,
    /// Iterations done (A/B testing, blue/green).
    pub iterations: u32,
    /// The revision rolled out (or last rolled out).
    pub revision: Option<String>,
    /// Whether a person paused the rollout.
    pub paused: bool,
    /// The last decision, in words.
    pub message: String,
    /// When the phase last changed (milliseconds since the Unix epoch).
    pub last_transition_time: Timestamp,
    /// Flagger's `Promoted` condition first, then a condition for each
    /// [`Fault`] that holds now (`ConfigReloadFailed`, `StateSaveFailed`).
    pub conditions: Vec<ConditionView>,
    /// Where the proxy accepts user traffic.
    pub listen: String,
    /// The stable upstream now.
    pub stable: String,
    /// The canary upstream of the revision last started.
    pub canary: Option<String>,
    /// When the next interval is due, while a rollout is in progress.
    pub next_tick_at: Option<Timestamp>,
    /// The file the canary came from.
    pub file: String,
    /// How the analysis judges each metric, as the file says (units and
    /// the comparison with stable), to read the evidence by.
    #[serde(default)]
    pub analysis: AnalysisView,
}

/// The analysis settings a reader of the evidence needs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisView {
    /// Each metric, in the file's order.
    pub metrics: Vec<MetricView>,
}

/// One analysis metric's checks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricView {
    /// The metric's name, as in the evidence.
    pub name: String,
    /// The unit of its values: `%` (request-success-rate; deltas are
    /// percentage points), `ms`, `req/s`, or empty for custom metrics.
    pub unit: String,
    /// Flagger's `thresholdRange`.
    pub threshold_range: RangeView,
    /// The comparison with stable, when the metric has one.
    pub compare: Option<CompareView>,
    /// How likely the evidence gathered so far was to have caught a
    /// planning-size regression (+1 point of errors, a p99 tail three times
    /// as heavy), from the latest decision of the sequential judge; what
    /// the promotion gate waits to reach 0.95. `None` before a decision, or
    /// for metrics (and judges) without a comparison that reports it.
    #[serde(default)]
    pub power: Option<f64>,
}

/// `thresholdRange`: inclusive bounds, either may be absent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RangeView {
    /// The lowest value that passes.
    pub min: Option<f64>,
    /// The highest value that passes.
    pub max: Option<f64>,
}

/// `compare`: how much worse than stable the canary may be.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompareView {
    /// At most this much worse, in the metric's unit (points for `%`).
    pub max_delta: Option<f64>,
    /// At most this many times worse (for the success rate: its error rate).
    pub max_ratio: Option<f64>,
}

// === impl AnalysisView ===

impl AnalysisView {
    /// What the judges were configured with.
    pub fn of(config: &AnalysisConfig) -> Self {
        AnalysisView {
            metrics: config
                .metrics
                .iter()
                .map(|metric| MetricView {
                    name: metric.name.clone(),
                    unit: metric.unit().trim().to_owned(),
                    threshold_range: RangeView {
                        min: metric.threshold_range.0,
                        max: metric.threshold_range.1,
                    },
                    compare: metric.compare.map(|c| CompareView {
                        max_delta: c.max_delta,
                        max_ratio: c.max_ratio,
                    }),
                    power: None,
                })
                .collect(),
        }
    }

    /// Follows a decision: each metric's power as the decision reports it.
    pub fn follow(&mut self, decision: &serin_analysis::Decision) {
        for metric in &mut self.metrics {
            metric.power = decision
                .metrics
                .iter()
                .find(|e| e.name == metric.name)
                .and_then(|e| e.power);
        }
    }
}

/// Something serin cannot do for a canary right now, through no fault of
/// its rollout; shown as a condition (`status: "True"`) while it lasts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Its file changed but the change was not applied (it does not parse
    /// or validate, or applying it was refused): the canary runs as before.
    ConfigReloadFailed,
    /// The state store refused to save its rollout (a full disk): the
    /// rollout holds where it was last saved until a save succeeds.
    StateSaveFailed,
}

// === impl Fault ===

impl Fault {
    /// The condition's `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Fault::ConfigReloadFailed => "ConfigReloadFailed",
            Fault::StateSaveFailed => "StateSaveFailed",
        }
    }

    /// The condition's `reason`.
    fn reason(self) -> &'static str {
        match self {
            Fault::ConfigReloadFailed => "ReloadRefused",
            Fault::StateSaveFailed => "StoreWriteFailed",
        }
    }
}

/// A Kubernetes-style condition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConditionView {
    /// `Promoted` (Flagger's), or a [`Fault`]'s name.
    #[serde(rename = "type")]
    pub kind: String,
    /// `True`, `False` or `Unknown`; a fault is `True` while it lasts.
    pub status: ConditionStatus,
    /// The phase that set `Promoted`; a fault's cause (`ReloadRefused`,
    /// `StoreWriteFailed`).
    pub reason: String,
    /// Why.
    pub message: String,
    /// When it last changed: for a fault, since when it holds.
    pub last_transition_time: Timestamp,
}

// === impl CanaryStatus ===

impl CanaryStatus {
    /// The status of a canary whose rollout stands at `state`.
    pub fn new(
        name: &str,
        file: &str,
        listen: String,
        file_stable: &str,
        state: &RolloutState,
        placement: &Placement,
    ) -> Self {
        CanaryStatus {
            name: name.to_owned(),
            phase: state.phase,
            canary_weight: state.canary_weight,
            failed_checks: state.failed_checks,
            iterations: state.iterations,
            revision: state.revision.clone(),
            paused: state.paused,
            message: state.message.clone(),
            last_transition_time: state.last_transition_time,
            conditions: vec![ConditionView {
                kind: "Promoted".into(),
                status: state.condition.status,
                reason: state.condition.reason.as_str().to_owned(),
                message: state.condition.message.clone(),
                last_transition_time: state.condition.last_transition_time,
            }],
            listen,
            stable: placement
                .stable
                .clone()
                .unwrap_or_else(|| file_stable.to_owned()),
            canary: placement.canary.clone(),
            next_tick_at: state.next_tick_at,
            file: file.to_owned(),
            analysis: AnalysisView::default(),
        }
    }

    /// Updates the fields a rollout changes.
    pub fn apply(&mut self, state: &RolloutState) {
        self.phase = state.phase;
        self.canary_weight = state.canary_weight;
        self.failed_checks = state.failed_checks;
        self.iterations = state.iterations;
        self.revision.clone_from(&state.revision);
        self.paused = state.paused;
        self.message.clone_from(&state.message);
        self.last_transition_time = state.last_transition_time;
        self.next_tick_at = state.next_tick_at;
        if let Some(condition) = self.conditions.first_mut() {
            condition.status = state.condition.status;
            condition.reason = state.condition.reason.as_str().to_owned();
            condition.message.clone_from(&state.condition.message);
            condition.last_transition_time = state.condition.last_transition_time;
        }
    }

    /// Shows `fault` with `message`; it holds since `at` unless it already
    /// held (then only its message changes). Returns whether anything changed.
    pub fn set_fault(&mut self, fault: Fault, message: &str, at: Timestamp) -> bool {
        let mut message = message.to_owned();
        if message.len() > MAX_FAULT_MESSAGE {
            let mut cut = MAX_FAULT_MESSAGE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        if let Some(condition) = self
            .conditions
            .iter_mut()
            .find(|c| c.kind == fault.as_str())
        {
            if condition.message == message {
                return false;
            }
            condition.message = message;
            return true;
        }
        self.conditions.push(ConditionView {
            kind: fault.as_str().to_owned(),
            status: ConditionStatus::True,
            reason: fault.reason().to_owned(),
            message,
            last_transition_time: at,
        });
        true
    }

    /// `fault` is over. Returns whether it was shown.
    pub fn clear_fault(&mut self, fault: Fault) -> bool {
        let before = self.conditions.len();
        self.conditions.retain(|c| c.kind != fault.as_str());
        self.conditions.len() != before
    }

    /// The condition of `fault`, while it holds.
    pub fn fault(&self, fault: Fault) -> Option<&ConditionView> {
        self.conditions.iter().find(|c| c.kind == fault.as_str())
    }

    /// The rollout ended: promoted (`Succeeded`) or rolled back (`Failed`).
    pub fn is_done(&self) -> bool {
        self.phase.is_terminal()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status() -> CanaryStatus {
        CanaryStatus::new(
            "web",
            "web.yaml",
            "127.0.0.1:8080".into(),
            "http://127.0.0.1:9001",
            &RolloutState::new(Timestamp::from_millis(1_000)),
            &Placement::default(),
        )
    }

    #[test]
    fn a_fault_holds_since_it_began_until_cleared() {
        let mut status = status();
        let at = Timestamp::from_millis(5_000);
        assert!(status.set_fault(Fault::StateSaveFailed, "disk full", at));
        assert!(!status.set_fault(
            Fault::StateSaveFailed,
            "disk full",
            Timestamp::from_millis(9_000)
        ));
        assert!(status.set_fault(
            Fault::StateSaveFailed,
            "still full",
            Timestamp::from_millis(9_000)
        ));
        let fault = status.fault(Fault::StateSaveFailed).expect("shown");
        assert_eq!(
            (
                fault.message.as_str(),
                fault.last_transition_time,
                fault.status
            ),
            ("still full", at, ConditionStatus::True)
        );
        assert_eq!(
            status.conditions[0].kind, "Promoted",
            "Flagger's condition stays first"
        );
        // A rollout update leaves it alone.
        status.apply(&RolloutState::new(Timestamp::from_millis(10_000)));
        assert!(status.fault(Fault::StateSaveFailed).is_some());
        assert!(status.clear_fault(Fault::StateSaveFailed));
        assert!(!status.clear_fault(Fault::StateSaveFailed));
        assert_eq!(status.conditions.len(), 1);
    }

    #[test]
    fn long_fault_messages_are_cut_on_a_character() {
        let mut status = status();
        let long = "é".repeat(MAX_FAULT_MESSAGE);
        status.set_fault(Fault::ConfigReloadFailed, &long, Timestamp::from_millis(1));
        let message = &status
            .fault(Fault::ConfigReloadFailed)
            .expect("shown")
            .message;
        assert!(message.len() <= MAX_FAULT_MESSAGE + '…'.len_utf8());
        assert!(message.ends_with('…'));
    }

    #[test]
    fn statuses_from_a_daemon_without_analysis_still_read() {
        let mut json = serde_json::to_value(status()).expect("serializes");
        json.as_object_mut().expect("an object").remove("analysis");
        let read: CanaryStatus = serde_json::from_value(json).expect("reads");
        assert_eq!(read.analysis, AnalysisView::default());
    }
}
