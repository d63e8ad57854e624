//! Flagger-style webhooks over HTTP: a JSON payload POSTed to each URL, a
//! 2xx answer meaning "yes".
//!
//! The payload is Flagger's: `{name, namespace, phase, checksum, metadata}`.
//! Every call has a timeout, is retried `retries` times with exponential
//! backoff when the receiver is unreachable or answers 5xx/429 (never on
//! other 4xx: a closed gate answers 403 and asking again cannot change that),
//! and the answer body is read up to a small cap, so a slow or chatty
//! receiver can never stall a rollout for long. When a webhook does not
//! answer 2xx, the first kibibyte of its body (what the receiver says is
//! wrong) goes into the log line and the call's record in the history.
//!
//! `event` webhooks receive every event with Flagger's `eventMessage`,
//! `eventType` and `timestamp` metadata. They are delivered in order by a
//! background task fed through a bounded queue, so a slow receiver never
//! holds the rollout: when the queue is full an event is dropped and logged.

use crate::outbound::{self, Outbound};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde::Serialize;
use serin_rollout::{
    Backoff, GateKind, HookKind, Record, Severity,
    ports::{BoxFuture, HookAnswer, HookContext, WebhookCall, Webhooks},
};
use serin_spec::{Canary, WebhookType};
use std::{
    collections::BTreeMap,
    sync::{Arc, OnceLock},
    time::{Duration, Instant, SystemTime},
};
use tokio::sync::{mpsc, oneshot};

/// Used when a webhook gives no `timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The most retries a webhook may ask for; more would hold a gate for minutes.
pub const MAX_RETRIES: u32 = 10;
/// The pauses between attempts: 200 ms, doubled after each, up to 5 s.
pub const BACKOFF: Backoff = Backoff::new(Duration::from_millis(200), 2, Duration::from_secs(5));
/// The most of a 2xx answer's body that is read (and thrown away, so the
/// connection can be reused); a longer one closes the connection.
const MAX_DRAIN_BYTES: usize = 16 * 1024;
/// How much of a refusal's body is read and kept for the log and the
/// history; nothing more of it is read.
pub const MAX_BODY_BYTES: usize = 1024;
/// Events waiting for the `event` webhooks; more are dropped, never waited for.
const EVENT_QUEUE: usize = 256;

/// One configured webhook.
#[derive(Clone, Debug)]
struct Hook {
    name: String,
    /// The URL, or why it cannot be called (reported on every call, so the
    /// history says why a gate never opens).
    url: Result<http::Uri, String>,
    /// The URL as written, for the history.
    raw_url: String,
    timeout: Duration,
    retries: u32,
    mute_alert: bool,
    /// Flagger's `disableTLS`: accept any certificate.
    disable_tls: bool,
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
    inner: Arc<Inner>,
    /// The `event` delivery queue, started on the first event (a runtime is
    /// needed to spawn its task).
    events: OnceLock<mpsc::Sender<EventJob>>,
}

#[derive(Debug)]
struct Inner {
    name: String,
    namespace: String,
    hooks: BTreeMap<&'static str, Vec<Hook>>,
    /// Verifies certificates.
    client: Result<Outbound, String>,
    /// For webhooks with `disableTLS`.
    insecure: Result<Outbound, String>,
}

/// Work for the event delivery task.
#[derive(Debug)]
enum EventJob {
    Send {
        record: Record,
        context: HookContext,
        at: SystemTime,
    },
    Flush(oneshot::Sender<()>),
}

/// How one attempt ended.
enum Attempt {
    /// An answer, with the start of its body when it was not 2xx.
    Status {
        status: u16,
        body: Option<String>,
    },
    Failed(String),
}

// === impl HttpWebhooks ===

impl HttpWebhooks {
    /// The webhooks a canary configures.
    pub fn from_canary(canary: &Canary) -> Arc<Self> {
        let mut hooks: BTreeMap<&'static str, Vec<Hook>> = BTreeMap::new();
        let analysis = canary.analysis();
        for kind in WebhookType::ALL {
            for webhook in analysis.webhooks_of(kind) {
                let timeout = webhook
                    .timeout
                    .as_ref()
                    .map(|t| t.as_std())
                    .filter(|t| !t.is_zero())
                    .unwrap_or(DEFAULT_TIMEOUT);
                let retries = webhook
                    .retries
                    .map(|r| u32::try_from(r.clamp(0, i64::from(MAX_RETRIES))).unwrap_or(0))
                    .unwrap_or(0);
                let metadata = webhook
                    .metadata
                    .iter()
                    .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                    .collect();
                hooks.entry(kind.name()).or_default().push(Hook {
                    name: webhook.name.clone(),
                    url: check_url(&webhook.url),
                    raw_url: webhook.url.clone(),
                    timeout,
                    retries,
                    mute_alert: webhook.mute_alert,
                    disable_tls: webhook.disable_tls,
                    metadata,
                });
            }
        }
        Arc::new(HttpWebhooks {
            inner: Arc::new(Inner {
                name: canary.name().to_owned(),
                namespace: canary
                    .metadata
                    .namespace
                    .clone()
                    .unwrap_or_else(|| "default".into()),
                hooks,
                client: outbound::client(true),
                insecure: outbound::client(false),
            }),
            events: OnceLock::new(),
        })
    }

    /// Whether the webhook `name` of `kind` asked for its failures not to be
    /// alerted (`muteAlert: true`).
    pub fn is_muted(&self, kind: &str, name: &str) -> bool {
        self.inner
            .hooks
            .get(kind)
            .is_some_and(|hooks| hooks.iter().any(|h| h.name == name && h.mute_alert))
    }

    /// Whether every webhook of `kind` has `muteAlert` (false when none).
    pub fn all_muted(&self, kind: &str) -> bool {
        self.inner
            .hooks
            .get(kind)
            .is_some_and(|hooks| hooks.iter().all(|h| h.mute_alert))
    }

    /// Whether any webhook of `kind` is configured.
    pub fn has(&self, kind: &str) -> bool {
        self.inner.hooks.contains_key(kind)
    }

    /// Waits (up to `timeout`) until every event queued so far was delivered
    /// or given up on: `serin run` calls this before exiting so the last
    /// events are not lost. Returns whether the queue drained in time.
    pub async fn flush(&self, timeout: Duration) -> bool {
        let Some(queue) = self.events.get() else {
            return true;
        };
        let (done, drained) = oneshot::channel();
        tokio::time::timeout(timeout, async {
            if queue.send(EventJob::Flush(done)).await.is_ok() {
                let _ = drained.await;
            }
        })
        .await
        .is_ok()
    }

    fn queue(&self) -> &mpsc::Sender<EventJob> {
        self.events.get_or_init(|| {
            let (sender, receiver) = mpsc::channel(EVENT_QUEUE);
            tokio::spawn(deliver_events(self.inner.clone(), receiver));
            sender
        })
    }
}

impl Webhooks for HttpWebhooks {
    fn gate<'a>(&'a self, kind: GateKind, context: &'a HookContext) -> BoxFuture<'a, HookAnswer> {
        Box::pin(self.inner.call_all(kind.as_str(), context, None))
    }

    fn hook<'a>(&'a self, kind: HookKind, context: &'a HookContext) -> BoxFuture<'a, HookAnswer> {
        Box::pin(async move {
            if kind == HookKind::Rollback && !self.has(kind.as_str()) {
                // No rollback webhook: nobody asks to roll back.
                return HookAnswer::without_calls(false);
            }
            self.inner.call_all(kind.as_str(), context, None).await
        })
    }

    fn event<'a>(&'a self, record: &'a Record, context: &'a HookContext) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if !self.has(WebhookType::Event.name()) {
                return;
            }
            let job = EventJob::Send {
                record: record.clone(),
                context: context.clone(),
                at: SystemTime::now(),
            };
            if let Err(error) = self.queue().try_send(job) {
                tracing::warn!(canary = %self.inner.name, %error, "event webhook queue full: event dropped");
            }
        })
    }
}

/// Delivers queued events in order until every sender is gone.
async fn deliver_events(inner: Arc<Inner>, mut receiver: mpsc::Receiver<EventJob>) {
    while let Some(job) = receiver.recv().await {
        match job {
            EventJob::Send {
                record,
                context,
                at,
            } => {
                let millis = at
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map(|d| d.as_millis())
                    .unwrap_or(0);
                let extra = [
                    ("eventMessage", record.message),
                    (
                        "eventType",
                        match record.severity {
                            Severity::Normal => "Normal".to_owned(),
                            Severity::Warning => "Warning".to_owned(),
                        },
                    ),
                    ("timestamp", millis.to_string()),
                ];
                let _ = inner
                    .call_all(WebhookType::Event.name(), &context, Some(&extra))
                    .await;
            }
            EventJob::Flush(done) => {
                let _ = done.send(());
            }
        }
    }
}

// === impl Inner ===

impl Inner {
    /// Calls every webhook of `kind`; `ok` when all answered 2xx (and when
    /// none is configured). `extra` metadata is added to each payload.
    async fn call_all(
        &self,
        kind: &str,
        context: &HookContext,
        extra: Option<&[(&str, String)]>,
    ) -> HookAnswer {
        let Some(hooks) = self.hooks.get(kind) else {
            return HookAnswer::without_calls(true);
        };
        let mut answer = HookAnswer {
            ok: true,
            calls: Vec::with_capacity(hooks.len()),
        };
        for hook in hooks {
            let started = Instant::now();
            let result = self.call(hook, context, extra).await;
            let mut call = WebhookCall {
                name: hook.name.clone(),
                url: hook.raw_url.clone(),
                millis: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                ..WebhookCall::default()
            };
            match result {
                Attempt::Status { status, body } => {
                    call.status = Some(status);
                    if (200..300).contains(&status) {
                        tracing::info!(canary = %self.name, webhook = %hook.name, kind, status, "webhook answered");
                    } else {
                        answer.ok = false;
                        let text = body.as_deref().unwrap_or("");
                        tracing::warn!(
                            canary = %self.name,
                            webhook = %hook.name,
                            kind,
                            status,
                            "webhook refused: answered {status} in {} ms: {text}",
                            call.millis
                        );
                        call.body = body;
                    }
                }
                Attempt::Failed(error) => {
                    tracing::warn!(canary = %self.name, webhook = %hook.name, kind, %error, "webhook failed");
                    call.error = Some(error);
                    answer.ok = false;
                }
            }
            answer.calls.push(call);
        }
        answer
    }

    /// One webhook, with its retries.
    async fn call(
        &self,
        hook: &Hook,
        context: &HookContext,
        extra: Option<&[(&str, String)]>,
    ) -> Attempt {
        let url = match &hook.url {
            Ok(url) => url,
            Err(error) => return Attempt::Failed(error.clone()),
        };
        let mut metadata = hook.metadata.clone();
        for (key, value) in extra.unwrap_or_default() {
            metadata.insert((*key).to_owned(), serde_json::Value::String(value.clone()));
        }
        let payload = Payload {
            name: &self.name,
            namespace: &self.namespace,
            phase: &context.phase,
            checksum: &context.revision,
            metadata: &metadata,
        };
        let body = match serde_json::to_vec(&payload) {
            Ok(body) => Bytes::from(body),
            Err(error) => return Attempt::Failed(error.to_string()),
        };
        let mut backoff = BACKOFF;
        let mut attempt = 0;
        loop {
            let outcome = self
                .attempt(url, hook.timeout, hook.disable_tls, body.clone())
                .await;
            let retryable = match &outcome {
                Attempt::Status { status, .. } => {
                    *status == 429 || (*status >= 500 && *status != 501)
                }
                Attempt::Failed(_) => true,
            };
            if !retryable || attempt >= hook.retries {
                return match outcome {
                    Attempt::Failed(error) if attempt > 0 => {
                        Attempt::Failed(format!("{error} (after {} attempts)", attempt + 1))
                    }
                    other => other,
                };
            }
            attempt += 1;
            let wait = backoff.next();
            tracing::debug!(canary = %self.name, webhook = %hook.name, attempt, ?wait, "retrying webhook");
            tokio::time::sleep(wait).await;
        }
    }

    async fn attempt(
        &self,
        url: &http::Uri,
        timeout: Duration,
        disable_tls: bool,
        body: Bytes,
    ) -> Attempt {
        let client = if disable_tls {
            &self.insecure
        } else {
            &self.client
        };
        let client = match client {
            Ok(client) => client,
            Err(error) => return Attempt::Failed(format!("no TLS client: {error}")),
        };
        let request = match http::Request::post(url.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))
        {
            Ok(request) => request,
            Err(error) => return Attempt::Failed(error.to_string()),
        };
        let deadline = tokio::time::Instant::now() + timeout;
        let response = match tokio::time::timeout_at(deadline, client.request(request)).await {
            Ok(Ok(response)) => response,
            Ok(Err(error)) => return Attempt::Failed(describe(&error)),
            Err(_) => return Attempt::Failed(format!("no answer within {timeout:?}")),
        };
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            // Read (and drop) a bounded amount, so the connection can be reused.
            let _ = read_start(response.into_body(), 0, MAX_DRAIN_BYTES, deadline).await;
            return Attempt::Status { status, body: None };
        }
        // A refusal's reason: its first kibibyte, and not a byte more.
        let (start, more) = read_start(
            response.into_body(),
            MAX_BODY_BYTES,
            MAX_BODY_BYTES,
            deadline,
        )
        .await;
        let text = excerpt(&start, more);
        Attempt::Status {
            status,
            body: (!text.is_empty()).then_some(text),
        }
    }
}

/// A URL the client can call, or why not.
fn check_url(url: &str) -> Result<http::Uri, String> {
    let uri = url
        .parse::<http::Uri>()
        .map_err(|error| format!("url {url:?}: {error}"))?;
    outbound::callable(&uri).map_err(|reason| format!("url {url:?}: {reason}"))?;
    Ok(uri)
}

/// An error with its causes, which is where hyper says what actually failed.
fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Reads `body` until it ends, `deadline` passes, or more than `limit`
/// bytes arrived; keeps the first `keep` bytes. Returns them and whether
/// the body held more. A body that stalls or breaks after its status keeps
/// what arrived: the status is the answer.
async fn read_start<B>(
    mut body: B,
    keep: usize,
    limit: usize,
    deadline: tokio::time::Instant,
) -> (Vec<u8>, bool)
where
    B: http_body::Body<Data = Bytes> + Unpin,
{
    let mut kept = Vec::with_capacity(keep.min(MAX_BODY_BYTES));
    let mut seen = 0usize;
    while seen <= limit {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(Some(Ok(frame))) => frame,
            Ok(None | Some(Err(_))) | Err(_) => return (kept, seen > keep),
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        seen = seen.saturating_add(data.len());
        let room = keep.saturating_sub(kept.len());
        kept.extend_from_slice(&data[..data.len().min(room)]);
    }
    (kept, true)
}

/// The start of an answer body as text on one line: invalid UTF-8 replaced,
/// surrounding whitespace dropped, control characters (and the invisible
/// ones that reorder text) escaped as `\n`, `\t`, `\u{1b}`; `…` when the
/// body held `more`.
fn excerpt(body: &[u8], more: bool) -> String {
    let body = if more {
        // Cut at the last whole character, not in the middle of one.
        match std::str::from_utf8(body) {
            Err(error) if error.error_len().is_none() => &body[..error.valid_up_to()],
            _ => body,
        }
    } else {
        body
    };
    let text = String::from_utf8_lossy(body);
    let text = if more { text.trim_start() } else { text.trim() };
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || is_bidi_or_invisible(c) => {
                out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    if more {
        out.push('…');
    }
    out
}

/// Characters that change how the text around them reads without showing
/// themselves: bidirectional overrides and isolates, zero-width ones.
fn is_bidi_or_invisible(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        assert!(check_url("http://127.0.0.1:9/x").is_ok());
        assert_eq!(check_url("https://example.com").is_ok(), outbound::HTTPS);
        assert!(check_url("ftp://x").unwrap_err().contains("http://"));
        assert!(check_url("not a url").is_err());
    }

    #[test]
    fn retries_wait_longer_each_time_up_to_a_bound() {
        let mut backoff = BACKOFF;
        let waits: Vec<u128> = (0..7).map(|_| backoff.next().as_millis()).collect();
        assert_eq!(waits, [200, 400, 800, 1600, 3200, 5000, 5000]);
    }

    #[test]
    fn excerpts_are_on_one_line_with_controls_escaped() {
        assert_eq!(excerpt(b"no\nway\r\n", false), "no\\nway");
        assert_eq!(excerpt(b"\x1b[31mred\ttab", false), "\\u{1b}[31mred\\ttab");
        assert_eq!(
            excerpt("a\u{202e}b".as_bytes(), false),
            "a\\u{202e}b",
            "no reordering of the log line"
        );
        assert_eq!(excerpt(b"\xff\xfeok", false), "\u{fffd}\u{fffd}ok");
        assert_eq!(excerpt(b"", false), "");
    }

    #[test]
    fn a_cut_excerpt_ends_on_a_whole_character_and_says_so() {
        // 1023 bytes of 'a' and the first byte of 'é'.
        let mut body = vec![b'a'; MAX_BODY_BYTES - 1];
        body.push(0xc3);
        let text = excerpt(&body, true);
        assert_eq!(
            text.chars().filter(|c| *c == 'a').count(),
            MAX_BODY_BYTES - 1
        );
        assert!(text.ends_with("a…"), "{text}");
    }

    #[tokio::test]
    async fn only_the_start_of_a_body_is_read() {
        use futures_util::stream;
        use http_body_util::StreamBody;
        // An endless body in 4 KiB frames: reading stops after the first.
        let frames = stream::repeat_with(|| {
            Ok::<_, std::convert::Infallible>(http_body::Frame::data(Bytes::from(vec![b'x'; 4096])))
        });
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let (start, more) = read_start(
            StreamBody::new(frames),
            MAX_BODY_BYTES,
            MAX_BODY_BYTES,
            deadline,
        )
        .await;
        assert_eq!(start.len(), MAX_BODY_BYTES);
        assert!(more);
        // A short body is kept whole.
        let short = Full::new(Bytes::from_static(b"denied"));
        let (start, more) = read_start(short, MAX_BODY_BYTES, MAX_BODY_BYTES, deadline).await;
        assert_eq!((start.as_slice(), more), (&b"denied"[..], false));
    }
}
