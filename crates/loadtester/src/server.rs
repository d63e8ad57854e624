//! The HTTP side: flagger-loadtester's paths and answers.
//!
//! | path | answers |
//! |---|---|
//! | `/healthz` | 200 |
//! | `/gate/approve`, `/gate/halt` | 200, 403: fixed gates |
//! | `/gate/check`, `/rollback/check` | 200 when open, 403 when closed |
//! | `/gate/open`, `/gate/close`, `/rollback/open`, `/rollback/close` | 202 |
//! | anything else | a task from `metadata`: 202 started, 200/500 when blocking, 400 refused |

use crate::{
    Config,
    gate::{GateKind, Gates},
    task::{Job, Outcome, RunError, Runner, Task},
};
use bytes::Bytes;
use http::{Method, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Request, body::Incoming};
use serde::Deserialize;
use serin_demo::LoadSpec;
use std::{collections::BTreeMap, sync::Arc, time::Duration};

/// The payload every Flagger webhook sends.
#[derive(Debug, Default, Deserialize)]
struct Payload {
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    metadata: BTreeMap<String, serde_json::Value>,
}

/// What the handlers share.
#[derive(Debug)]
pub(crate) struct Service {
    pub(crate) config: Config,
    pub(crate) gates: Gates,
    pub(crate) runner: Runner,
}

type Answer = Response<Full<Bytes>>;

fn answer(status: StatusCode, body: impl Into<Bytes>) -> Answer {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
}

fn json(status: StatusCode, value: &impl serde::Serialize) -> Answer {
    let mut response = answer(status, serde_json::to_vec(value).unwrap_or_default());
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

fn bad_request(message: impl std::fmt::Display) -> Answer {
    answer(StatusCode::BAD_REQUEST, format!("{message}\n"))
}

// === impl Service ===

impl Service {
    pub(crate) async fn handle(self: Arc<Self>, request: Request<Incoming>) -> Answer {
        let path = request.uri().path().to_owned();
        match (request.method(), path.as_str()) {
            (_, "/healthz") => return answer(StatusCode::OK, "OK"),
            (_, "/gate/approve") => return answer(StatusCode::OK, "OK"),
            (_, "/gate/halt") => return answer(StatusCode::FORBIDDEN, "Forbidden"),
            (&Method::POST, _) => {}
            _ => return answer(StatusCode::METHOD_NOT_ALLOWED, "POST a webhook payload\n"),
        }
        let read = Limited::new(request.into_body(), self.config.max_body_bytes).collect();
        let body = match tokio::time::timeout(self.config.body_timeout, read).await {
            Ok(Ok(body)) => body.to_bytes(),
            Ok(Err(_)) => {
                return answer(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("payload larger than {} bytes\n", self.config.max_body_bytes),
                );
            }
            Err(_) => {
                return answer(
                    StatusCode::REQUEST_TIMEOUT,
                    format!(
                        "payload not received within {:?}\n",
                        self.config.body_timeout
                    ),
                );
            }
        };
        let payload: Payload = match serde_json::from_slice(&body) {
            Ok(payload) => payload,
            Err(error) => return bad_request(format!("payload: {error}")),
        };
        let canary = format!("{}.{}", payload.name, payload.namespace);
        let gate = |kind| match path.as_str() {
            p if p.ends_with("/check") => {
                let open = self.gates.is_open(kind, &canary);
                tracing::info!(%canary, ?kind, open, "gate check");
                if open {
                    answer(StatusCode::OK, "Approved")
                } else {
                    answer(StatusCode::FORBIDDEN, "Forbidden")
                }
            }
            p if p.ends_with("/open") => {
                if self.gates.open(kind, &canary) {
                    tracing::info!(%canary, ?kind, "gate opened");
                    answer(StatusCode::ACCEPTED, "")
                } else {
                    answer(StatusCode::SERVICE_UNAVAILABLE, "too many open gates\n")
                }
            }
            _ => {
                self.gates.close(kind, &canary);
                tracing::info!(%canary, ?kind, "gate closed");
                answer(StatusCode::ACCEPTED, "")
            }
        };
        match path.as_str() {
            "/gate/check" | "/gate/open" | "/gate/close" => gate(GateKind::Advance),
            "/rollback/check" | "/rollback/open" | "/rollback/close" => gate(GateKind::Rollback),
            _ => self.task(canary, payload.metadata).await,
        }
    }

    /// A task from a webhook's metadata.
    async fn task(&self, canary: String, metadata: BTreeMap<String, serde_json::Value>) -> Answer {
        if metadata.is_empty() {
            return bad_request("metadata not found in payload");
        }
        let text = |key: &str| -> Option<String> {
            metadata.get(key).map(|value| match value {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            })
        };
        let flag = |key: &str| text(key).is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        let kind = text("type").unwrap_or_else(|| "cmd".to_owned());
        let log_output = flag("logCmdOutput");
        let return_output = flag("returnCmdOutput");
        let (job, blocking) = match kind.as_str() {
            "cmd" => {
                let Some(cmd) = text("cmd") else {
                    return bad_request("metadata.cmd: required for type cmd");
                };
                match self.config.programs.parse(&cmd) {
                    Ok(argv) => (Job::Program(argv), flag("blocking")),
                    Err(error) => {
                        tracing::warn!(%canary, %cmd, %error, "command refused");
                        return bad_request(error);
                    }
                }
            }
            "bash" => {
                if !self.config.allow_shell {
                    tracing::warn!(%canary, "bash command refused: shells not allowed");
                    return bad_request(
                        "metadata.type: bash runs a shell, which this load tester refuses; \
                         use type cmd with an allow-listed program, or start it with --allow-shell",
                    );
                }
                let Some(cmd) = text("cmd") else {
                    return bad_request("metadata.cmd: required for type bash");
                };
                (Job::Shell(cmd), true)
            }
            "load" => match load_spec(&text, self.runner.max_duration()) {
                Ok(spec) => (Job::Load(spec), flag("blocking")),
                Err(message) => return bad_request(message),
            },
            other => {
                return bad_request(format!(
                    "metadata.type: {other:?} is not supported (supported: cmd, bash, load)"
                ));
            }
        };
        let task = Task {
            canary,
            job,
            log_output,
        };
        if !blocking {
            return match self.runner.spawn(task) {
                Ok(()) | Err(RunError::AlreadyRunning(_)) => answer(StatusCode::ACCEPTED, ""),
                Err(busy) => answer(StatusCode::SERVICE_UNAVAILABLE, format!("{busy}\n")),
            };
        }
        match self.runner.run(task).await {
            Ok(outcome) => outcome_answer(outcome, return_output),
            Err(busy) => answer(StatusCode::SERVICE_UNAVAILABLE, format!("{busy}\n")),
        }
    }
}

/// 200 with the results, or 500 saying why.
fn outcome_answer(outcome: Outcome, return_output: bool) -> Answer {
    let status = if outcome.ok {
        StatusCode::OK
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    let mut value = serde_json::to_value(&outcome).unwrap_or_default();
    if return_output && let Some(object) = value.as_object_mut() {
        object.insert("output".into(), outcome.output.clone().into());
    }
    json(status, &value)
}

/// The built-in load generator's settings from a webhook's metadata:
/// `url`, `rate` (requests per second; as fast as answers come when absent),
/// `duration` (Go style, default 10s), `concurrency` (default 2), `headers`
/// (`Name: value` lines), `timeout` (per request, default 5s).
fn load_spec(
    text: &dyn Fn(&str) -> Option<String>,
    max_duration: Duration,
) -> Result<LoadSpec, String> {
    let url = text("url").ok_or("metadata.url: required for type load")?;
    let url = url
        .parse::<http::Uri>()
        .map_err(|error| format!("metadata.url: {error}"))?;
    let duration = |key: &str, default: Duration| -> Result<Duration, String> {
        match text(key) {
            None => Ok(default),
            Some(value) => serin_spec::Duration::parse(&value)
                .map(|d| d.as_std())
                .map_err(|error| format!("metadata.{key}: {error}")),
        }
    };
    let mut spec = LoadSpec::new(url, None, duration("duration", Duration::from_secs(10))?);
    if spec.duration > max_duration {
        return Err(format!(
            "metadata.duration: {:?} is longer than this load tester's limit of {max_duration:?}",
            spec.duration
        ));
    }
    spec.timeout = duration("timeout", Duration::from_secs(5))?;
    if let Some(rate) = text("rate") {
        spec.rate = Some(
            rate.trim()
                .parse::<f64>()
                .map_err(|_| format!("metadata.rate: {rate:?} is not a number"))?,
        );
    }
    if let Some(concurrency) = text("concurrency") {
        spec.concurrency = concurrency
            .trim()
            .parse()
            .map_err(|_| format!("metadata.concurrency: {concurrency:?} is not a whole number"))?;
    }
    if let Some(headers) = text("headers") {
        for line in headers.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let Some((name, value)) = line.split_once(':') else {
                return Err(format!("metadata.headers: {line:?} is not `Name: value`"));
            };
            let name = http::HeaderName::from_bytes(name.trim().as_bytes())
                .map_err(|_| format!("metadata.headers: bad header name {name:?}"))?;
            let value = http::HeaderValue::from_str(value.trim())
                .map_err(|_| format!("metadata.headers: bad value for {name}"))?;
            spec.headers.push((name, value));
        }
    }
    spec.check().map_err(|error| format!("metadata.{error}"))?;
    Ok(spec)
}
