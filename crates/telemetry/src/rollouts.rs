//! serin's own series, folded from rollout updates: what Flagger's
//! controller exports as `flagger_canary_*`, under serin's names.

use crate::Snapshot;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};
use serin_analysis::{Decision, MetricStatus, Verdict};
use serin_rollout::{Phase, RolloutState, Timestamp};
use serin_server::Update;
use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Mutex, atomic::AtomicU64},
};

/// Rollout durations, seconds: 30 s to 2 h.
const DURATION_BUCKETS: [f64; 10] = [
    30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 5400.0, 7200.0,
];

/// Every phase, for the `serin_canary_phase` state set.
const PHASES: [Phase; 9] = [
    Phase::Initializing,
    Phase::Initialized,
    Phase::Waiting,
    Phase::Progressing,
    Phase::WaitingPromotion,
    Phase::Promoting,
    Phase::Finalising,
    Phase::Succeeded,
    Phase::Failed,
];

/// Every verdict, for removing a canary's `serin_canary_decisions`.
const VERDICTS: [Verdict; 4] = [
    Verdict::Pass,
    Verdict::Hold,
    Verdict::Fail,
    Verdict::Rollback,
];

/// Every metric status, for the `serin_canary_metric_status` state set.
const STATUSES: [(MetricStatus, &str); 5] = [
    (MetricStatus::Pass, "pass"),
    (MetricStatus::Inconclusive, "inconclusive"),
    (MetricStatus::Fail, "fail"),
    (MetricStatus::Harm, "harm"),
    (MetricStatus::NoData, "no-data"),
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CanaryLabels {
    canary: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    canary: String,
    phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerdictLabels {
    canary: String,
    verdict: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MetricValueLabels {
    canary: String,
    metric: String,
    version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MetricStatusLabels {
    canary: String,
    metric: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouterLabels {
    canary: String,
    router: String,
}

type DurationFamily = Family<CanaryLabels, Histogram, fn() -> Histogram>;

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

/// The rollout series of every canary.
#[derive(Debug)]
pub(crate) struct Rollouts {
    weight: Family<CanaryLabels, Gauge>,
    status: Family<CanaryLabels, Gauge>,
    phase: Family<PhaseLabels, Gauge>,
    failed_checks: Family<CanaryLabels, Gauge>,
    iterations: Family<CanaryLabels, Gauge>,
    duration: DurationFamily,
    promotions: Family<CanaryLabels, Counter>,
    rollbacks: Family<CanaryLabels, Counter>,
    decisions: Family<VerdictLabels, Counter>,
    metric_value: Family<MetricValueLabels, Gauge<f64, AtomicU64>>,
    metric_status: Family<MetricStatusLabels, Gauge>,
    drift_repairs: Family<RouterLabels, Counter>,
    /// The routers seen per canary, so removing it removes their series.
    routers: Mutex<BTreeMap<String, BTreeSet<String>>>,
    /// The last phase seen per canary, to count each promotion and rollback once.
    last_phase: Mutex<BTreeMap<String, Phase>>,
    /// The analysis metrics seen per canary, so removing it removes their series.
    metrics: Mutex<BTreeMap<String, BTreeSet<String>>>,
}

impl Default for Rollouts {
    fn default() -> Self {
        Rollouts {
            weight: Family::default(),
            status: Family::default(),
            phase: Family::default(),
            failed_checks: Family::default(),
            iterations: Family::default(),
            duration: Family::new_with_constructor(duration_histogram as fn() -> Histogram),
            promotions: Family::default(),
            rollbacks: Family::default(),
            decisions: Family::default(),
            metric_value: Family::default(),
            metric_status: Family::default(),
            drift_repairs: Family::default(),
            routers: Mutex::new(BTreeMap::new()),
            last_phase: Mutex::new(BTreeMap::new()),
            metrics: Mutex::new(BTreeMap::new()),
        }
    }
}

// === impl Rollouts ===

impl Rollouts {
    pub(crate) fn register(&self, registry: &mut Registry) {
        registry.register(
            "serin_canary_weight",
            "Percent of traffic the canary receives",
            self.weight.clone(),
        );
        registry.register(
            "serin_canary_status",
            "Canary status as Flagger reports it: 0 running, 1 successful or idle, 2 failed",
            self.status.clone(),
        );
        registry.register(
            "serin_canary_phase",
            "1 for the rollout's current phase (Flagger's phase names), 0 for the others",
            self.phase.clone(),
        );
        registry.register(
            "serin_canary_failed_checks",
            "Failed checks counted against the analysis threshold",
            self.failed_checks.clone(),
        );
        registry.register(
            "serin_canary_iterations",
            "Analysis iterations of A/B testing and blue/green rollouts",
            self.iterations.clone(),
        );
        registry.register(
            "serin_canary_duration_seconds",
            "How long finished rollouts took, from start to promotion or rollback",
            self.duration.clone(),
        );
        registry.register(
            "serin_canary_promotions",
            "Rollouts that ended with the canary promoted",
            self.promotions.clone(),
        );
        registry.register(
            "serin_canary_rollbacks",
            "Rollouts that ended with the canary rolled back",
            self.rollbacks.clone(),
        );
        registry.register(
            "serin_canary_decisions",
            "Analysis decisions by verdict (pass, hold, fail, rollback)",
            self.decisions.clone(),
        );
        registry.register(
            "serin_canary_metric_value",
            "Each analysis metric's last value per version, in the metric's unit",
            self.metric_value.clone(),
        );
        registry.register(
            "serin_canary_metric_status",
            "1 for each analysis metric's last status (pass, inconclusive, fail, harm, no-data), 0 for the others",
            self.metric_status.clone(),
        );
        registry.register(
            "serin_router_drift_repairs",
            "Times serin found the balancer (haproxy, nginx, alb) drifted from the state it set, and repaired it",
            self.drift_repairs.clone(),
        );
    }

    pub(crate) fn observe(&self, canary: &str, update: &Update) {
        match update {
            Update::State { at, state } => self.state(canary, *at, state),
            Update::Decision { decision, .. } => self.decision(canary, decision),
            Update::Repaired { router, .. } => {
                lock(&self.routers)
                    .entry(canary.to_owned())
                    .or_default()
                    .insert(router.clone());
                self.drift_repairs
                    .get_or_create(&RouterLabels {
                        canary: canary.to_owned(),
                        router: router.clone(),
                    })
                    .inc();
            }
            _ => {}
        }
    }

    /// Exports a canary as it stands when it is loaded, unless its rollout
    /// already reported a state (which is newer).
    pub(crate) fn register_canary(&self, canary: &str, snapshot: Snapshot) {
        let mut last_phase = lock(&self.last_phase);
        if last_phase.contains_key(canary) {
            return;
        }
        last_phase.insert(canary.to_owned(), snapshot.phase);
        // Set under the lock, so a state update cannot slip in between.
        self.set(canary, snapshot);
    }

    fn set(&self, canary: &str, snapshot: Snapshot) {
        let labels = CanaryLabels {
            canary: canary.to_owned(),
        };
        self.weight
            .get_or_create(&labels)
            .set(i64::from(snapshot.canary_weight));
        self.failed_checks
            .get_or_create(&labels)
            .set(i64::from(snapshot.failed_checks));
        self.iterations
            .get_or_create(&labels)
            .set(i64::from(snapshot.iterations));
        let status = match snapshot.phase {
            Phase::Failed => 2,
            phase if phase.is_active() => 0,
            _ => 1,
        };
        self.status.get_or_create(&labels).set(status);
        for phase in PHASES {
            let labels = PhaseLabels {
                canary: canary.to_owned(),
                phase: phase.as_str().to_owned(),
            };
            self.phase
                .get_or_create(&labels)
                .set(i64::from(phase == snapshot.phase));
        }
    }

    fn state(&self, canary: &str, at: Timestamp, state: &RolloutState) {
        let labels = CanaryLabels {
            canary: canary.to_owned(),
        };
        let previous = {
            let mut last_phase = lock(&self.last_phase);
            self.set(canary, Snapshot::from(state));
            last_phase.insert(canary.to_owned(), state.phase)
        };
        let finished = state.phase.is_terminal() && previous.is_some_and(|p| !p.is_terminal());
        if finished {
            match state.phase {
                Phase::Succeeded => self.promotions.get_or_create(&labels).inc(),
                _ => self.rollbacks.get_or_create(&labels).inc(),
            };
            if let Some(started) = state.started_at {
                let secs = at.saturating_since(started).as_secs_f64();
                self.duration.get_or_create(&labels).observe(secs);
            }
        }
    }

    fn decision(&self, canary: &str, decision: &Decision) {
        self.decisions
            .get_or_create(&VerdictLabels {
                canary: canary.to_owned(),
                verdict: decision.verdict.as_str().to_owned(),
            })
            .inc();
        {
            let mut metrics = lock(&self.metrics);
            let seen = metrics.entry(canary.to_owned()).or_default();
            for evidence in &decision.metrics {
                if !seen.contains(&evidence.name) {
                    seen.insert(evidence.name.clone());
                }
            }
        }
        for evidence in &decision.metrics {
            for (version, value) in [("canary", evidence.canary), ("stable", evidence.stable)] {
                let labels = MetricValueLabels {
                    canary: canary.to_owned(),
                    metric: evidence.name.clone(),
                    version: version.to_owned(),
                };
                match value.filter(|v| v.is_finite()) {
                    Some(value) => {
                        self.metric_value.get_or_create(&labels).set(value);
                    }
                    // No value: no sample, rather than a stale or made-up one.
                    None => {
                        self.metric_value.remove(&labels);
                    }
                }
            }
            for (status, name) in STATUSES {
                self.metric_status
                    .get_or_create(&MetricStatusLabels {
                        canary: canary.to_owned(),
                        metric: evidence.name.clone(),
                        status: name.to_owned(),
                    })
                    .set(i64::from(status == evidence.status));
            }
        }
    }

    /// Forgets every series of `canary`.
    pub(crate) fn remove(&self, canary: &str) {
        let labels = CanaryLabels {
            canary: canary.to_owned(),
        };
        for family in [
            &self.weight,
            &self.status,
            &self.failed_checks,
            &self.iterations,
        ] {
            family.remove(&labels);
        }
        self.promotions.remove(&labels);
        self.rollbacks.remove(&labels);
        self.duration.remove(&labels);
        for phase in PHASES {
            self.phase.remove(&PhaseLabels {
                canary: canary.to_owned(),
                phase: phase.as_str().to_owned(),
            });
        }
        lock(&self.last_phase).remove(canary);
        for router in lock(&self.routers).remove(canary).unwrap_or_default() {
            self.drift_repairs.remove(&RouterLabels {
                canary: canary.to_owned(),
                router,
            });
        }
        for verdict in VERDICTS {
            self.decisions.remove(&VerdictLabels {
                canary: canary.to_owned(),
                verdict: verdict.as_str().to_owned(),
            });
        }
        let metrics = lock(&self.metrics).remove(canary).unwrap_or_default();
        for metric in metrics {
            for version in ["canary", "stable"] {
                self.metric_value.remove(&MetricValueLabels {
                    canary: canary.to_owned(),
                    metric: metric.clone(),
                    version: version.to_owned(),
                });
            }
            for (_, status) in STATUSES {
                self.metric_status.remove(&MetricStatusLabels {
                    canary: canary.to_owned(),
                    metric: metric.clone(),
                    status: status.to_owned(),
                });
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock only means a panic elsewhere mid-update; each map is
    // still consistent (every update is one insert or remove).
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
