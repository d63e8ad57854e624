//! Flagger-style webhooks over HTTP: a JSON payload POSTed to each URL, a
//! 2xx answer meaning "yes".
//!
//! The payload is Flagger's: `{name, namespace, phase, checksum, metadata}`.
//! Every call has a timeout and the answer body is read up to a small cap, so
//! a slow or chatty receiver can never stall a rollout for long.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use serde::Serialize;
use serin_rollout::{
    GateKind, HookKind, Record,
    ports::{BoxFuture, Webhooks},
};
use serin_spec::{Canary, WebhookType};
use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

/// Used when a webhook gives no `timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The most of an answer body that is read (and kept for messages).
const MAX_ANSWER_BYTES: usize = 16 * 1024;

/// One configured webhook.
#[derive(Clone, Debug)]
struct Hook {
    name: String,
    url: http::Uri,
    timeout: Duration,
    metadata: BTreeMap<String, serde_json::Value>,
}

/// What a webhook receiver gets.
#[derive(Debug, Serialize)]
struct Payload<'a> {
    name: &'a str,
    namespace: &'a str,
    phase: &'a str,
    checksum: &'a str,
    metadata: &'a BTreeMap<String, serde_json::Value>,
}

/// The canary's webhooks, called over HTTP.
#[derive(Debug)]
pub struct HttpWebhooks {
    name: String,
    namespace: String,
    hooks: BTreeMap<&'static str, Vec<Hook>>,
    client: Client<HttpConnector, Full<Bytes>>,
    /// Phase and revision reported in payloads, updated by the runtime.
    context: Mutex<(String, String)>,
}

// === impl HttpWebhooks ===

impl HttpWebhooks {
    /// The webhooks a canary configures. URLs that are not `http://` are
    /// refused by validation before this point; any left are skipped.
    pub fn from_canary(canary: &Canary) -> Arc<Self> {
        let mut hooks: BTreeMap<&'static str, Vec<Hook>> = BTreeMap::new();
        let analysis = canary.analysis();
        for kind in WebhookType::ALL {
            for webhook in analysis.webhooks_of(kind) {
                let Ok(url) = webhook.url.parse::<http::Uri>() else {
                    continue;
                };
                let timeout = webhook
                    .timeout
                    .as_ref()
                    .map(|t| t.as_std())
                    .filter(|t| !t.is_zero())
                    .unwrap_or(DEFAULT_TIMEOUT);
                let metadata = webhook
                    .metadata
                    .iter()
                    .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                    .collect();
                hooks.entry(kind.name()).or_default().push(Hook {
                    name: webhook.name.clone(),
                    url,
                    timeout,
                    metadata,
                });
            }
        }
        Arc::new(HttpWebhooks {
            name: canary.name().to_owned(),
            namespace: canary
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into()),
            hooks,
            client: Client::builder(TokioExecutor::new()).build_http(),
            context: Mutex::new(("Initializing".into(), String::new())),
        })
    }

    /// Sets the phase and revision sent in the next payloads.
    pub fn set_context(&self, phase: &str, revision: &str) {
        let mut guard = self
            .context
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *guard = (phase.to_owned(), revision.to_owned());
    }

    /// Calls every webhook of `kind`; true when all answered 2xx.
    async fn call_all(&self, kind: &str) -> bool {
        let Some(hooks) = self.hooks.get(kind) else {
            return true;
        };
        let mut all_ok = true;
        for hook in hooks {
            match self.call(hook).await {
                Ok(status) if (200..300).contains(&status) => {
                    tracing::info!(canary = %self.name, webhook = %hook.name, kind, status, "webhook answered");
                }
                Ok(status) => {
                    tracing::warn!(canary = %self.name, webhook = %hook.name, kind, status, "webhook refused");
                    all_ok = false;
                }
                Err(error) => {
                    tracing::warn!(canary = %self.name, webhook = %hook.name, kind, %error, "webhook failed");
                    all_ok = false;
                }
            }
        }
        all_ok
    }

    async fn call(&self, hook: &Hook) -> Result<u16, String> {
        let (phase, checksum) = self
            .context
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        let payload = Payload {
            name: &self.name,
            namespace: &self.namespace,
            phase: &phase,
            checksum: &checksum,
            metadata: &hook.metadata,
        };
        let body = serde_json::to_vec(&payload).map_err(|error| error.to_string())?;
        let request = http::Request::post(hook.url.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|error| error.to_string())?;
        let answer = tokio::time::timeout(hook.timeout, async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|error| error.to_string())?;
            let status = response.status().as_u16();
            // Drain a bounded amount so the connection can be reused.
            let _ = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await;
            Ok::<u16, String>(status)
        })
        .await;
        match answer {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {:?}", hook.timeout)),
        }
    }
}

impl Webhooks for HttpWebhooks {
    fn gate(&self, kind: GateKind) -> BoxFuture<'_, bool> {
        Box::pin(self.call_all(kind.as_str()))
    }

    fn hook(&self, kind: HookKind) -> BoxFuture<'_, bool> {
        Box::pin(async move {
            if kind == HookKind::Rollback && !self.hooks.contains_key(kind.as_str()) {
                // No rollback webhook: nobody asks to roll back.
                return false;
            }
            self.call_all(kind.as_str()).await
        })
    }

    fn event(&self, _record: &Record) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let _ = self.call_all("event").await;
        })
    }
}
