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
    ports::{BoxFuture, HookAnswer, HookContext, WebhookCall, Webhooks},
};
use serin_spec::{Canary, WebhookType};
use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
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
}

// === impl HttpWebhooks ===

impl HttpWebhooks {
    /// The webhooks a canary configures. URLs that do not parse are refused
    /// by validation before this point; any left are skipped.
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
        })
    }

    /// Calls every webhook of `kind`; `ok` when all answered 2xx (and when
    /// none is configured).
    async fn call_all(&self, kind: &str, context: &HookContext) -> HookAnswer {
        let Some(hooks) = self.hooks.get(kind) else {
            return HookAnswer::without_calls(true);
        };
        let mut answer = HookAnswer {
            ok: true,
            calls: Vec::with_capacity(hooks.len()),
        };
        for hook in hooks {
            let started = Instant::now();
            let result = self.call(hook, context).await;
            let mut call = WebhookCall {
                name: hook.name.clone(),
                url: hook.url.to_string(),
                millis: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                ..WebhookCall::default()
            };
            match result {
                Ok(status) => {
                    call.status = Some(status);
                    if !(200..300).contains(&status) {
                        answer.ok = false;
                    }
                    tracing::info!(canary = %self.name, webhook = %hook.name, kind, status, "webhook answered");
                }
                Err(error) => {
                    tracing::warn!(canary = %self.name, webhook = %hook.name, kind, %error, "webhook failed");
                    call.error = Some(error);
                    answer.ok = false;
                }
            }
            answer.calls.push(call);
        }
        answer
    }

    async fn call(&self, hook: &Hook, context: &HookContext) -> Result<u16, String> {
        let payload = Payload {
            name: &self.name,
            namespace: &self.namespace,
            phase: &context.phase,
            checksum: &context.revision,
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
    fn gate<'a>(&'a self, kind: GateKind, context: &'a HookContext) -> BoxFuture<'a, HookAnswer> {
        Box::pin(self.call_all(kind.as_str(), context))
    }

    fn hook<'a>(&'a self, kind: HookKind, context: &'a HookContext) -> BoxFuture<'a, HookAnswer> {
        Box::pin(async move {
            if kind == HookKind::Rollback && !self.hooks.contains_key(kind.as_str()) {
                // No rollback webhook: nobody asks to roll back.
                return HookAnswer::without_calls(false);
            }
            self.call_all(kind.as_str(), context).await
        })
    }

    fn event<'a>(&'a self, _record: &'a Record, context: &'a HookContext) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let _ = self.call_all("event", context).await;
        })
    }
}
