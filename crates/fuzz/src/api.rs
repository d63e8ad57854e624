//! The daemon's API: calls to the real axum router
//! ([`serin_daemon::api::router`]) in process, over a real supervisor with
//! one canary (`fuzz`, served by the built-in proxy, nothing rolling out)
//! and a real store.
//!
//! An input is up to [`MAX_CALLS`] calls separated by a line `~~~`. A call
//! is a first line `METHOD TARGET [AUTH]` (`AUTH` is `-` for no
//! `Authorization`, `bad` for a wrong token, the right token otherwise)
//! and the body after it, e.g.
//!
//! ```text
//! POST /api/v1/canaries/fuzz/start
//! {"canary": "http://127.0.0.1:9/", "revision": "v2"}
//! ```
//!
//! Properties:
//! - nothing panics, in the daemon's tasks either, and every call is
//!   answered within a bound;
//! - no call is answered 500 (what a client sends is never the server's
//!   fault) or with a status the API does not use, nor 504: a command the
//!   daemon accepts (a start with a canary URL) is one it can carry out;
//! - a JSON answer is JSON; every error answer is `{"error": "..."}` with a
//!   message, as `docs/openapi.yaml` says (axum's own refusals included);
//!   a 2xx answer to a call that changes something came with the right
//!   token.
//!
//! After a call that changed something the daemon starts afresh for the
//! next input, so each input is judged from the same state.

use axum::body::Body;
use http::{Method, Request, StatusCode, header};
use serin_daemon::{Access, ApiState, Store, Supervisor};
use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};
use tokio::{runtime::Runtime, sync::watch};
use tower::ServiceExt;

/// Most calls one input makes.
pub const MAX_CALLS: usize = 4;

/// Separates the calls of one input.
pub const SEPARATOR: &[u8] = b"\n~~~\n";

/// The token calls that change something need.
const TOKEN: &str = "fuzz-token";

/// How long one call may take: above the supervisor's own wait for a
/// command to be taken (10 s).
const DEADLINE: Duration = Duration::from_secs(20);

/// Most bytes of an answer read.
const MAX_ANSWER: usize = 1 << 20;

const CANARY: &str = "apiVersion: serin.dev/v1alpha1
kind: Canary
metadata:
  name: fuzz
spec:
  provider: builtin
  service:
    listen: 127.0.0.1:0
  upstreams:
    stable: http://127.0.0.1:9/
  analysis:
    interval: 1m
    threshold: 2
    maxWeight: 50
    stepWeight: 10
";

/// Runs the target on one input.
///
/// # Panics
///
/// When a property above fails.
pub fn check(data: &[u8]) {
    let harness = Harness::get();
    let mut daemon = harness
        .daemon
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    crate::panicked();
    let mut changed = false;
    for call in split(data).into_iter().take(MAX_CALLS) {
        // Not a request http can even build: nothing to send.
        let Some((call, request)) = Call::parse(call).and_then(|c| c.request().map(|r| (c, r)))
        else {
            continue;
        };
        let answer = harness.runtime.block_on(async {
            tokio::time::timeout(DEADLINE, daemon.answer(&call, request)).await
        });
        let Ok(answer) = answer else {
            panic!(
                "{} {} not answered within {DEADLINE:?}",
                call.method, call.target
            );
        };
        assert!(
            !crate::panicked(),
            "a task panicked (see the message above)"
        );
        answer.check(&call);
        changed |= call.method != Method::GET && answer.status.is_success();
    }
    if changed {
        let fresh = harness.runtime.block_on(async {
            daemon.stop().await;
            Daemon::start().await
        });
        *daemon = fresh;
    }
}

/// The calls of an input.
fn split(data: &[u8]) -> Vec<&[u8]> {
    let mut calls = Vec::new();
    let mut rest = data;
    while let Some(at) = rest.windows(SEPARATOR.len()).position(|w| w == SEPARATOR) {
        calls.push(&rest[..at]);
        rest = &rest[at + SEPARATOR.len()..];
    }
    calls.push(rest);
    calls
}

/// One API call.
struct Call {
    method: Method,
    target: String,
    auth: Auth,
    body: Vec<u8>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Auth {
    Right,
    Wrong,
    None,
}

impl Call {
    fn parse(bytes: &[u8]) -> Option<Call> {
        let end = bytes
            .iter()
            .position(|b| *b == b'\n')
            .unwrap_or(bytes.len());
        let line = std::str::from_utf8(&bytes[..end]).ok()?;
        let body = bytes.get(end + 1..).unwrap_or_default().to_vec();
        let mut words = line.split(' ');
        let method = Method::from_bytes(words.next()?.as_bytes()).ok()?;
        let target = words.next()?.to_owned();
        let auth = match words.next() {
            Some("-") => Auth::None,
            Some("bad") => Auth::Wrong,
            _ => Auth::Right,
        };
        Some(Call {
            method,
            target,
            auth,
            body,
        })
    }

    fn request(&self) -> Option<Request<Body>> {
        let mut request = Request::builder()
            .method(self.method.clone())
            .uri(self.target.as_str());
        match self.auth {
            Auth::Right => {
                request = request.header(header::AUTHORIZATION, format!("Bearer {TOKEN}"));
            }
            Auth::Wrong => {
                request = request.header(header::AUTHORIZATION, "Bearer wrong");
            }
            Auth::None => {}
        }
        if !self.body.is_empty() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        request.body(Body::from(self.body.clone())).ok()
    }
}

/// What a call was answered.
struct Answer {
    status: StatusCode,
    content_type: Option<String>,
    body: Vec<u8>,
}

/// Every status the API answers with (`docs/openapi.yaml`), and axum's
/// own for a method a route does not take (405) and a body over the limit
/// (413).
const STATUSES: [u16; 11] = [200, 202, 400, 401, 404, 405, 409, 413, 415, 503, 504];

impl Answer {
    fn check(&self, call: &Call) {
        let what = format!(
            "{} {} answered {}: {:?}",
            call.method,
            call.target,
            self.status,
            String::from_utf8_lossy(&self.body)
        );
        assert!(
            STATUSES.contains(&self.status.as_u16()),
            "a status the API does not use: {what}"
        );
        // The daemon here is healthy and idle: a command it does not take
        // in time is one it accepted and then could not carry out.
        assert_ne!(
            self.status,
            StatusCode::GATEWAY_TIMEOUT,
            "a command accepted and never carried out: {what}"
        );
        let json = self
            .content_type
            .as_deref()
            .is_some_and(|t| t.starts_with("application/json"));
        assert!(
            json || self.status.is_success(),
            "an error answer that is not JSON: {what}"
        );
        if json {
            let value: serde_json::Value = match serde_json::from_slice(&self.body) {
                Ok(value) => value,
                Err(error) => panic!("an answer said JSON and is not ({error}): {what}"),
            };
            if !self.status.is_success() {
                let message = value.get("error").and_then(|e| e.as_str());
                assert!(
                    message.is_some_and(|m| !m.trim().is_empty()),
                    "an error answer without a message: {what}"
                );
            }
        }
        if call.method != Method::GET && self.status.is_success() {
            assert!(
                call.auth == Auth::Right,
                "a change without the right token: {what}"
            );
        }
    }
}

struct Harness {
    runtime: Runtime,
    daemon: Mutex<Daemon>,
}

impl Harness {
    fn get() -> &'static Harness {
        static HARNESS: OnceLock<Harness> = OnceLock::new();
        HARNESS.get_or_init(|| {
            crate::note_panics();
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => panic!("cannot start a runtime: {error}"),
            };
            let daemon = runtime.block_on(Daemon::start());
            Harness {
                runtime,
                daemon: Mutex::new(daemon),
            }
        })
    }
}

/// A supervisor with the canary `fuzz`, its store and the API's router.
struct Daemon {
    supervisor: Supervisor,
    router: axum::Router,
    _shutdown: watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

impl Daemon {
    async fn start() -> Daemon {
        let dir = match tempfile::tempdir() {
            Ok(dir) => dir,
            Err(error) => panic!("cannot make a state directory: {error}"),
        };
        let store = match Store::open(dir.path()) {
            Ok(store) => Arc::new(store),
            Err(error) => panic!("cannot open the store: {error}"),
        };
        let supervisor = Supervisor::new(store);
        let catalog = match serin_spec::load_files([("fuzz.yaml", CANARY)]) {
            Ok(catalog) => catalog,
            Err(error) => panic!("the canary file: {error}"),
        };
        let files = BTreeMap::from([("fuzz".to_owned(), "fuzz.yaml".to_owned())]);
        let problems = supervisor.reconcile(&catalog, &files).await;
        assert!(
            problems.is_empty(),
            "cannot launch the canary: {problems:?}"
        );
        let (shutdown, stopping) = watch::channel(false);
        let access = Access {
            token: Some(TOKEN.into()),
            reads_need_token: false,
        };
        let router = serin_daemon::api::router(ApiState::new(supervisor.clone(), access, stopping));
        Daemon {
            supervisor,
            router,
            _shutdown: shutdown,
            _dir: dir,
        }
    }

    async fn stop(&self) {
        self.supervisor.shutdown().await;
    }

    async fn answer(&self, call: &Call, request: Request<Body>) -> Answer {
        let response = match self.router.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        // The event stream never ends: its head is the answer.
        if content_type
            .as_deref()
            .is_some_and(|t| t.starts_with("text/event-stream"))
        {
            return Answer {
                status,
                content_type,
                body: Vec::new(),
            };
        }
        let body = match axum::body::to_bytes(response.into_body(), MAX_ANSWER).await {
            Ok(body) => body.to_vec(),
            Err(error) => panic!(
                "{} {}: the answer's body: {error}",
                call.method, call.target
            ),
        };
        Answer {
            status,
            content_type,
            body,
        }
    }
}
