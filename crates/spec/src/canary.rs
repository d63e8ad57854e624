//! The `Canary` document: Flagger's `flagger.app/v1beta1` schema plus serin's
//! extensions (`provider: builtin`, `spec.upstreams`, judges, comparisons).

use std::{collections::BTreeMap, fmt};

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::{
    builtin::{BuiltinMetric, Direction},
    duration::Duration,
    matching::HttpMatchRequest,
    meta::{ObjectMeta, ObjectReference},
    service::CanaryService,
};

/// The provider name of serin's built-in proxy.
pub const BUILTIN_PROVIDER: &str = "builtin";

/// Flagger's default analysis interval.
pub const DEFAULT_INTERVAL_SECS: u64 = 60;
/// Flagger's default metric window.
pub const DEFAULT_METRIC_INTERVAL_SECS: u64 = 60;
/// Flagger's default progress deadline.
pub const DEFAULT_PROGRESS_DEADLINE_SECS: u64 = 600;
/// Flagger's total weight: weights are percentages.
pub const TOTAL_WEIGHT: u8 = 100;
/// serin's default false-rollback budget for statistical judges.
pub const DEFAULT_ALPHA: f64 = 0.01;
/// Flagger's default session affinity cookie lifetime, in seconds (a day).
pub const DEFAULT_COOKIE_MAX_AGE_SECS: i64 = 86_400;
/// Flagger's default ready threshold for primary and canary pods, in percent.
pub const DEFAULT_READY_THRESHOLD: i64 = 100;

/// A `Canary` document.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Canary {
    /// `flagger.app/v1beta1` or `serin.dev/v1alpha1` (older Flagger versions accepted).
    pub api_version: String,
    /// Always `Canary`.
    pub kind: String,
    /// Name, namespace, labels, annotations.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The desired rollout.
    #[serde(default)]
    pub spec: CanarySpec,
    /// Status written by a controller; kept as free-form data and never read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Value>,
}

/// `spec` of a [`Canary`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CanarySpec {
    /// Traffic provider: `builtin` (serin's proxy) or a Flagger mesh/ingress name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Prometheus address for Flagger's built-in metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_server: Option<String>,
    /// The workload being released (Kubernetes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<ObjectReference>,
    /// Its autoscaler (Kubernetes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaler_ref: Option<AutoscalerRef>,
    /// NGINX ingress (Kubernetes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_ref: Option<ObjectReference>,
    /// APISIX route (Kubernetes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_ref: Option<ObjectReference>,
    /// Gloo upstream (Kubernetes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_ref: Option<ObjectReference>,
    /// Services and routes; for `builtin`, where the proxy listens.
    #[serde(default)]
    pub service: CanaryService,
    /// How the canary is analysed and how traffic moves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<Analysis>,
    /// Seconds a workload may take to make progress before the rollout fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_deadline_seconds: Option<i64>,
    /// Promote without analysis.
    #[serde(default)]
    pub skip_analysis: bool,
    /// Undo Flagger's changes when the Canary is deleted.
    #[serde(default)]
    pub revert_on_deletion: bool,
    /// Pause the controller for this canary.
    #[serde(default)]
    pub suspend: bool,
    /// serin: the stable and canary backends of the built-in proxy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstreams: Option<Upstreams>,
    /// serin: the HAProxy instances, backend and servers of `provider: haproxy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub haproxy: Option<crate::haproxy::HaproxySpec>,
    /// serin: the upstream block, file and reload command of `provider:
    /// nginx` outside Kubernetes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nginx: Option<crate::nginx::NginxSpec>,
    /// serin: the listener (or rule) and target groups of `provider: alb`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alb: Option<crate::alb::AlbSpec>,
}

/// `spec.autoscalerRef`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AutoscalerRef {
    /// API version of the scaler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// `HorizontalPodAutoscaler` or `ScaledObject`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name of the scaler.
    pub name: String,
    /// KEDA: queries for the primary scaler, by trigger name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub primary_scaler_queries: BTreeMap<String, String>,
    /// Replica overrides for the primary scaler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_scaler_replicas: Option<ScalerReplicas>,
}

/// Replica overrides for the primary scaler.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScalerReplicas {
    /// Minimum replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_replicas: Option<i64>,
    /// Maximum replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_replicas: Option<i64>,
}

/// serin: `spec.upstreams`, the backends of the built-in proxy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Upstreams {
    /// URL of the stable version (`http://127.0.0.1:9001`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable: Option<String>,
    /// URL of the canary version; setting or changing it starts a rollout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<String>,
    /// A label for the canary revision (a commit, a version), shown in status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// PEM CA certificates that `https://` upstreams are verified against;
    /// without it, Mozilla's roots (as browsers) are used.
    #[serde(default, rename = "caFile", skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
}

/// `spec.analysis`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Analysis {
    /// Time between analysis ticks (default 1m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
    /// Number of ticks for A/B testing (with `match`) or blue/green (without).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iterations: Option<i64>,
    /// Failed checks before rollback (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<i64>,
    /// Canary weight at which promotion starts (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_weight: Option<i64>,
    /// Weight added each tick.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_weight: Option<i64>,
    /// Explicit weights, e.g. `[10, 25, 50, 75, 100]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub step_weights: Vec<i64>,
    /// Weight moved back to the primary each tick during promotion
    /// (absent: all at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_weight_promotion: Option<i64>,
    /// Mirror traffic to the canary before shifting it.
    #[serde(default)]
    pub mirror: bool,
    /// Percent of requests mirrored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror_weight: Option<i64>,
    /// Percent of primary pods that must be ready (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_ready_threshold: Option<i64>,
    /// Percent of canary pods that must be ready (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_ready_threshold: Option<i64>,
    /// A/B testing: requests matching any rule go to the canary.
    #[serde(default, rename = "match", skip_serializing_if = "Vec::is_empty")]
    pub match_rules: Vec<HttpMatchRequest>,
    /// Sticky assignment of users to a version, by cookie.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_affinity: Option<SessionAffinity>,
    /// Checks run every tick.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<Metric>,
    /// Hooks called at points of the rollout.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub webhooks: Vec<Webhook>,
    /// Where to send notifications.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<Alert>,
    /// serin: how metric checks are decided (default `sequential`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge: Option<JudgeKind>,
    /// serin: false-rollback budget of statistical judges, in (0, 0.5] (default 0.01).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha: Option<f64>,
    /// serin: canary requests needed per step before the canary may advance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_requests: Option<u64>,
    /// serin: whether the last step waits for evidence (`evidence`, the
    /// default) or promotes at the end of the schedule as Flagger does
    /// (`schedule`), reporting the power reached instead of holding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pace: Option<Pace>,
}

/// serin: what decides when the last step may promote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pace {
    /// Hold the last step until a planning-size regression would have been
    /// caught with about 95 % probability, or ruled out.
    #[default]
    Evidence,
    /// Promote at the end of the schedule, as Flagger does; the power reached
    /// is reported, not waited for.
    Schedule,
}

/// serin: how metric checks decide (`judge:`); the runtime maps it to
/// `serin_analysis::JudgeKind`, which names the same judges.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JudgeKind {
    /// Anytime-valid sequential tests: safe to look at every interval.
    #[default]
    Sequential,
    /// Flagger's absolute threshold checks only.
    Threshold,
    /// Mann-Whitney U test per step, canary against stable.
    MannWhitney,
}

/// Which rollout strategy a canary's fields select (Flagger's rules), without
/// its steps or iterations: the runtime builds `serin_rollout::Strategy` from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StrategyKind {
    /// Progressive traffic shifting by steps.
    Canary,
    /// `iterations` with `match`: matching requests go to the canary for N ticks.
    ABTesting,
    /// `iterations` without `match`: the canary is tested for N ticks, then all
    /// traffic switches.
    BlueGreen,
}

/// `spec.analysis.sessionAffinity`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionAffinity {
    /// Cookie that pins a user to the canary.
    #[serde(default)]
    pub cookie_name: String,
    /// Cookie that pins a user to the primary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_cookie_name: Option<String>,
    /// Cookie domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// `HttpOnly` attribute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_only: Option<bool>,
    /// Cookie lifetime in seconds (default 86400).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<i64>,
    /// `Partitioned` attribute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitioned: Option<bool>,
    /// Cookie path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `Strict`, `Lax` or `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub same_site: Option<String>,
    /// `Secure` attribute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secure: Option<bool>,
}

/// One entry of `spec.analysis.metrics`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metric {
    /// A built-in metric name, or any name when `templateRef` is given.
    pub name: String,
    /// Window the metric is computed over (default 1m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
    /// Deprecated Flagger form of `thresholdRange.max`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// Accepted values of the canary's metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold_range: Option<ThresholdRange>,
    /// Deprecated inline Prometheus query (Flagger); prefer `templateRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// The `MetricTemplate` that computes this metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_ref: Option<ObjectReference>,
    /// Variables substituted into the template's query.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub template_variables: BTreeMap<String, String>,
    /// serin: how much worse than stable the canary may be.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compare: Option<Compare>,
    /// serin: which way is better (fixed for built-in metrics).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<Direction>,
}

/// `thresholdRange`: the canary's value must lie within `[min, max]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ThresholdRange {
    /// Lowest accepted value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Highest accepted value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

/// serin: `compare`, a bound relative to stable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Compare {
    /// The canary may be at most this much worse than stable, in the metric's unit
    /// (percentage points for success rate, milliseconds for durations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_delta: Option<f64>,
    /// The canary may be at most this many times worse than stable (>= 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ratio: Option<f64>,
}

/// One entry of `spec.analysis.webhooks`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    /// Name, for messages.
    #[serde(default)]
    pub name: String,
    /// When the hook runs; absent or empty means `rollout`. See [`Webhook::hook_type`].
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_name: Option<String>,
    /// Where the hook is sent.
    #[serde(default)]
    pub url: String,
    /// Do not send alerts for this hook's failures.
    #[serde(default)]
    pub mute_alert: bool,
    /// Request timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Retries of the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<i64>,
    /// Skip TLS verification.
    #[serde(default, rename = "disableTLS")]
    pub disable_tls: bool,
    /// Key-value pairs passed to the hook (e.g. the load tester's `cmd`).
    /// Scalars are kept as text, since hooks receive them as strings.
    #[serde(
        default,
        deserialize_with = "scalar_map",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub metadata: BTreeMap<String, String>,
}

/// When a webhook runs (Flagger's hook types).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WebhookType {
    /// Gate before the rollout starts: it waits until the hook answers 2xx.
    ConfirmRollout,
    /// Before traffic reaches the canary; failure counts as a failed check.
    PreRollout,
    /// Every analysis tick; failure counts as a failed check.
    Rollout,
    /// Gate before each traffic increase.
    ConfirmTrafficIncrease,
    /// Gate before promotion.
    ConfirmPromotion,
    /// After promotion or rollback.
    PostRollout,
    /// Rolls back when the hook answers 2xx.
    Rollback,
    /// Receives every event.
    Event,
}

/// One entry of `spec.analysis.alerts`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    /// Name, for messages.
    #[serde(default)]
    pub name: String,
    /// `info` (default), `warn` or `error`: the least severe event sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    /// The `AlertProvider` to send through.
    pub provider_ref: ObjectReference,
}

// === impl Canary ===

impl Canary {
    /// Whether serin's built-in proxy carries the traffic.
    pub fn is_builtin(&self) -> bool {
        self.spec.provider.as_deref() == Some(BUILTIN_PROVIDER)
    }

    /// Whether HAProxy carries the traffic (`provider: haproxy`).
    pub fn is_haproxy(&self) -> bool {
        self.spec.provider.as_deref() == Some(crate::haproxy::HAPROXY_PROVIDER)
    }

    /// Whether nginx outside Kubernetes carries the traffic: `provider:
    /// nginx` with an `nginx` block or serin's `upstreams` (without them it
    /// is Flagger's ingress-nginx, or a fragment of such a canary).
    pub fn is_nginx(&self) -> bool {
        self.spec.provider.as_deref() == Some(crate::nginx::NGINX_PROVIDER)
            && (self.spec.nginx.is_some() || self.spec.upstreams.is_some())
    }

    /// Whether an AWS Application Load Balancer carries the traffic
    /// (`provider: alb`).
    pub fn is_alb(&self) -> bool {
        self.spec.provider.as_deref() == Some(crate::alb::ALB_PROVIDER)
    }

    /// Whether `serin run` drives this canary itself: its router is one
    /// serin implements outside Kubernetes (builtin, haproxy, nginx, alb).
    pub fn is_runnable(&self) -> bool {
        self.is_builtin() || self.is_haproxy() || self.is_nginx() || self.is_alb()
    }

    /// `metadata.name`, or an empty string for fragments without one.
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or_default()
    }

    /// The analysis, or an empty one (all defaults) when absent.
    pub fn analysis(&self) -> std::borrow::Cow<'_, Analysis> {
        match &self.spec.analysis {
            Some(analysis) => std::borrow::Cow::Borrowed(analysis),
            None => std::borrow::Cow::Owned(Analysis::default()),
        }
    }

    /// The progress deadline (default 600s).
    pub fn progress_deadline(&self) -> std::time::Duration {
        let secs = self
            .spec
            .progress_deadline_seconds
            .and_then(|secs| u64::try_from(secs).ok())
            .unwrap_or(DEFAULT_PROGRESS_DEADLINE_SECS);
        std::time::Duration::from_secs(secs)
    }

    /// The strategy, as Flagger picks it: the `kubernetes` provider cannot shift
    /// traffic, so it always runs blue/green.
    pub fn strategy(&self) -> StrategyKind {
        if self.spec.provider.as_deref() == Some("kubernetes") {
            return StrategyKind::BlueGreen;
        }
        self.analysis().strategy()
    }

    /// The proxy's listen address (built-in provider).
    pub fn listen_addr(&self) -> Option<std::net::SocketAddr> {
        self.spec.service.listen_addr()
    }

    /// Where the canary's balancer sends its request log (`spec.haproxy.logListen`
    /// or `spec.nginx.logListen`), with that field's path: two canaries served
    /// together cannot share one UDP address, so the loader checks it across
    /// files before the second receiver would fail to bind.
    pub fn log_listen_addr(&self) -> Option<(&'static str, std::net::SocketAddr)> {
        let (field, address) = match (&self.spec.haproxy, &self.spec.nginx) {
            (Some(haproxy), _) => ("spec.haproxy.logListen", &haproxy.log_listen),
            (None, Some(nginx)) => ("spec.nginx.logListen", &nginx.log_listen),
            (None, None) => return None,
        };
        Some((field, address.trim().parse().ok()?))
    }

    /// The stable upstream URL (built-in provider).
    pub fn stable_upstream(&self) -> Option<&str> {
        self.spec.upstreams.as_ref()?.stable.as_deref()
    }

    /// The canary upstream URL, when a rollout is requested.
    pub fn canary_upstream(&self) -> Option<&str> {
        self.spec.upstreams.as_ref()?.canary.as_deref()
    }
}

// === impl Analysis ===

impl Analysis {
    /// The tick interval (default 1m). Unlike Flagger, serin does not raise
    /// intervals below 10s: the built-in proxy measures without a scrape delay.
    pub fn interval(&self) -> std::time::Duration {
        self.interval
            .as_ref()
            .map(Duration::as_std)
            .filter(|interval| !interval.is_zero())
            .unwrap_or(std::time::Duration::from_secs(DEFAULT_INTERVAL_SECS))
    }

    /// Failed checks before rollback (default 1, as Flagger).
    pub fn threshold(&self) -> u32 {
        self.threshold
            .and_then(|threshold| u32::try_from(threshold).ok())
            .filter(|threshold| *threshold > 0)
            .unwrap_or(1)
    }

    /// Iterations for A/B testing and blue/green (0 when unset).
    pub fn iterations(&self) -> u32 {
        self.iterations
            .and_then(|iterations| u32::try_from(iterations).ok())
            .unwrap_or(0)
    }

    /// The strategy: A/B testing when `iterations` and `match` are set, blue/green
    /// with `iterations` only, progressive canary otherwise.
    pub fn strategy(&self) -> StrategyKind {
        match (self.iterations() > 0, self.match_rules.is_empty()) {
            (true, false) => StrategyKind::ABTesting,
            (true, true) => StrategyKind::BlueGreen,
            (false, _) => StrategyKind::Canary,
        }
    }

    /// The weight at which promotion starts, as Flagger computes it: the last of
    /// `stepWeights` when given (`maxWeight` is then ignored), else `maxWeight`,
    /// else 100.
    pub fn max_weight(&self) -> u8 {
        if let Some(last) = self.step_weights.last() {
            return clamp_weight(*last);
        }
        match self.max_weight {
            Some(max) if max > 0 => clamp_weight(max),
            _ => TOTAL_WEIGHT,
        }
    }

    /// The canary weights of a progressive rollout, in order; promotion follows
    /// the last one. Empty when the analysis has no steps (A/B, blue/green, or
    /// nothing set).
    ///
    /// This replays Flagger's scheduler: each tick adds `stepWeight` (which wins
    /// over `stepWeights` when both are set) until the weight reaches `maxWeight`,
    /// capped at 100 — so the last step may pass `maxWeight` when it is not a
    /// multiple of `stepWeight` (`stepWeight: 20, maxWeight: 50` gives 20, 40, 60).
    /// With `stepWeights` the weights are those entries, up to the first one at
    /// or above the last.
    pub fn steps(&self) -> Vec<u8> {
        let max_weight = self.max_weight();
        let mut steps = Vec::new();
        let mut weight: u8 = 0;
        // Every step adds at least 1 and stops at 100, so this loop runs at most
        // 100 times; the explicit bound keeps that obvious.
        for _ in 0..TOTAL_WEIGHT {
            if weight >= max_weight && !steps.is_empty() {
                break;
            }
            let step = self.next_step(weight);
            if step == 0 {
                break;
            }
            weight = weight.saturating_add(step).min(TOTAL_WEIGHT);
            steps.push(weight);
            if weight >= max_weight || weight == TOTAL_WEIGHT {
                break;
            }
        }
        steps
    }

    /// Flagger's `nextStepWeight`.
    fn next_step(&self, weight: u8) -> u8 {
        if let Some(step) = self.step_weight.filter(|step| *step > 0) {
            return clamp_weight(step);
        }
        let Some(first) = self.step_weights.first() else {
            return 0;
        };
        let room = TOTAL_WEIGHT - weight.min(TOTAL_WEIGHT);
        if room == 0 {
            return 1;
        }
        if weight == 0 {
            return clamp_weight(*first).min(room);
        }
        let current = self
            .step_weights
            .windows(2)
            .find(|pair| pair.first() == Some(&i64::from(weight)));
        match current.and_then(|pair| pair.get(1)) {
            Some(next) => {
                let difference = next.saturating_sub(i64::from(weight));
                clamp_weight(difference).min(room)
            }
            None => room,
        }
    }

    /// The judge (default `sequential`).
    pub fn judge(&self) -> JudgeKind {
        self.judge.unwrap_or_default()
    }

    /// The false-rollback budget (default 0.01).
    pub fn alpha(&self) -> f64 {
        self.alpha.unwrap_or(DEFAULT_ALPHA)
    }

    /// Canary requests needed per step before advancing (default 0: no minimum).
    pub fn min_requests(&self) -> u64 {
        self.min_requests.unwrap_or(0)
    }

    /// Percent of requests mirrored while mirroring (default 100).
    pub fn mirror_weight(&self) -> u8 {
        self.mirror_weight
            .filter(|weight| *weight > 0)
            .map_or(TOTAL_WEIGHT, clamp_weight)
    }

    /// Webhooks of one type, in order.
    pub fn webhooks_of(&self, hook_type: WebhookType) -> impl Iterator<Item = &Webhook> {
        self.webhooks
            .iter()
            .filter(move |hook| hook.hook_type() == Some(hook_type))
    }
}

/// Clamps a validated weight into `0..=100`.
fn clamp_weight(weight: i64) -> u8 {
    u8::try_from(weight.clamp(0, i64::from(TOTAL_WEIGHT))).unwrap_or(TOTAL_WEIGHT)
}

// === impl Metric ===

impl Metric {
    /// The built-in metric this entry names, if it has no `templateRef` or `query`
    /// (Flagger's rule: a template wins over a built-in name).
    pub fn builtin(&self) -> Option<BuiltinMetric> {
        if self.template_ref.is_some() || self.query.is_some() {
            return None;
        }
        BuiltinMetric::from_name(&self.name)
    }

    /// The metric window (default 1m).
    pub fn interval(&self) -> std::time::Duration {
        self.interval
            .as_ref()
            .map(Duration::as_std)
            .filter(|interval| !interval.is_zero())
            .unwrap_or(std::time::Duration::from_secs(DEFAULT_METRIC_INTERVAL_SECS))
    }

    /// Which way is better: fixed for built-ins, else `direction`, else inferred
    /// from the threshold (a lone `max` means lower is better).
    pub fn direction(&self) -> Direction {
        if let Some(builtin) = self.builtin() {
            return builtin.direction();
        }
        if let Some(direction) = self.direction {
            return direction;
        }
        match self.effective_range() {
            Some(ThresholdRange {
                min: Some(_),
                max: None,
            }) => Direction::Higher,
            _ => Direction::Lower,
        }
    }

    /// The accepted range, folding in the deprecated `threshold` (which Flagger
    /// reads as a maximum).
    pub fn effective_range(&self) -> Option<ThresholdRange> {
        match (self.threshold_range, self.threshold) {
            (Some(range), _) => Some(range),
            (None, Some(max)) => Some(ThresholdRange {
                min: None,
                max: Some(max),
            }),
            (None, None) => None,
        }
    }
}

// === impl Webhook ===

impl Webhook {
    /// The hook type; `None` only for an unknown name (a validation error).
    pub fn hook_type(&self) -> Option<WebhookType> {
        match self.type_name.as_deref() {
            None | Some("") => Some(WebhookType::Rollout),
            Some(name) => WebhookType::from_name(name),
        }
    }
}

// === impl WebhookType ===

impl WebhookType {
    /// Every hook type, in the order they fire.
    pub const ALL: [Self; 8] = [
        Self::ConfirmRollout,
        Self::PreRollout,
        Self::Rollout,
        Self::ConfirmTrafficIncrease,
        Self::ConfirmPromotion,
        Self::PostRollout,
        Self::Rollback,
        Self::Event,
    ];

    /// The hook type with this name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|hook| hook.name() == name)
    }

    /// The name as written in `type:`.
    pub fn name(self) -> &'static str {
        match self {
            Self::ConfirmRollout => "confirm-rollout",
            Self::PreRollout => "pre-rollout",
            Self::Rollout => "rollout",
            Self::ConfirmTrafficIncrease => "confirm-traffic-increase",
            Self::ConfirmPromotion => "confirm-promotion",
            Self::PostRollout => "post-rollout",
            Self::Rollback => "rollback",
            Self::Event => "event",
        }
    }
}

impl fmt::Display for WebhookType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for JudgeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Sequential => "sequential",
            Self::Threshold => "threshold",
            Self::MannWhitney => "mann-whitney",
        })
    }
}

/// Deserializes a map whose values may be any scalar, keeping them as text.
fn scalar_map<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    struct Scalar(String);

    impl<'de> Deserialize<'de> for Scalar {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct Visitor;

            impl serde::de::Visitor<'_> for Visitor {
                type Value = Scalar;

                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a string, number or boolean")
                }

                fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Scalar, E> {
                    Ok(Scalar(text.to_string()))
                }

                fn visit_bool<E: serde::de::Error>(self, flag: bool) -> Result<Scalar, E> {
                    Ok(Scalar(flag.to_string()))
                }

                fn visit_u64<E: serde::de::Error>(self, number: u64) -> Result<Scalar, E> {
                    Ok(Scalar(number.to_string()))
                }

                fn visit_i64<E: serde::de::Error>(self, number: i64) -> Result<Scalar, E> {
                    Ok(Scalar(number.to_string()))
                }

                fn visit_f64<E: serde::de::Error>(self, number: f64) -> Result<Scalar, E> {
                    Ok(Scalar(number.to_string()))
                }
            }

            deserializer.deserialize_any(Visitor)
        }
    }

    let map = Option::<BTreeMap<String, Scalar>>::deserialize(deserializer)?;
    Ok(map
        .unwrap_or_default()
        .into_iter()
        .map(|(key, Scalar(value))| (key, value))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn analysis(
        step_weight: Option<i64>,
        max_weight: Option<i64>,
        step_weights: &[i64],
    ) -> Analysis {
        Analysis {
            step_weight,
            max_weight,
            step_weights: step_weights.to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn steps_follow_flaggers_scheduler() {
        assert_eq!(
            analysis(Some(10), Some(50), &[]).steps(),
            [10, 20, 30, 40, 50]
        );
        // The last step passes maxWeight when it is not a multiple of stepWeight.
        assert_eq!(analysis(Some(20), Some(50), &[]).steps(), [20, 40, 60]);
        assert_eq!(analysis(Some(30), None, &[]).steps(), [30, 60, 90, 100]);
        assert_eq!(analysis(Some(5), Some(5), &[]).steps(), [5]);
        assert_eq!(
            analysis(None, None, &[10, 25, 50, 75, 100]).steps(),
            [10, 25, 50, 75, 100]
        );
        // maxWeight is ignored with stepWeights.
        assert_eq!(
            analysis(None, Some(50), &[10, 20, 30, 40, 50, 60]).steps(),
            [10, 20, 30, 40, 50, 60]
        );
        // stepWeight wins over stepWeights, but maxWeight comes from stepWeights.
        assert_eq!(analysis(Some(20), None, &[10, 30]).steps(), [20, 40]);
        assert!(analysis(None, Some(50), &[]).steps().is_empty());
    }

    #[test]
    fn strategy_follows_iterations_and_match() {
        let mut analysis = Analysis {
            iterations: Some(10),
            ..Default::default()
        };
        assert_eq!(analysis.strategy(), StrategyKind::BlueGreen);
        analysis.match_rules.push(HttpMatchRequest::default());
        assert_eq!(analysis.strategy(), StrategyKind::ABTesting);
        analysis.iterations = None;
        assert_eq!(analysis.strategy(), StrategyKind::Canary);
    }

    #[test]
    fn defaults_are_flaggers() {
        let analysis = Analysis::default();
        assert_eq!(analysis.interval(), std::time::Duration::from_secs(60));
        assert_eq!(analysis.threshold(), 1);
        assert_eq!(analysis.max_weight(), 100);
        assert_eq!(analysis.judge(), JudgeKind::Sequential);
        assert_eq!(analysis.alpha(), 0.01);
    }
}
