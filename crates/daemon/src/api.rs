//! The daemon's JSON API (axum): canaries with Flagger's status fields,
//! their history and decisions, what became of each revision, rollout
//! starts and manual gates, a
//! server-sent-events stream of changes, and `/healthz`.
//!
//! Every call that changes something needs `Authorization: Bearer TOKEN`,
//! compared in constant time; reads are open on loopback and need the token
//! elsewhere. `docs/openapi.yaml` describes these routes; a test checks the
//! two agree. Other parts of serin (`/metrics`, the dashboard) add their own
//! routes with [`router_with`] and read [`ApiState::supervisor`].

use crate::{
    revisions::RevisionOutcome,
    status::CanaryStatus,
    store::HistoryEntry,
    supervisor::{Change, CommandError, ManualAction, Supervisor},
};
use axum::{
    Json, Router,
    body::Bytes,
    extract::{DefaultBodyLimit, Path, Query, Request, State},
    http::{HeaderMap, StatusCode, header},
    middleware::{self, Next},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
    routing::{get, post},
};
use futures_util::stream::{self, Stream};
use serde::{Deserialize, Serialize};
use serin_rollout::ports::CanaryTarget;
use std::{convert::Infallible, sync::Arc, time::Duration};
use subtle::ConstantTimeEq;
use tokio::sync::{broadcast, watch};

/// Largest request body accepted (start requests are a few hundred bytes).
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// How long one API call may take (the event stream excepted).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Most history entries one call returns.
pub const MAX_HISTORY_LIMIT: u32 = 1_000;

/// Every route, as `docs/openapi.yaml` lists it (checked by a test).
pub const ROUTES: [(&str, &str); 13] = [
    ("get", HEALTHZ),
    ("get", CANARIES),
    ("get", CANARY),
    ("get", HISTORY),
    ("get", DECISIONS),
    ("get", REVISIONS),
    ("get", REVISION),
    ("post", START),
    ("post", PROMOTE),
    ("post", ABORT),
    ("post", PAUSE),
    ("post", RESUME),
    ("get", EVENTS),
];

const HEALTHZ: &str = "/healthz";
const CANARIES: &str = "/api/v1/canaries";
const CANARY: &str = "/api/v1/canaries/{name}";
const HISTORY: &str = "/api/v1/canaries/{name}/history";
const DECISIONS: &str = "/api/v1/canaries/{name}/decisions";
const REVISIONS: &str = "/api/v1/canaries/{name}/revisions";
const REVISION: &str = "/api/v1/canaries/{name}/revisions/{revision}";
const START: &str = "/api/v1/canaries/{name}/start";
const PROMOTE: &str = "/api/v1/canaries/{name}/promote";
const ABORT: &str = "/api/v1/canaries/{name}/abort";
const PAUSE: &str = "/api/v1/canaries/{name}/pause";
const RESUME: &str = "/api/v1/canaries/{name}/resume";
const EVENTS: &str = "/api/v1/events";

/// Who may call what.
#[derive(Clone, Debug, Default)]
pub struct Access {
    /// The bearer token; `None` refuses every change.
    pub token: Option<String>,
    /// Reads need the token too (the API listens beyond loopback).
    pub reads_need_token: bool,
}

/// What the handlers share; extra routes get it too.
#[derive(Clone)]
pub struct ApiState {
    supervisor: Supervisor,
    access: Arc<Access>,
    shutdown: watch::Receiver<bool>,
}

// === impl ApiState ===

impl ApiState {
    /// State for a router over `supervisor`. Event streams end when
    /// `shutdown` turns true, so a graceful shutdown does not wait on them.
    pub fn new(supervisor: Supervisor, access: Access, shutdown: watch::Receiver<bool>) -> Self {
        ApiState {
            supervisor,
            access: Arc::new(access),
            shutdown,
        }
    }

    /// The canaries: statuses, history ([`Supervisor::store`]) and the
    /// change stream ([`Supervisor::subscribe`]).
    pub fn supervisor(&self) -> &Supervisor {
        &self.supervisor
    }

    /// Checks a request's bearer token; for extra routes that change things.
    ///
    /// The scheme is matched in any case (RFC 9110 §11.1: `bearer` is
    /// `Bearer`) and the token in constant time. A refusal says which of
    /// three things was wrong: no header, a header that is not a Bearer
    /// token, or the wrong token; it never repeats what was sent.
    pub fn authorize(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(token) = self.access.token.as_deref() else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "this daemon has no API token: start serin serve with SERIN_TOKEN or --token-file to allow changes",
            ));
        };
        match credentials(headers) {
            Credentials::Token(given) if bool::from(given.as_bytes().ct_eq(token.as_bytes())) => {
                Ok(())
            }
            Credentials::Token(_) => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "wrong token: the bearer token sent is not this daemon's (SERIN_TOKEN or --token-file)",
            )),
            Credentials::Missing => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "no Authorization header: send Authorization: Bearer TOKEN (the client commands send SERIN_TOKEN)",
            )),
            Credentials::Malformed(why) => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                format!(
                    "not a Bearer token: {why}; send Authorization: Bearer TOKEN (the client commands send SERIN_TOKEN)"
                ),
            )),
        }
    }
}

/// What a request's `Authorization` header holds.
#[derive(Debug, PartialEq, Eq)]
enum Credentials<'a> {
    /// No `Authorization` header.
    Missing,
    /// A header that is not `Bearer TOKEN`; why, without its value.
    Malformed(String),
    /// The token of a `Bearer` header (any case), trimmed.
    Token(&'a str),
}

/// Reads the `Authorization` header as RFC 9110 §11.6.2 and RFC 6750 §2.1
/// write it: `SCHEME SP credentials`, the scheme in any case.
fn credentials(headers: &HeaderMap) -> Credentials<'_> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Credentials::Missing;
    };
    if values.next().is_some() {
        return Credentials::Malformed("the request has several Authorization headers".into());
    }
    let Ok(value) = value.to_str() else {
        return Credentials::Malformed(
            "the Authorization header holds bytes other than visible ASCII".into(),
        );
    };
    let value = value.trim();
    let (scheme, rest) = match value.split_once([' ', '\t']) {
        Some((scheme, rest)) => (scheme, Some(rest.trim())),
        None => (value, None),
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        // The scheme is named only when credentials follow it: a header
        // holding a bare token must not be echoed.
        let named = rest.is_some()
            && scheme.len() <= 32
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        return Credentials::Malformed(if named {
            format!("the Authorization header uses the {scheme:?} scheme")
        } else {
            "the Authorization header has no scheme".into()
        });
    }
    match rest {
        Some(token) if !token.is_empty() => Credentials::Token(token),
        _ => Credentials::Malformed(
            "the Authorization header has the Bearer scheme but no token".into(),
        ),
    }
}

/// An error answer: a status and `{"error": "..."}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

// === impl ApiError ===

impl ApiError {
    /// An error with this status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(ErrorBody {
                error: self.message,
            }),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            // RFC 9110 §11.6.1: a 401 names the scheme it wants.
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

impl From<CommandError> for ApiError {
    fn from(error: CommandError) -> Self {
        let status = match &error {
            CommandError::NotFound { .. } => StatusCode::NOT_FOUND,
            CommandError::Conflict(_) => StatusCode::CONFLICT,
            CommandError::Invalid(_) => StatusCode::BAD_REQUEST,
            CommandError::Stopped(_) => StatusCode::SERVICE_UNAVAILABLE,
            CommandError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        };
        ApiError::new(status, error.to_string())
    }
}

/// The body of every error answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong, for people.
    pub error: String,
}

/// `GET /api/v1/canaries`.
#[derive(Debug, Serialize, Deserialize)]
pub struct CanaryList {
    /// Every canary, by name.
    pub canaries: Vec<CanaryStatus>,
}

/// `POST /api/v1/canaries/{name}/start`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    /// The canary's upstream URL.
    pub canary: String,
    /// The revision's identity; the URL when absent.
    #[serde(default)]
    pub revision: Option<String>,
}

/// `GET .../history` and `.../decisions`.
#[derive(Debug, Serialize, Deserialize)]
pub struct HistoryPage {
    /// Oldest first.
    pub entries: Vec<HistoryEntry>,
    /// Pass as `after` to read on; `null` when nothing was returned.
    pub next: Option<i64>,
}

/// `GET .../revisions`.
#[derive(Debug, Serialize, Deserialize)]
pub struct RevisionList {
    /// The canary's rollouts, newest first.
    pub revisions: Vec<RevisionOutcome>,
}

#[derive(Debug, Deserialize)]
struct RevisionsQuery {
    #[serde(default)]
    limit: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct HistoryQuery {
    #[serde(default)]
    after: Option<i64>,
    #[serde(default)]
    limit: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct EventsQuery {
    #[serde(default)]
    canary: Option<String>,
    #[serde(default)]
    traffic: Option<bool>,
}

/// The API's routes, with body limits, timeouts and token checks.
pub fn router(state: ApiState) -> Router {
    router_with(state, Vec::new())
}

/// The API's routes plus `extra` ones (`/metrics`, the dashboard), merged
/// at the top level; extra routes must not reuse the API's paths.
pub fn router_with(state: ApiState, extra: Vec<Router>) -> Router {
    let reads = Router::new()
        .route(CANARIES, get(list))
        .route(CANARY, get(one))
        .route(HISTORY, get(history))
        .route(DECISIONS, get(decisions))
        .route(REVISIONS, get(revisions))
        .route(REVISION, get(revision))
        .route_layer(middleware::from_fn_with_state(state.clone(), reads_guard));
    let writes = Router::new()
        .route(START, post(start))
        .route(PROMOTE, post(promote))
        .route(ABORT, post(abort))
        .route(PAUSE, post(pause))
        .route(RESUME, post(resume))
        .route_layer(middleware::from_fn_with_state(state.clone(), writes_guard));
    let calls = reads
        .merge(writes)
        .route(HEALTHZ, get(healthz))
        .layer(middleware::from_fn(deadline));
    let events = Router::new()
        .route(EVENTS, get(events))
        .route_layer(middleware::from_fn_with_state(state.clone(), reads_guard));
    let mut router = calls.merge(events).with_state(state);
    for routes in extra {
        router = router.merge(routes);
    }
    router
        .fallback(no_route)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(json_errors))
}

/// Longest error text read back from a response that is not JSON yet.
const MAX_ERROR_TEXT: usize = 4 * 1024;

/// Makes every error answer `{"error": ...}`: axum's own rejections (a
/// query string or path segment that does not parse, a body over the limit,
/// a wrong method) and those of extra routes are plain text or empty; their
/// text becomes the message, with the status and headers (`Allow`) kept.
async fn json_errors(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(response.headers()) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, MAX_ERROR_TEXT).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_owned(),
        Err(_) => String::new(),
    };
    let message = match status {
        StatusCode::PAYLOAD_TOO_LARGE => {
            format!("request body: larger than {MAX_BODY_BYTES} bytes")
        }
        StatusCode::METHOD_NOT_ALLOWED => {
            // axum adds `Allow` after the layers have run.
            format!("{method} is not allowed on {path}: see docs/openapi.yaml")
        }
        _ if text.is_empty() => format!(
            "{} {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("error")
        ),
        _ => text,
    };
    let error = ApiError::new(status, message).into_response();
    let (error_parts, error_body) = error.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::TRANSFER_ENCODING);
    for (name, value) in &error_parts.headers {
        parts.headers.insert(name, value.clone());
    }
    Response::from_parts(parts, error_body)
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            let essence = value.split(';').next().unwrap_or_default().trim();
            essence.eq_ignore_ascii_case("application/json")
        })
}

/// Serves `router` on `listener` with the default [`crate::ApiLimits`]
/// until `shutdown` resolves; see [`crate::listener::serve`].
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    crate::listener::serve(listener, router, crate::ApiLimits::default(), shutdown).await;
    Ok(())
}

async fn reads_guard(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    if state.access.reads_need_token
        && let Err(error) = state.authorize(request.headers())
    {
        return error.into_response();
    }
    next.run(request).await
}

async fn writes_guard(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    if let Err(error) = state.authorize(request.headers()) {
        return error.into_response();
    }
    next.run(request).await
}

async fn deadline(request: Request, next: Next) -> Response {
    match tokio::time::timeout(CALL_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the call took longer than {}s", CALL_TIMEOUT.as_secs()),
        )
        .into_response(),
    }
}

async fn no_route(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!(
            "no route {} {}: see docs/openapi.yaml",
            request.method(),
            request.uri().path()
        ),
    )
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn list(State(state): State<ApiState>) -> Json<CanaryList> {
    Json(CanaryList {
        canaries: state.supervisor.list(),
    })
}

async fn one(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<CanaryStatus>, ApiError> {
    Ok(Json(state.supervisor.get(&name)?))
}

async fn history(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    Query(query): Query<HistoryQuery>,
) -> Result<Json<HistoryPage>, ApiError> {
    read_history(state, name, query, None).await
}

async fn decisions(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    Query(query): Query<HistoryQuery>,
) -> Result<Json<HistoryPage>, ApiError> {
    read_history(state, name, query, Some("decision")).await
}

async fn read_history(
    state: ApiState,
    name: String,
    query: HistoryQuery,
    kind: Option<&'static str>,
) -> Result<Json<HistoryPage>, ApiError> {
    state.supervisor.get(&name)?;
    let limit = query.limit.unwrap_or(100).clamp(1, MAX_HISTORY_LIMIT);
    let after = query.after.unwrap_or(0);
    let entries = state
        .supervisor
        .read_store(move |store| store.history(&name, after, limit, kind))
        .await
        .map_err(store_failed)?;
    let next = entries.last().map(|entry| entry.id);
    Ok(Json(HistoryPage { entries, next }))
}

/// A store read that failed: the daemon's fault, not the caller's.
fn store_failed(error: crate::store::Error) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, error.to_string())
}

async fn revisions(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    Query(query): Query<RevisionsQuery>,
) -> Result<Json<RevisionList>, ApiError> {
    state.supervisor.get(&name)?;
    let limit = query.limit.unwrap_or(100).clamp(1, MAX_HISTORY_LIMIT);
    let revisions = state
        .supervisor
        .read_store(move |store| store.revisions(&name, limit))
        .await
        .map_err(store_failed)?;
    Ok(Json(RevisionList { revisions }))
}

/// The latest rollout of one revision; 404 when the canary never started it.
async fn revision(
    State(state): State<ApiState>,
    Path((name, revision)): Path<(String, String)>,
) -> Result<Json<RevisionOutcome>, ApiError> {
    let status = state.supervisor.get(&name)?;
    let (canary, wanted) = (name.clone(), revision.clone());
    let found = state
        .supervisor
        .read_store(move |store| store.revision(&canary, &wanted))
        .await
        .map_err(store_failed)?;
    found.map(Json).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!(
                "canary {name} has no revision {revision:?} (its current revision is {})",
                status.revision.as_deref().unwrap_or("none")
            ),
        )
    })
}

async fn start(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<CanaryStatus>), ApiError> {
    let request: StartRequest = serde_json::from_slice(&body).map_err(|error| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("request body: {error} (expected {{\"canary\": URL, \"revision\": REV}})"),
        )
    })?;
    let revision = request
        .revision
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| request.canary.clone());
    let status = state
        .supervisor
        .start(
            &name,
            CanaryTarget {
                address: request.canary,
                revision,
            },
        )
        .await?;
    Ok((StatusCode::ACCEPTED, Json(status)))
}

async fn manual_action(
    state: ApiState,
    name: String,
    action: ManualAction,
) -> Result<Json<CanaryStatus>, ApiError> {
    Ok(Json(state.supervisor.manual_action(&name, action).await?))
}

async fn promote(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<CanaryStatus>, ApiError> {
    manual_action(state, name, ManualAction::Promote).await
}

async fn abort(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<CanaryStatus>, ApiError> {
    manual_action(state, name, ManualAction::Abort).await
}

async fn pause(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<CanaryStatus>, ApiError> {
    manual_action(state, name, ManualAction::Pause).await
}

async fn resume(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<CanaryStatus>, ApiError> {
    manual_action(state, name, ManualAction::Resume).await
}

/// `GET /api/v1/events`: first a `status` event per canary, then every
/// change as it happens (`record`, `decision`, `state`, `webhook`, and
/// `traffic` with `?traffic=true`), optionally for one canary only.
async fn events(
    State(state): State<ApiState>,
    Query(query): Query<EventsQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    if let Some(name) = &query.canary {
        state.supervisor.get(name)?;
    }
    let receiver = state.supervisor.subscribe();
    let initial: Vec<Event> = state
        .supervisor
        .list()
        .into_iter()
        .filter(|s| query.canary.as_ref().is_none_or(|name| *name == s.name))
        .filter_map(|s| Event::default().event("status").json_data(s).ok())
        .collect();
    let filter = Filter {
        canary: query.canary,
        traffic: query.traffic.unwrap_or(false),
    };
    let live = stream::unfold(
        (receiver, state.shutdown.clone(), filter),
        |(mut receiver, mut shutdown, filter)| async move {
            loop {
                if *shutdown.borrow() {
                    return None;
                }
                let next = tokio::select! {
                    next = receiver.recv() => next,
                    _ = shutdown.changed() => return None,
                };
                let event = match next {
                    Ok(change) => match filter.event(&change) {
                        Some(event) => event,
                        None => continue,
                    },
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        Event::default().event("lagged").data(format!(
                            "{missed} changes were dropped: this reader is too slow"
                        ))
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                };
                return Some((Ok(event), (receiver, shutdown, filter)));
            }
        },
    );
    let stream = stream::iter(initial.into_iter().map(Ok)).chain(live);
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

struct Filter {
    canary: Option<String>,
    traffic: bool,
}

impl Filter {
    fn event(&self, change: &Change) -> Option<Event> {
        if self
            .canary
            .as_ref()
            .is_some_and(|name| *name != change.canary)
        {
            return None;
        }
        let kind = match &change.update {
            serin_server::Update::Traffic { .. } if !self.traffic => return None,
            serin_server::Update::Traffic { .. } => "traffic",
            serin_server::Update::Record { .. } => "record",
            serin_server::Update::Decision { .. } => "decision",
            serin_server::Update::State { .. } => "state",
            serin_server::Update::Webhook { .. } => "webhook",
            serin_server::Update::Repaired { .. } => "repaired",
        };
        Event::default().event(kind).json_data(change).ok()
    }
}

use futures_util::StreamExt as _;
