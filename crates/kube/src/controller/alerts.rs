//! Alerts in controller mode: a canary's `spec.analysis.alerts` sent
//! through their `AlertProvider`s when a rollout changes phase as Flagger
//! sends them: a new revision starting (info), a gate holding it (warn,
//! unless the gate's webhook has `muteAlert`), a rollback (error) and a
//! promotion (info). Each entry sends what is at or above its `severity`.
//!
//! The providers are read from the API only when an alert is due (not at
//! every pass), their address from `spec.address` or the `address` key of
//! the Secret `spec.secretRef` names, and rendered by `serve`'s code
//! ([`AlertTarget::render`]: Slack, Microsoft Teams, Discord, Rocket, Google
//! Chat, generic JSON). Delivery is one bounded attempt: an alert never
//! holds a rollout, and one that cannot be delivered is recorded as a
//! Warning event on the canary, naming the entry and why.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::Full;
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api,
    api::DynamicObject,
    core::{ApiResource, GroupVersionKind},
};
use serin_providers::{Alert, AlertSeverity, AlertTarget};
use serin_spec::{AlertProvider, ResolvedAlert};

use super::{Error, Pass};
use crate::resource::CanaryStatus;

/// How long one delivery may take.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);

// === impl Pass ===

impl Pass<'_> {
    /// Sends `message` at `severity` to every alert entry that wants it;
    /// `status` is the canary's status after the change.
    pub(super) async fn alert(
        &self,
        severity: AlertSeverity,
        message: &str,
        status: &CanaryStatus,
    ) -> Result<(), Error> {
        let canary = self.subject.canary();
        let entries = &canary.analysis().alerts;
        for (index, entry) in entries.iter().enumerate() {
            let wanted = entry
                .severity
                .as_deref()
                .and_then(AlertSeverity::parse)
                .unwrap_or(AlertSeverity::Info);
            if severity < wanted {
                continue;
            }
            let target = match self.alert_target(index, entry).await {
                Ok(target) => target,
                Err(reason) => {
                    self.event(
                        "Warning",
                        "Synced",
                        &format!("Alert {} not sent: {reason}", entry.name),
                    )
                    .await?;
                    continue;
                }
            };
            let alert = Alert {
                canary: canary.name().to_string(),
                namespace: self.namespace.to_string(),
                revision: status.last_applied_spec.clone().unwrap_or_default(),
                phase: status.phase.clone().unwrap_or_default(),
                severity,
                message: message.to_string(),
                reasons: Vec::new(),
                weight: u8::try_from(status.canary_weight.clamp(0, 100)).ok(),
                dashboard: None,
                timestamp: SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map(|elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
                    .unwrap_or(0),
            };
            if let Err(reason) = deliver(&target, &alert).await {
                self.event(
                    "Warning",
                    "Synced",
                    &format!("Alert {} not delivered: {reason}", entry.name),
                )
                .await?;
            }
        }
        Ok(())
    }

    /// The target of alert entry `index`: its provider read from the API,
    /// the address from the provider or its Secret.
    async fn alert_target(
        &self,
        index: usize,
        entry: &serin_spec::Alert,
    ) -> Result<AlertTarget, String> {
        let reference = &entry.provider_ref;
        let namespace = reference.namespace.as_deref().unwrap_or(self.namespace);
        let resource = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("flagger.app", "v1beta1", "AlertProvider"),
            "alertproviders",
        );
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), namespace, &resource);
        let object = api
            .get(&reference.name)
            .await
            .map_err(|error| format!("AlertProvider {namespace}/{}: {error}", reference.name))?;
        let mut provider: AlertProvider = serde_json::to_value(&object)
            .and_then(serde_json::from_value)
            .map_err(|error| format!("AlertProvider {namespace}/{}: {error}", reference.name))?;
        if let Some(secret) = provider.spec.secret_ref.clone() {
            let secrets: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
            let found = secrets.get(&secret.name).await.map_err(|error| {
                format!(
                    "AlertProvider {namespace}/{}: spec.secretRef: Secret {namespace}/{}: {error}",
                    reference.name, secret.name
                )
            })?;
            let address = found
                .data
                .as_ref()
                .and_then(|data| data.get("address"))
                .map(|bytes| String::from_utf8_lossy(&bytes.0).trim().to_string())
                .ok_or_else(|| {
                    format!(
                        "AlertProvider {namespace}/{}: spec.secretRef: Secret {namespace}/{} has no address key",
                        reference.name, secret.name
                    )
                })?;
            provider.spec.address = Some(address);
        }
        AlertTarget::from_resolved(
            index,
            &ResolvedAlert {
                alert: entry,
                provider: &provider,
            },
        )
        .map_err(|error| error.to_string())
    }
}

/// Posts `alert` as `target`'s provider expects it, once, bounded.
async fn deliver(target: &AlertTarget, alert: &Alert) -> Result<(), String> {
    let body = serde_json::to_vec(&target.render(alert)).map_err(|error| error.to_string())?;
    let client = serin_providers::outbound::client(true)?;
    let request = http::Request::post(target.address.clone())
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|error| error.to_string())?;
    let response = tokio::time::timeout(DELIVERY_TIMEOUT, client.request(request))
        .await
        .map_err(|_| format!("no answer within {DELIVERY_TIMEOUT:?}"))?
        .map_err(|error| error.to_string())?;
    let status = response.status().as_u16();
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(format!("answered {status}"))
    }
}
