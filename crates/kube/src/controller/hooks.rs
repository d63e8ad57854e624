//! Flagger's webhooks in controller mode: each type called at the phase
//! Flagger calls it, with Flagger's payload (`name`, `namespace`, `phase`,
//! `checksum`, `metadata`) and Flagger's event messages.
//!
//! The calls go through `serve`'s webhook client
//! ([`HttpWebhooks`]: the webhook's `timeout`, its `retries` with backoff
//! on 5xx/429 and unreachable receivers, a bounded read of the answer, no
//! command ever run), so a receiver is treated the same by both modes.
//!
//! - `confirm-rollout`: before a new revision is scaled up; while it
//!   answers non-2xx the canary waits in phase `Waiting`, asked again
//!   every interval.
//! - `pre-rollout`: when the analysis starts (weight 0); a failure is a
//!   failed check.
//! - `rollout`: at every analysis step before the metrics; a failure is a
//!   failed check and the metrics are not read that step.
//! - `confirm-traffic-increase`: before each weight increase; closed, the
//!   weight stays.
//! - `confirm-promotion`: before promotion; closed, the canary waits in
//!   `WaitingPromotion` and its analysis goes on.
//! - `rollback`: asked at every analysis step; a 2xx answer rolls back
//!   (Flagger's manual rollback).
//! - `post-rollout`: once, after the promotion or the rollback, with the
//!   final phase.
//! - `event`: every Kubernetes event the controller records is posted too.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use serin_providers::{AlertSeverity, HttpWebhooks};
use serin_rollout::{
    GateKind, HookKind, Record, Severity,
    ports::{HookAnswer, HookContext, WebhookCall, Webhooks},
};
use serin_spec::Canary;

use super::{Error, Outcome, Pass};
use crate::resource::CanaryStatus;

/// How long the end of a pass waits for its events to reach the `event`
/// webhooks; what is still queued then is delivered in the background.
const EVENT_FLUSH: Duration = Duration::from_secs(10);

/// A canary's webhooks for one pass.
pub(super) struct Hooks {
    /// `None` when the canary configures no webhook: nothing to call.
    webhooks: Option<Arc<HttpWebhooks>>,
    /// The phase and checksum the `event` webhooks are sent: the status
    /// as last written in this pass.
    current: Mutex<HookContext>,
}

/// How a gate answered.
pub(super) enum Gate {
    /// Every webhook of the gate answered 2xx (or none is configured).
    Open,
    /// The named webhook did not.
    Closed(String),
}

// === impl Hooks ===

impl Hooks {
    /// The webhooks of `canary`, whose status was read as `status`.
    pub(super) fn new(canary: &Canary, status: &CanaryStatus) -> Self {
        let webhooks =
            (!canary.analysis().webhooks.is_empty()).then(|| HttpWebhooks::from_canary(canary));
        Self {
            webhooks,
            current: Mutex::new(context(status, status.phase.as_deref().unwrap_or(""))),
        }
    }

    /// Follows the status just written, for the `event` payloads.
    pub(super) fn observe(&self, status: &CanaryStatus) {
        let mut current = self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *current = context(status, status.phase.as_deref().unwrap_or(""));
    }

    /// Posts an event to the `event` webhooks (queued: never waits for
    /// the receiver).
    pub(super) async fn event(&self, event_type: &str, message: &str) {
        let Some(webhooks) = &self.webhooks else {
            return;
        };
        let record = Record {
            severity: if event_type == "Warning" {
                Severity::Warning
            } else {
                Severity::Normal
            },
            message: message.to_string(),
        };
        let context = self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        webhooks.event(&record, &context).await;
    }

    /// Waits (bounded) until the pass's events reached the `event`
    /// webhooks.
    pub(super) async fn flush(&self) {
        if let Some(webhooks) = &self.webhooks {
            webhooks.flush(EVENT_FLUSH).await;
        }
    }

    /// Whether every failed webhook `name` of `kind` asked for no alert
    /// (`muteAlert`).
    fn muted(&self, kind: GateKind, name: &str) -> bool {
        self.webhooks
            .as_ref()
            .is_some_and(|webhooks| webhooks.is_muted(kind.as_str(), name))
    }

    /// Whether any webhook of `kind` is configured.
    fn has(&self, kind: &str) -> bool {
        self.webhooks
            .as_ref()
            .is_some_and(|webhooks| webhooks.has(kind))
    }

    async fn gate_calls(&self, kind: GateKind, context: &HookContext) -> HookAnswer {
        match &self.webhooks {
            Some(webhooks) if webhooks.has(kind.as_str()) => webhooks.gate(kind, context).await,
            _ => HookAnswer::without_calls(true),
        }
    }

    async fn hook_calls(&self, kind: HookKind, context: &HookContext) -> HookAnswer {
        match &self.webhooks {
            Some(webhooks) if webhooks.has(kind.as_str()) => webhooks.hook(kind, context).await,
            _ => HookAnswer::without_calls(kind != HookKind::Rollback),
        }
    }
}

/// The payload's phase and checksum for `status`. The checksum is
/// Flagger's: a hash of the tracked configs and the last applied spec, so
/// a receiver can tell one configuration of the workload from another.
fn context(status: &CanaryStatus, phase: &str) -> HookContext {
    let fields = serde_json::json!({
        "trackedConfigs": status.tracked_configs,
        "lastAppliedSpec": status.last_applied_spec.clone().unwrap_or_default(),
    });
    HookContext {
        phase: phase.to_string(),
        revision: crate::hash::fingerprint(&fields.to_string()),
    }
}

/// Whether a call was answered 2xx.
fn passed(call: &WebhookCall) -> bool {
    call.status
        .is_some_and(|status| (200..300).contains(&status))
}

/// Why a call failed, as Flagger words it: what the receiver answered
/// (its body), or what went wrong.
fn failure(call: &WebhookCall) -> String {
    match (&call.body, &call.error) {
        (Some(body), _) if !body.is_empty() => body.clone(),
        (_, Some(error)) => error.clone(),
        _ => call.outcome(),
    }
}

// === impl Pass ===

impl Pass<'_> {
    pub(super) fn id(&self) -> String {
        format!("{}.{}", self.subject.canary().name(), self.namespace)
    }

    /// Asks the gate `kind` with the payload phase `phase`; records
    /// "… check NAME passed" for each webhook that answered 2xx before the
    /// first that did not.
    async fn gate(
        &self,
        kind: GateKind,
        phase: &str,
        status: &CanaryStatus,
    ) -> Result<Gate, Error> {
        let answer = self.hooks.gate_calls(kind, &context(status, phase)).await;
        let label = match kind {
            GateKind::ConfirmRollout => "Confirm-rollout",
            GateKind::ConfirmTrafficIncrease => "Confirm-traffic-increase",
            GateKind::ConfirmPromotion => "Confirm-promotion",
        };
        for call in &answer.calls {
            if !passed(call) {
                return Ok(Gate::Closed(call.name.clone()));
            }
            self.event(
                "Normal",
                "Synced",
                &format!("{label} check {} passed", call.name),
            )
            .await?;
        }
        Ok(if answer.ok {
            Gate::Open
        } else {
            Gate::Closed(kind.as_str().to_string())
        })
    }

    /// The `confirm-rollout` gate before a new revision starts: `true`
    /// when open. Closed, the canary moves to (or stays in) `Waiting`;
    /// the transition is written and recorded once, as Flagger does.
    pub(super) async fn confirm_rollout(&self, status: &mut CanaryStatus) -> Result<bool, Error> {
        let phase = status.phase.clone().unwrap_or_default();
        let name = match self.gate(GateKind::ConfirmRollout, &phase, status).await? {
            Gate::Open => return Ok(true),
            Gate::Closed(name) => name,
        };
        if phase != "Waiting" {
            status.phase = Some("Waiting".into());
            self.promoted(status, "Unknown", "Waiting", "Waiting for approval.");
            self.write_status(status).await?;
            let halt = format!("Halt {} advancement waiting for approval {name}", self.id());
            self.event("Warning", "Synced", &halt).await?;
            if !self.hooks.muted(GateKind::ConfirmRollout, &name) {
                self.alert(AlertSeverity::Warn, &halt, status).await?;
            }
        }
        Ok(false)
    }

    /// The `confirm-traffic-increase` gate before a weight increase:
    /// `true` when open. Closed, the weight stays; the status is written
    /// (the next ask is one interval later) and the halt recorded.
    pub(super) async fn confirm_traffic_increase(
        &self,
        status: &mut CanaryStatus,
    ) -> Result<bool, Error> {
        let name = match self
            .gate(GateKind::ConfirmTrafficIncrease, "Progressing", status)
            .await?
        {
            Gate::Open => return Ok(true),
            Gate::Closed(name) => name,
        };
        let halt = format!(
            "Halt {} advancement waiting for traffic increase approval {name}",
            self.id()
        );
        self.promoted(status, "Unknown", "Progressing", &halt);
        self.write_status(status).await?;
        self.event("Warning", "Synced", &halt).await?;
        if !self.hooks.muted(GateKind::ConfirmTrafficIncrease, &name) {
            self.alert(AlertSeverity::Warn, &halt, status).await?;
        }
        Ok(false)
    }

    /// The `confirm-promotion` gate at the last step: `true` when open.
    /// Closed, the canary waits in `WaitingPromotion` (its analysis goes
    /// on each interval); the transition is recorded once.
    pub(super) async fn confirm_promotion(&self, status: &mut CanaryStatus) -> Result<bool, Error> {
        let name = match self
            .gate(GateKind::ConfirmPromotion, "Progressing", status)
            .await?
        {
            Gate::Open => return Ok(true),
            Gate::Closed(name) => name,
        };
        let first = status.phase.as_deref() != Some("WaitingPromotion");
        status.phase = Some("WaitingPromotion".into());
        self.promoted(
            status,
            "Unknown",
            "WaitingPromotion",
            "Waiting for approval.",
        );
        self.write_status(status).await?;
        if first {
            let halt = format!(
                "Halt {} advancement waiting for promotion approval {name}",
                self.id()
            );
            self.event("Warning", "Synced", &halt).await?;
            if !self.hooks.muted(GateKind::ConfirmPromotion, &name) {
                self.alert(AlertSeverity::Warn, &halt, status).await?;
            }
        }
        Ok(false)
    }

    /// The `pre-rollout` (weight 0) or `rollout` hooks of an analysis
    /// step: `Some(reason)` when one failed (a failed check).
    pub(super) async fn analysis_hooks(
        &self,
        kind: HookKind,
        status: &CanaryStatus,
    ) -> Result<Option<String>, Error> {
        let answer = self
            .hooks
            .hook_calls(kind, &context(status, "Progressing"))
            .await;
        for call in &answer.calls {
            if passed(call) {
                if kind == HookKind::PreRollout {
                    self.event(
                        "Normal",
                        "Synced",
                        &format!("Pre-rollout check {} passed", call.name),
                    )
                    .await?;
                }
                continue;
            }
            let what = if kind == HookKind::PreRollout {
                "pre-rollout"
            } else {
                "external"
            };
            let reason = format!("{what} check {} failed {}", call.name, failure(call));
            self.event(
                "Warning",
                "Synced",
                &format!("Halt {} advancement {reason}", self.id()),
            )
            .await?;
            return Ok(Some(reason));
        }
        Ok(None)
    }

    /// Counts a failed hook as a failed check: rolls back at the
    /// threshold, else holds the weight with the reason in the condition.
    pub(super) async fn hook_failed(
        &self,
        status: &mut CanaryStatus,
        target_name: &str,
        kind: HookKind,
        reason: &str,
    ) -> Result<Outcome, Error> {
        status.failed_checks += 1;
        let threshold = i64::from(self.subject.canary().analysis().threshold());
        if status.failed_checks >= threshold {
            let message = format!(
                "Rolling back {} failed checks threshold reached {}",
                self.id(),
                status.failed_checks
            );
            self.rollback(status, target_name, &message).await?;
        } else {
            let halt = format!("Halt advancement {} {reason}", self.id());
            self.promoted(status, "Unknown", "Progressing", &halt);
            self.write_status(status).await?;
            if kind == HookKind::PreRollout {
                self.event("Normal", "Synced", "Pre-rollout webhooks error")
                    .await?;
            }
        }
        Ok(Outcome::Moved(status.phase.clone().unwrap_or_default()))
    }

    /// Asks the `rollback` hooks: `true` when one answered 2xx (roll back
    /// now). Each answer is recorded as Flagger does.
    pub(super) async fn rollback_requested(&self, status: &CanaryStatus) -> Result<bool, Error> {
        if !self.hooks.has(HookKind::Rollback.as_str()) {
            return Ok(false);
        }
        let phase = status.phase.clone().unwrap_or_default();
        let answer = self
            .hooks
            .hook_calls(HookKind::Rollback, &context(status, &phase))
            .await;
        for call in &answer.calls {
            if passed(call) {
                self.event(
                    "Warning",
                    "Synced",
                    &format!("Rollback check {} passed", call.name),
                )
                .await?;
                return Ok(true);
            }
            self.event(
                "Normal",
                "Synced",
                &format!("Rollback hook {} not signaling a rollback", call.name),
            )
            .await?;
        }
        Ok(false)
    }

    /// Runs the `post-rollout` hooks once the rollout ended in `status`'s
    /// phase (`Succeeded` or `Failed`); a failure is recorded, nothing
    /// more (the rollout is over).
    pub(super) async fn post_rollout(&self, status: &CanaryStatus) -> Result<(), Error> {
        if !self.hooks.has(HookKind::PostRollout.as_str()) {
            return Ok(());
        }
        let phase = status.phase.clone().unwrap_or_default();
        let answer = self
            .hooks
            .hook_calls(HookKind::PostRollout, &context(status, &phase))
            .await;
        for call in &answer.calls {
            let message = if passed(call) {
                format!("Post-rollout check {} passed", call.name)
            } else {
                format!("Post-rollout hook {} failed {}", call.name, failure(call))
            };
            let event_type = if passed(call) { "Normal" } else { "Warning" };
            self.event(event_type, "Synced", &message).await?;
        }
        Ok(())
    }
}
