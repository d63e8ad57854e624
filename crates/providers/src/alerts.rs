//! Alerts: telling people what a rollout did, through Flagger's
//! `AlertProvider` types (slack, msteams, discord, rocket, gchat) and a
//! generic JSON webhook.
//!
//! The [`Notifier`] wraps [`HttpWebhooks`] and is the runtime's `Webhooks`
//! port: gates and hooks pass through, and every event record also becomes
//! a candidate alert. Records of one moment (one state-machine step) are
//! gathered into one alert, so a rollback is one message saying which
//! canary, which revision, what happened and why, with the weight and a
//! dashboard link. Alerts go to a background task through a bounded queue:
//! delivery is retried with backoff and logged, and never holds a rollout.
//!
//! What is alerted, as Flagger does: a new revision starting (info), a
//! rollout waiting for approval (warn, unless every gate webhook of that
//! kind has `muteAlert`), warnings such as failed checks (warn, unless they
//! come from a failed webhook with `muteAlert`), promotion (info) and
//! rollback (error). Each alert entry sends events at or above its
//! `severity`.

use crate::webhooks::HttpWebhooks;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use serde::Serialize;
use serde_json::{Value, json};
use serin_rollout::{
    Backoff, GateKind, HookKind, Record, Route, Severity,
    ports::{BoxFuture, CanaryTarget, HookAnswer, HookContext, PortError, Router, Webhooks},
};
use serin_spec::ResolvedAlert;
use std::{
    fmt,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicU8, Ordering},
    },
    time::{Duration, SystemTime},
};
use tokio::sync::{mpsc, oneshot};

/// Alerts waiting for delivery; more are dropped (and logged), never waited for.
const QUEUE: usize = 64;
/// Records closer together than this belong to one moment of the rollout.
const GATHER: Duration = Duration::from_millis(50);
/// Attempts per alert and provider.
const ATTEMPTS: u32 = 4;
/// The pauses between attempts: 250 ms, doubled after each, up to 5 s, so
/// more attempts can never make one alert wait minutes.
const BACKOFF: Backoff = Backoff::new(Duration::from_millis(250), 2, Duration::from_secs(5));
/// How long one delivery attempt may take.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);
/// The most of a provider's answer that is read.
const MAX_ANSWER_BYTES: usize = 4 * 1024;

/// How bad an event is; alerts send events at or above their severity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertSeverity {
    /// Progress: a new revision, a promotion.
    Info,
    /// Held or a failed check: someone may want to look.
    Warn,
    /// Rolled back.
    Error,
}

/// The kinds of `AlertProvider`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProviderKind {
    /// Slack incoming webhook.
    Slack,
    /// Microsoft Teams incoming webhook (MessageCard).
    MsTeams,
    /// Discord webhook (embeds).
    Discord,
    /// Rocket.Chat incoming webhook (Slack's format).
    Rocket,
    /// Google Chat webhook (cards).
    GChat,
    /// serin's generic JSON webhook: the [`Alert`] as it is.
    Webhook,
}

/// Why alerts could not be set up.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AlertError {
    /// The provider type is not one serin knows.
    #[error(
        "{path}: unknown alert provider type {found:?} (expected slack, msteams, discord, rocket, gchat or webhook)"
    )]
    UnknownType {
        /// The field.
        path: String,
        /// What was written.
        found: String,
    },
    /// The provider's address cannot be called.
    #[error("{path}: {message}")]
    Address {
        /// The field.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The alert's severity is not info, warn or error.
    #[error("{path}: unknown severity {found:?} (expected info, warn or error)")]
    Severity {
        /// The field.
        path: String,
        /// What was written.
        found: String,
    },
}

// === impl AlertError ===

impl AlertError {
    /// The field at fault.
    pub fn path(&self) -> &str {
        match self {
            Self::UnknownType { path, .. }
            | Self::Address { path, .. }
            | Self::Severity { path, .. } => path,
        }
    }

    /// What is wrong, without the field.
    pub fn reason(&self) -> String {
        let text = self.to_string();
        text.strip_prefix(self.path())
            .and_then(|rest| rest.strip_prefix(": "))
            .unwrap_or(&text)
            .to_owned()
    }
}

/// One message about a rollout.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Alert {
    /// The canary's name.
    pub canary: String,
    /// Its namespace.
    pub namespace: String,
    /// The revision being rolled out.
    pub revision: String,
    /// The phase after the event (Flagger's name).
    pub phase: String,
    /// How bad.
    pub severity: AlertSeverity,
    /// What happened.
    pub message: String,
    /// Why: the decision's reasons and the other events of the moment.
    pub reasons: Vec<String>,
    /// The canary weight (for a rollback or promotion: the weight it had).
    pub weight: Option<u8>,
    /// Where to see the rollout.
    pub dashboard: Option<String>,
    /// When, in Unix milliseconds.
    pub timestamp: u64,
}

/// Where one alert entry sends.
#[derive(Clone, Debug)]
pub struct AlertTarget {
    /// The alert entry's name.
    pub name: String,
    /// The provider's format.
    pub kind: ProviderKind,
    /// The provider's webhook URL.
    pub address: http::Uri,
    /// Channel (Slack, Rocket).
    pub channel: Option<String>,
    /// Sender name.
    pub username: Option<String>,
    /// The least severe event sent.
    pub severity: AlertSeverity,
}

// === impl AlertSeverity ===

impl AlertSeverity {
    /// `info`, `warn` or `error` (Flagger also writes `warning`).
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "" | "info" => Some(Self::Info),
            "warn" | "warning" => Some(Self::Warn),
            "error" => Some(Self::Error),
            _ => None,
        }
    }

    fn color(self) -> &'static str {
        match self {
            Self::Info => "#2eb886",
            Self::Warn => "#daa038",
            Self::Error => "#d00000",
        }
    }

    fn color_number(self) -> u32 {
        match self {
            Self::Info => 0x2e_b8_86,
            Self::Warn => 0xda_a0_38,
            Self::Error => 0xd0_00_00,
        }
    }
}

impl fmt::Display for AlertSeverity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
        })
    }
}

// === impl ProviderKind ===

impl ProviderKind {
    /// The kind an `AlertProvider`'s `spec.type` names.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "slack" => Some(Self::Slack),
            "msteams" => Some(Self::MsTeams),
            "discord" => Some(Self::Discord),
            "rocket" => Some(Self::Rocket),
            "gchat" => Some(Self::GChat),
            "webhook" => Some(Self::Webhook),
            _ => None,
        }
    }
}

// === impl AlertTarget ===

impl AlertTarget {
    /// The target of one resolved alert entry; `index` is its place in
    /// `spec.analysis.alerts`, for messages.
    pub fn from_resolved(index: usize, resolved: &ResolvedAlert<'_>) -> Result<Self, AlertError> {
        let path = format!("spec.analysis.alerts[{index}]");
        let spec = &resolved.provider.spec;
        let kind =
            ProviderKind::parse(&spec.provider_type).ok_or_else(|| AlertError::UnknownType {
                path: format!("{path}.providerRef: AlertProvider spec.type"),
                found: spec.provider_type.clone(),
            })?;
        let address = spec.address.as_deref().unwrap_or_default();
        let address = address
            .parse::<http::Uri>()
            .map_err(|error| error.to_string())
            .and_then(|uri| crate::outbound::callable(&uri).map(|()| uri))
            .map_err(|reason| AlertError::Address {
                path: format!("{path}.providerRef: AlertProvider spec.address"),
                message: format!("{address:?} cannot be called: {reason}"),
            })?;
        let severity_text = resolved.alert.severity.as_deref().unwrap_or("info");
        let severity = AlertSeverity::parse(severity_text).ok_or_else(|| AlertError::Severity {
            path: format!("{path}.severity"),
            found: severity_text.to_owned(),
        })?;
        Ok(AlertTarget {
            name: resolved.alert.name.clone(),
            kind,
            address,
            channel: spec.channel.clone(),
            username: spec.username.clone(),
            severity,
        })
    }

    /// The JSON this provider expects for `alert`.
    pub fn render(&self, alert: &Alert) -> Value {
        let title = format!("{}.{}", alert.canary, alert.namespace);
        let mut facts: Vec<(&str, String)> = vec![
            ("Revision", alert.revision.clone()),
            ("Phase", alert.phase.clone()),
        ];
        if let Some(weight) = alert.weight {
            facts.push(("Canary weight", format!("{weight}%")));
        }
        if !alert.reasons.is_empty() {
            facts.push(("Why", alert.reasons.join("\n")));
        }
        if let Some(link) = &alert.dashboard {
            facts.push(("Dashboard", link.clone()));
        }
        let username = self.username.clone().unwrap_or_else(|| "serin".into());
        match self.kind {
            ProviderKind::Slack | ProviderKind::Rocket => {
                let mut payload = json!({
                    "username": username,
                    "text": format!("{title}: {}", alert.message),
                    "attachments": [{
                        "color": alert.severity.color(),
                        "author_name": title,
                        "title": alert.message,
                        "title_link": alert.dashboard,
                        "text": alert.reasons.join("\n"),
                        "mrkdwn_in": ["text"],
                        "fields": facts.iter().map(|(k, v)| json!({
                            "title": k, "value": v, "short": v.len() < 40,
                        })).collect::<Vec<_>>(),
                    }],
                });
                if let (Some(channel), Some(object)) = (&self.channel, payload.as_object_mut()) {
                    object.insert("channel".into(), Value::String(channel.clone()));
                }
                payload
            }
            ProviderKind::MsTeams => json!({
                "@type": "MessageCard",
                "@context": "http://schema.org/extensions",
                "themeColor": alert.severity.color().trim_start_matches('#'),
                "summary": format!("{title}: {}", alert.message),
                "sections": [{
                    "activityTitle": title,
                    "activitySubtitle": alert.message,
                    "facts": facts.iter().map(|(k, v)| json!({"name": k, "value": v})).collect::<Vec<_>>(),
                }],
                "potentialAction": alert.dashboard.as_ref().map(|link| vec![json!({
                    "@type": "OpenUri", "name": "Dashboard",
                    "targets": [{"os": "default", "uri": link}],
                })]).unwrap_or_default(),
            }),
            ProviderKind::Discord => json!({
                "username": username,
                "content": format!("{title}: {}", alert.message),
                "embeds": [{
                    "title": title,
                    "description": alert.message,
                    "url": alert.dashboard,
                    "color": alert.severity.color_number(),
                    "fields": facts.iter().map(|(k, v)| json!({
                        "name": k, "value": v, "inline": v.len() < 40,
                    })).collect::<Vec<_>>(),
                }],
            }),
            ProviderKind::GChat => json!({
                "text": format!("{title}: {}", alert.message),
                "cards": [{
                    "header": {"title": title, "subtitle": alert.message},
                    "sections": [{
                        "widgets": facts.iter().map(|(k, v)| json!({
                            "keyValue": {"topLabel": k, "content": v, "contentMultiline": "true"},
                        })).collect::<Vec<_>>(),
                    }],
                }],
            }),
            ProviderKind::Webhook => serde_json::to_value(alert).unwrap_or_default(),
        }
    }
}

/// The webhooks plus alerts: what the runtime calls as its `Webhooks` port.
#[derive(Debug)]
pub struct Notifier {
    webhooks: Arc<HttpWebhooks>,
    shared: Arc<Shared>,
    queue: OnceLock<mpsc::Sender<Job>>,
}

/// What the alert task shares with the port.
#[derive(Debug)]
struct Shared {
    name: String,
    namespace: String,
    dashboard: Option<String>,
    targets: Vec<AlertTarget>,
    weight: AtomicU8,
    weight_before: AtomicU8,
    /// Gates whose every webhook has `muteAlert`: waiting on them is not alerted.
    muted_waiting: [bool; 2],
    /// A webhook failure the next records are about.
    hook_note: Mutex<Option<HookNote>>,
    client: Result<crate::outbound::Outbound, String>,
}

/// A failed webhook answer, remembered for the records it causes.
#[derive(Clone, Debug)]
struct HookNote {
    muted: bool,
    detail: String,
}

#[derive(Debug)]
enum Job {
    Record {
        record: Record,
        context: HookContext,
        note: Option<HookNote>,
    },
    Flush(oneshot::Sender<()>),
}

// === impl Notifier ===

impl Notifier {
    /// Alerts to `targets` for the canary whose webhooks are `webhooks`;
    /// `dashboard` is the dashboard's base URL (the link is
    /// `{dashboard}/canaries/{name}`).
    pub fn new(
        webhooks: Arc<HttpWebhooks>,
        name: &str,
        namespace: &str,
        targets: Vec<AlertTarget>,
        dashboard: Option<String>,
    ) -> Arc<Self> {
        let all_muted = |kind: &str| webhooks.has(kind) && webhooks.all_muted(kind);
        let muted_waiting = [
            all_muted(GateKind::ConfirmRollout.as_str()),
            all_muted(GateKind::ConfirmPromotion.as_str()),
        ];
        let dashboard =
            dashboard.map(|base| format!("{}/canaries/{name}", base.trim_end_matches('/')));
        Arc::new(Notifier {
            webhooks,
            shared: Arc::new(Shared {
                name: name.to_owned(),
                namespace: namespace.to_owned(),
                dashboard,
                targets,
                weight: AtomicU8::new(0),
                weight_before: AtomicU8::new(0),
                muted_waiting,
                hook_note: Mutex::new(None),
                client: crate::outbound::client(true),
            }),
            queue: OnceLock::new(),
        })
    }

    /// Wraps the rollout's router so alerts know the canary weight.
    pub fn tap(&self, router: Arc<dyn Router>) -> Arc<dyn Router> {
        Arc::new(WeightTap {
            inner: router,
            shared: self.shared.clone(),
        })
    }

    /// Waits (up to `timeout`) until every alert and event queued so far was
    /// delivered or given up on; `serin run` calls this before it exits.
    pub async fn flush(&self, timeout: Duration) -> bool {
        let alerts = async {
            let Some(queue) = self.queue.get() else {
                return;
            };
            let (done, drained) = oneshot::channel();
            if queue.send(Job::Flush(done)).await.is_ok() {
                let _ = drained.await;
            }
        };
        let (events, alerts) = tokio::join!(
            self.webhooks.flush(timeout),
            tokio::time::timeout(timeout, alerts)
        );
        events && alerts.is_ok()
    }

    fn queue(&self) -> &mpsc::Sender<Job> {
        self.queue.get_or_init(|| {
            let (sender, receiver) = mpsc::channel(QUEUE);
            tokio::spawn(deliver(self.shared.clone(), receiver));
            sender
        })
    }

    /// Remembers a failed answer so the records it causes are alerted (or
    /// not) accordingly.
    fn note(&self, kind: &str, answer: &HookAnswer) {
        if answer.ok || answer.calls.is_empty() {
            return;
        }
        let failed: Vec<_> = answer
            .calls
            .iter()
            .filter(|call| !call.status.is_some_and(|s| (200..300).contains(&s)))
            .collect();
        let muted = failed
            .iter()
            .all(|call| self.webhooks.is_muted(kind, &call.name));
        let detail = failed
            .iter()
            .map(|call| {
                let outcome = match (call.status, &call.error) {
                    (None, Some(error)) => error.clone(),
                    _ => call.outcome(),
                };
                format!("{kind} webhook {} {outcome}", call.name)
            })
            .collect::<Vec<_>>()
            .join("; ");
        *self
            .shared
            .hook_note
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(HookNote { muted, detail });
    }
}

impl Webhooks for Notifier {
    fn gate<'a>(&'a self, kind: GateKind, context: &'a HookContext) -> BoxFuture<'a, HookAnswer> {
        Box::pin(async move { self.webhooks.gate(kind, context).await })
    }

    fn hook<'a>(&'a self, kind: HookKind, context: &'a HookContext) -> BoxFuture<'a, HookAnswer> {
        Box::pin(async move {
            let answer = self.webhooks.hook(kind, context).await;
            if matches!(kind, HookKind::PreRollout | HookKind::Rollout) {
                self.note(kind.as_str(), &answer);
            }
            answer
        })
    }

    fn event<'a>(&'a self, record: &'a Record, context: &'a HookContext) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            self.webhooks.event(record, context).await;
            if self.shared.targets.is_empty() {
                return;
            }
            let note = self
                .shared
                .hook_note
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            let job = Job::Record {
                record: record.clone(),
                context: context.clone(),
                note,
            };
            if let Err(error) = self.queue().try_send(job) {
                tracing::warn!(canary = %self.shared.name, %error, "alert queue full: alert dropped");
            }
        })
    }
}

/// Gathers records into moments, decides what to alert and delivers it.
async fn deliver(shared: Arc<Shared>, mut receiver: mpsc::Receiver<Job>) {
    let mut last_phase = String::new();
    let mut last_sent: Option<(AlertSeverity, String)> = None;
    let mut batch: Vec<(Record, HookContext, Option<HookNote>)> = Vec::new();
    let mut flushes: Vec<oneshot::Sender<()>> = Vec::new();
    loop {
        let job = if batch.is_empty() && flushes.is_empty() {
            receiver.recv().await
        } else {
            match tokio::time::timeout(GATHER, receiver.recv()).await {
                Ok(job) => job,
                Err(_) => {
                    // The moment is over.
                    if let Some(alert) = classify(&shared, &mut last_phase, &batch) {
                        let key = (alert.severity, alert.message.clone());
                        if last_sent.as_ref() != Some(&key) {
                            send(&shared, &alert).await;
                            last_sent = Some(key);
                        }
                    }
                    batch.clear();
                    for done in flushes.drain(..) {
                        let _ = done.send(());
                    }
                    continue;
                }
            }
        };
        match job {
            Some(Job::Record {
                record,
                context,
                note,
            }) => batch.push((record, context, note)),
            Some(Job::Flush(done)) => flushes.push(done),
            None => {
                if let Some(alert) = classify(&shared, &mut last_phase, &batch) {
                    send(&shared, &alert).await;
                }
                return;
            }
        }
    }
}

/// The alert for the records of one moment, if any.
fn classify(
    shared: &Shared,
    last_phase: &mut String,
    batch: &[(Record, HookContext, Option<HookNote>)],
) -> Option<Alert> {
    let (_, context, _) = batch.last()?;
    let phase = context.phase.clone();
    let changed = phase != *last_phase;
    *last_phase = phase.clone();
    let note = batch.iter().find_map(|(_, _, note)| note.clone());
    let warnings: Vec<&str> = batch
        .iter()
        .filter(|(record, _, _)| record.severity == Severity::Warning)
        .map(|(record, _, _)| record.message.as_str())
        .collect();
    let all: Vec<&str> = batch.iter().map(|(r, _, _)| r.message.as_str()).collect();
    let terminal = matches!(phase.as_str(), "Succeeded" | "Failed");
    let (severity, message) = match phase.as_str() {
        "Failed" if changed => (
            AlertSeverity::Error,
            warnings.last().or(all.last()).copied().unwrap_or_default(),
        ),
        "Succeeded" if changed => (AlertSeverity::Info, all.last().copied().unwrap_or_default()),
        // A start is told by the record naming the revision ("New revision
        // v2 detected"), not by the initialization before it.
        "Progressing" if changed => (
            AlertSeverity::Info,
            all.iter()
                .find(|m| !context.revision.is_empty() && m.contains(context.revision.as_str()))
                .or(all.first())
                .copied()
                .unwrap_or_default(),
        ),
        "Waiting" if changed && !shared.muted_waiting[0] => {
            (AlertSeverity::Warn, all.last().copied().unwrap_or_default())
        }
        "WaitingPromotion" if changed && !shared.muted_waiting[1] => {
            (AlertSeverity::Warn, all.last().copied().unwrap_or_default())
        }
        _ if !warnings.is_empty() && !note.as_ref().is_some_and(|n| n.muted) => (
            AlertSeverity::Warn,
            warnings.first().copied().unwrap_or_default(),
        ),
        _ => return None,
    };
    let mut reasons: Vec<String> = all
        .iter()
        .filter(|m| **m != message)
        .map(|m| (*m).to_owned())
        .collect();
    if let Some(note) = note.filter(|n| !n.muted) {
        reasons.insert(0, note.detail);
    }
    let weight = if terminal {
        shared.weight_before.load(Ordering::Relaxed)
    } else {
        shared.weight.load(Ordering::Relaxed)
    };
    Some(Alert {
        canary: shared.name.clone(),
        namespace: shared.namespace.clone(),
        revision: context.revision.clone(),
        phase,
        severity,
        message: message.to_owned(),
        reasons,
        weight: Some(weight),
        dashboard: shared.dashboard.clone(),
        timestamp: SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0),
    })
}

/// Sends `alert` to every target whose severity it reaches.
async fn send(shared: &Shared, alert: &Alert) {
    for target in shared
        .targets
        .iter()
        .filter(|t| alert.severity >= t.severity)
    {
        let body = match serde_json::to_vec(&target.render(alert)) {
            Ok(body) => Bytes::from(body),
            Err(error) => {
                tracing::warn!(alert = %target.name, %error, "alert not rendered");
                continue;
            }
        };
        let mut backoff = BACKOFF;
        for attempt in 1..=ATTEMPTS {
            match post(&shared.client, &target.address, body.clone()).await {
                Ok(status) if (200..300).contains(&status) => {
                    tracing::info!(canary = %alert.canary, alert = %target.name, severity = %alert.severity, status, "alert delivered");
                    break;
                }
                outcome => {
                    let reason = match outcome {
                        Ok(status) => format!("answered {status}"),
                        Err(error) => error,
                    };
                    if attempt == ATTEMPTS {
                        tracing::warn!(canary = %alert.canary, alert = %target.name, %reason, attempts = ATTEMPTS, "alert not delivered");
                    } else {
                        tracing::info!(canary = %alert.canary, alert = %target.name, %reason, attempt, "alert delivery failed; retrying");
                        tokio::time::sleep(backoff.next()).await;
                    }
                }
            }
        }
    }
}

async fn post(
    client: &Result<crate::outbound::Outbound, String>,
    address: &http::Uri,
    body: Bytes,
) -> Result<u16, String> {
    let client = client
        .as_ref()
        .map_err(|error| format!("no TLS client: {error}"))?;
    let request = http::Request::post(address.clone())
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(body))
        .map_err(|error| error.to_string())?;
    let answer = tokio::time::timeout(DELIVERY_TIMEOUT, async {
        let response = client
            .request(request)
            .await
            .map_err(|error| error.to_string())?;
        let status = response.status().as_u16();
        let _ = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await;
        Ok::<_, String>(status)
    })
    .await;
    answer.unwrap_or_else(|_| Err(format!("no answer within {DELIVERY_TIMEOUT:?}")))
}

/// A router that remembers the canary weight it was last asked for.
struct WeightTap {
    inner: Arc<dyn Router>,
    shared: Arc<Shared>,
}

// === impl WeightTap ===

impl WeightTap {
    /// Notes the weight a route asks for (and the one before, on a change).
    fn remember(&self, route: Route) {
        let previous = self
            .shared
            .weight
            .swap(route.canary_weight, Ordering::Relaxed);
        if previous != route.canary_weight {
            self.shared.weight_before.store(previous, Ordering::Relaxed);
        }
    }
}

impl Router for WeightTap {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn set_canary(&self, canary: &CanaryTarget) -> BoxFuture<'_, Result<(), PortError>> {
        self.inner.set_canary(canary)
    }

    fn set_route(&self, route: Route) -> BoxFuture<'_, Result<(), PortError>> {
        self.remember(route);
        self.inner.set_route(route)
    }

    fn restore_canary(
        &self,
        canary: &CanaryTarget,
        route: Route,
    ) -> BoxFuture<'_, Result<(), PortError>> {
        self.remember(route);
        self.inner.restore_canary(canary, route)
    }

    fn promote(&self) -> BoxFuture<'_, Result<(), PortError>> {
        self.inner.promote()
    }

    fn finalise(&self) -> BoxFuture<'_, Result<(), PortError>> {
        self.inner.finalise()
    }
    fn repair(&self) -> BoxFuture<'_, Result<Option<String>, PortError>> {
        self.inner.repair()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_waits_are_bounded() {
        let mut backoff = BACKOFF;
        let waits: Vec<u128> = (0..8).map(|_| backoff.next().as_millis()).collect();
        assert_eq!(waits, [250, 500, 1000, 2000, 4000, 5000, 5000, 5000]);
    }
}
