//! The client commands: `start`, `status`, `promote`, `abort`, `pause`,
//! `resume`. They talk to `serin serve`'s API and exit as CI expects: 0
//! succeeded, 1 failed, 124 timed out, 2 when the daemon could not be asked.

use crate::commands::{EXIT_OK, EXIT_ROLLED_BACK, EXIT_TROUBLE};
use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use clap::Args;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::{
    client::legacy::{Client as HyperClient, connect::HttpConnector},
    rt::TokioExecutor,
};
use serin_daemon::{
    CanaryStatus,
    api::CanaryList,
    revisions::{Outcome, RevisionOutcome},
};
use std::{
    io::IsTerminal,
    process::ExitCode,
    time::{Duration, Instant},
};

/// `status --wait` timed out (as coreutils' `timeout`).
pub const EXIT_TIMED_OUT: u8 = 124;

/// How long one API call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest API answer read.
const MAX_ANSWER_BYTES: usize = 8 * 1024 * 1024;

/// How often `status --wait` asks.
const WAIT_POLL: Duration = Duration::from_secs(1);

/// Where the daemon is.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// The daemon's API.
    #[arg(long, env = "SERIN_SERVER", default_value = concat!("http://", "127.0.0.1:9480"))]
    pub server: String,
}

/// `serin start`.
#[derive(Debug, Args)]
pub struct StartArgs {
    /// The canary (metadata.name).
    pub name: String,
    /// The new revision's upstream URL.
    #[arg(long)]
    pub canary: String,
    /// The revision's identity (a commit, an image tag); the URL when absent.
    #[arg(long)]
    pub revision: Option<String>,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// `serin status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// One canary; all when absent.
    pub name: Option<String>,
    /// Block until the verdict on the revision current now (or on --revision):
    /// exit 0 promoted, 1 rolled back or superseded by a later start.
    #[arg(long)]
    pub wait: bool,
    /// The revision whose verdict to wait for (or to show without --wait),
    /// as `serin start --revision` named it. Needs NAME.
    #[arg(long, value_name = "REV", requires = "name")]
    pub revision: Option<String>,
    /// With --wait: give up after this long (30s, 10m, 1h30m) and exit 124.
    #[arg(long, value_name = "DUR")]
    pub timeout: Option<String>,
    /// JSON: the canary's status object (an array without NAME).
    #[arg(long)]
    pub json: bool,
    /// Read the canaries from the Kubernetes cluster (in cluster, or the
    /// current kubeconfig) that `serin controller` drives, rather than
    /// from the daemon: Flagger's status and serin's analysis (estimate,
    /// interval and e-value per metric).
    #[arg(long, conflicts_with_all = ["wait", "revision", "timeout"])]
    pub kubernetes: bool,
    /// With --kubernetes: the namespace (the kubeconfig's by default).
    #[arg(long, value_name = "NS", requires = "kubernetes")]
    pub namespace: Option<String>,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// `serin promote|abort|pause|resume`.
#[derive(Debug, Args)]
pub struct ManualActionArgs {
    /// The canary (metadata.name).
    pub name: String,
    /// Ask `serin controller` rather than the daemon: the request is an
    /// annotation on the Canary in the cluster (in cluster, or the current
    /// kubeconfig), carried out at the controller's next pass
    /// (`serin.dev/action: promote|abort`, `serin.dev/paused: "true"`).
    #[arg(long)]
    pub kubernetes: bool,
    /// With --kubernetes: the namespace (the kubeconfig's by default).
    #[arg(long, value_name = "NS", requires = "kubernetes")]
    pub namespace: Option<String>,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// A manual action, as the API names it.
#[derive(Clone, Copy, Debug)]
pub enum ManualAction {
    Promote,
    Abort,
    Pause,
    Resume,
}

/// The daemon's API over HTTP/1.
struct Api {
    base: String,
    token: Option<String>,
    client: HyperClient<HttpConnector, Full<Bytes>>,
}

/// An answer that is not 2xx.
#[derive(Debug)]
struct Refused {
    status: u16,
    message: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Refused {}

// === impl Api ===

impl Api {
    fn new(server: &ServerArgs) -> Result<Api> {
        let base = server.server.trim_end_matches('/').to_owned();
        let uri: http::Uri = base
            .parse()
            .with_context(|| format!("--server: not a URL: {base:?}"))?;
        if uri.scheme_str() != Some("http") || uri.authority().is_none() {
            bail!("--server: expected http://HOST:PORT, got {base:?}");
        }
        let token = std::env::var("SERIN_TOKEN")
            .ok()
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty());
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        let client = HyperClient::builder(TokioExecutor::new()).build(connector);
        Ok(Api {
            base,
            token,
            client,
        })
    }

    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: http::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<T> {
        let url = format!("{}{path}", self.base);
        let mut request = http::Request::builder().method(method).uri(&url);
        if let Some(token) = &self.token {
            request = request.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = match body {
            Some(value) => {
                request = request.header(http::header::CONTENT_TYPE, "application/json");
                Full::new(Bytes::from(serde_json::to_vec(&value)?))
            }
            None => Full::new(Bytes::new()),
        };
        let request = request.body(body)?;
        let exchange = async {
            let response = self.client.request(request).await?;
            let status = response.status();
            let bytes = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await
                .map_err(|e| anyhow!("reading the answer: {e}"))?
                .to_bytes();
            Ok::<_, anyhow::Error>((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(CALL_TIMEOUT, exchange)
            .await
            .map_err(|_| anyhow!("{url}: no answer within {}s", CALL_TIMEOUT.as_secs()))?
            .with_context(|| {
                format!(
                    "cannot reach the serin daemon at {} (set --server or SERIN_SERVER)",
                    self.base
                )
            })?;
        if !status.is_success() {
            let message = serde_json::from_slice::<serin_daemon::api::ErrorBody>(&bytes)
                .map(|e| e.error)
                .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).trim().to_owned());
            return Err(Refused {
                status: status.as_u16(),
                message: format!("{message} (HTTP {})", status.as_u16()),
            }
            .into());
        }
        serde_json::from_slice(&bytes).with_context(|| format!("{url}: unexpected answer"))
    }
}

pub async fn start(args: StartArgs) -> Result<ExitCode> {
    let api = Api::new(&args.server)?;
    let mut body = serde_json::json!({ "canary": args.canary });
    if let Some(revision) = &args.revision {
        body["revision"] = serde_json::Value::String(revision.clone());
    }
    let path = format!("/api/v1/canaries/{}/start", segment(&args.name));
    match api
        .call::<CanaryStatus>(http::Method::POST, &path, Some(body))
        .await
    {
        Ok(status) => {
            let revision = status
                .revision
                .clone()
                .or_else(|| args.revision.clone())
                .unwrap_or_else(|| args.canary.clone());
            if args.revision.is_some() {
                println!(
                    "{}: started revision {revision} ({})",
                    status.name, args.canary
                );
            } else {
                println!(
                    "{}: started revision {revision} (no --revision given: the canary URL names it)",
                    status.name
                );
            }
            Ok(ExitCode::from(EXIT_OK))
        }
        Err(error) => refused(error),
    }
}

pub async fn manual_action(action: ManualAction, args: ManualActionArgs) -> Result<ExitCode> {
    if args.kubernetes {
        return kubernetes_manual_action(action, &args).await;
    }
    let api = Api::new(&args.server)?;
    let verb = match action {
        ManualAction::Promote => "promote",
        ManualAction::Abort => "abort",
        ManualAction::Pause => "pause",
        ManualAction::Resume => "resume",
    };
    let path = format!("/api/v1/canaries/{}/{verb}", segment(&args.name));
    match api
        .call::<CanaryStatus>(http::Method::POST, &path, None)
        .await
    {
        Ok(status) => {
            let done = match action {
                ManualAction::Promote => "promoting",
                ManualAction::Abort => "rolled back",
                ManualAction::Pause => "paused",
                ManualAction::Resume => "resumed",
            };
            println!(
                "{}: {done} ({}, canary weight {}%)",
                status.name, status.phase, status.canary_weight
            );
            Ok(ExitCode::from(EXIT_OK))
        }
        Err(error) => refused(error),
    }
}

pub async fn status(args: StatusArgs) -> Result<ExitCode> {
    if args.kubernetes {
        return kubernetes_status(&args).await;
    }
    let api = Api::new(&args.server)?;
    let timeout = match &args.timeout {
        Some(text) => Some(
            serin_spec::Duration::parse(text)
                .map_err(|e| anyhow!("--timeout: {e}"))?
                .as_std(),
        ),
        None => None,
    };
    if timeout.is_some() && !args.wait {
        bail!("--timeout: only with --wait");
    }
    if !args.wait {
        return match (&args.name, &args.revision) {
            (Some(name), Some(revision)) => show_revision(&api, name, revision, args.json).await,
            _ => match fetch(&api, args.name.as_deref()).await {
                Ok(statuses) => {
                    show(&statuses, args.name.is_some(), args.json)?;
                    Ok(ExitCode::from(EXIT_OK))
                }
                Err(error) => refused(error),
            },
        };
    }
    let deadline = timeout.map(|t| Instant::now() + t);
    let mut waits: Option<Vec<Wait>> = None;
    let mut last: Option<Vec<CanaryStatus>> = None;
    let mut last_line = String::new();
    loop {
        let answer = match fetch(&api, args.name.as_deref()).await {
            Ok(statuses) => {
                let waits = waits.get_or_insert_with(|| {
                    statuses
                        .iter()
                        .map(|s| Wait::new(&s.name, args.revision.clone()))
                        .collect()
                });
                let mut checked = Ok(());
                for wait in waits.iter_mut() {
                    checked = wait.check(&api, &statuses).await;
                    if checked.is_err() {
                        break;
                    }
                }
                last = Some(statuses);
                checked
            }
            Err(error) => Err(error),
        };
        match answer {
            Ok(()) => {
                if let (Some(waits), Some(statuses)) = (&waits, &last) {
                    let line = progress_line(waits, statuses);
                    if line != last_line && !args.json {
                        eprintln!("{line}");
                        last_line = line;
                    }
                    if !waits.is_empty() && waits.iter().all(|w| w.verdict.is_some()) {
                        let verdicts: Vec<&Verdict> =
                            waits.iter().filter_map(|w| w.verdict.as_ref()).collect();
                        show_verdicts(&verdicts, args.name.is_some(), args.json)?;
                        let failed = verdicts.iter().any(|v| v.outcome != Outcome::Promoted);
                        return Ok(ExitCode::from(if failed {
                            EXIT_ROLLED_BACK
                        } else {
                            EXIT_OK
                        }));
                    }
                }
            }
            // 404 and 401 will not get better; anything else (the daemon
            // restarting) is retried until the timeout.
            Err(error)
                if error
                    .downcast_ref::<Refused>()
                    .is_some_and(|r| r.status < 500) =>
            {
                return refused(error);
            }
            Err(error) => {
                if last_line != error.to_string() {
                    eprintln!("serin: {error:#}; retrying");
                    last_line = error.to_string();
                }
            }
        }
        if deadline.is_some_and(|d| Instant::now() + WAIT_POLL > d) {
            let waited = args.timeout.as_deref().unwrap_or("");
            let now = match (&waits, &last) {
                (Some(waits), Some(statuses)) => progress_line(waits, statuses),
                _ => "no answer from the daemon".into(),
            };
            eprintln!("serin: timed out after {waited} waiting for the verdict: {now}");
            if let (Some(waits), Some(statuses)) = (&waits, &last) {
                let verdicts: Vec<Verdict> = waits
                    .iter()
                    .map(|w| match &w.verdict {
                        Some(verdict) => verdict.clone(),
                        None => Verdict::timed_out(w, statuses, waited),
                    })
                    .collect();
                show_verdicts(
                    &verdicts.iter().collect::<Vec<_>>(),
                    args.name.is_some(),
                    args.json,
                )?;
            }
            return Ok(ExitCode::from(EXIT_TIMED_OUT));
        }
        tokio::time::sleep(WAIT_POLL).await;
    }
}

/// `status NAME --revision REV` without `--wait`: that revision's latest
/// rollout, as far as it went.
async fn show_revision(api: &Api, name: &str, revision: &str, json: bool) -> Result<ExitCode> {
    let status = match fetch(api, Some(name)).await {
        Ok(mut statuses) => match statuses.pop() {
            Some(status) => status,
            None => bail!("{name}: the daemon answered no status"),
        },
        Err(error) => return refused(error),
    };
    let current = status.revision.as_deref() == Some(revision);
    let verdict = match fetch_revision(api, name, revision).await {
        Ok(Some(record)) => Verdict::from_record(&status, record, current),
        Ok(None) if current => Verdict::from_status(&status),
        Ok(None) => {
            eprintln!(
                "serin: {name}: the daemon knows no revision {revision:?} (its current revision is {})",
                status.revision.as_deref().unwrap_or("none")
            );
            return Ok(ExitCode::from(EXIT_TROUBLE));
        }
        Err(error) => return refused(error),
    };
    show_verdicts(&[&verdict], true, json)?;
    Ok(ExitCode::from(EXIT_OK))
}

/// The latest rollout of `revision`; `None` when the daemon never started it
/// (or predates revision records).
async fn fetch_revision(api: &Api, name: &str, revision: &str) -> Result<Option<RevisionOutcome>> {
    let path = format!(
        "/api/v1/canaries/{}/revisions/{}",
        segment(name),
        segment(revision)
    );
    match api.call(http::Method::GET, &path, None).await {
        Ok(record) => Ok(Some(record)),
        Err(error)
            if error
                .downcast_ref::<Refused>()
                .is_some_and(|r| r.status == 404) =>
        {
            Ok(None)
        }
        Err(error) => Err(error),
    }
}

/// One canary's wait: the revision waited on and, once in, its verdict.
struct Wait {
    name: String,
    /// `--revision`, else the canary's revision when the wait began (or the
    /// first one started after, when none was).
    revision: Option<String>,
    /// The revision was the canary's current one at some answer.
    seen_current: bool,
    /// "not known yet" was said.
    told_unknown: bool,
    verdict: Option<Verdict>,
}

/// How a wait ended.
#[derive(Clone, Debug)]
struct Verdict {
    /// The canary's status with the waited revision's phase and counts.
    status: CanaryStatus,
    /// `false`: timed out.
    outcome_known: bool,
    outcome: Outcome,
    reason: String,
    superseded_by: Option<String>,
    /// One sentence: which revision ended how and why.
    sentence: String,
    record: Option<RevisionOutcome>,
}

// === impl Wait ===

impl Wait {
    fn new(name: &str, revision: Option<String>) -> Self {
        Wait {
            name: name.to_owned(),
            revision,
            seen_current: false,
            told_unknown: false,
            verdict: None,
        }
    }

    /// Looks at the canary's status and its revision's record; sets the
    /// verdict once there is one.
    async fn check(&mut self, api: &Api, statuses: &[CanaryStatus]) -> Result<()> {
        if self.verdict.is_some() {
            return Ok(());
        }
        let Some(status) = statuses.iter().find(|s| s.name == self.name) else {
            bail!("{}: the daemon no longer serves this canary", self.name);
        };
        let revision = match (&self.revision, &status.revision) {
            (Some(revision), _) => revision.clone(),
            (None, Some(current)) => {
                self.revision = Some(current.clone());
                current.clone()
            }
            // Nothing rolled out yet: the first revision started is the one.
            (None, None) => return Ok(()),
        };
        let current = status.revision.as_deref() == Some(revision.as_str());
        self.seen_current |= current;
        match fetch_revision(api, &self.name, &revision).await? {
            Some(record) if record.is_done() => {
                self.verdict = Some(Verdict::from_record(status, record, current));
            }
            Some(_) => {}
            None if current && status.is_done() => {
                self.verdict = Some(Verdict::from_status(status));
            }
            None if current => {}
            None if self.seen_current => {
                // A daemon without revision records: the revision left
                // before a verdict was seen.
                let by = status
                    .revision
                    .clone()
                    .unwrap_or_else(|| "another revision".into());
                self.verdict = Some(Verdict::superseded(status, &revision, &by));
            }
            None => {
                if !self.told_unknown {
                    eprintln!(
                        "{}: revision {revision} is not known to the daemon yet (its current revision is {}); waiting for it to start",
                        self.name,
                        status.revision.as_deref().unwrap_or("none")
                    );
                    self.told_unknown = true;
                }
            }
        }
        Ok(())
    }
}

// === impl Verdict ===

impl Verdict {
    /// From the revision's record; `current`: the canary's status is of
    /// this revision's rollout.
    fn from_record(status: &CanaryStatus, record: RevisionOutcome, current: bool) -> Self {
        let mut shown = status.clone();
        shown.revision = Some(record.revision.clone());
        shown.phase = record.phase;
        shown.failed_checks = record.failed_checks;
        shown.iterations = record.iterations;
        if record.is_done() {
            // After a verdict (or once superseded) the revision holds no traffic.
            shown.canary_weight = 0;
        }
        if !current {
            shown.paused = false;
            shown.message.clone_from(&record.message);
        }
        Verdict {
            sentence: record.sentence(&status.name),
            outcome_known: true,
            outcome: record.outcome,
            reason: record.reason.clone(),
            superseded_by: record.superseded_by.clone(),
            status: shown,
            record: Some(record),
        }
    }

    /// From the status alone (a daemon without revision records).
    fn from_status(status: &CanaryStatus) -> Self {
        let revision = status.revision.as_deref().unwrap_or("?");
        let (outcome, reason, sentence) = match status.phase {
            serin_rollout::Phase::Succeeded => (
                Outcome::Promoted,
                status.message.clone(),
                format!("{}: revision {revision} promoted", status.name),
            ),
            serin_rollout::Phase::Failed => {
                let reason = status
                    .message
                    .strip_prefix("Rolling back: ")
                    .unwrap_or(&status.message);
                let reason = reason.split(". Canary failed!").next().unwrap_or(reason);
                (
                    Outcome::RolledBack,
                    reason.to_owned(),
                    format!("{}: revision {revision} rolled back: {reason}", status.name),
                )
            }
            phase => (
                Outcome::InProgress,
                String::new(),
                format!(
                    "{}: revision {revision} has no verdict yet ({phase}, canary weight {} %)",
                    status.name, status.canary_weight
                ),
            ),
        };
        Verdict {
            status: status.clone(),
            outcome_known: true,
            outcome,
            reason,
            superseded_by: None,
            sentence,
            record: None,
        }
    }

    /// `revision` left before its verdict, for `by` (seen without a record).
    fn superseded(status: &CanaryStatus, revision: &str, by: &str) -> Self {
        let mut shown = status.clone();
        shown.revision = Some(revision.to_owned());
        shown.canary_weight = 0;
        Verdict {
            status: shown,
            outcome_known: true,
            outcome: Outcome::Superseded,
            reason: format!("superseded by {by} before its verdict"),
            superseded_by: Some(by.to_owned()),
            sentence: format!(
                "{}: revision {revision} was superseded by {by} before its verdict",
                status.name
            ),
            record: None,
        }
    }

    /// No verdict within `--timeout`.
    fn timed_out(wait: &Wait, statuses: &[CanaryStatus], waited: &str) -> Self {
        let status = statuses
            .iter()
            .find(|s| s.name == wait.name)
            .cloned()
            .unwrap_or_else(|| placeholder(&wait.name));
        let revision = wait
            .revision
            .clone()
            .or_else(|| status.revision.clone())
            .unwrap_or_else(|| "(none)".into());
        let reason = format!("no verdict within {waited}");
        let sentence = if status.revision.as_deref() == Some(revision.as_str()) {
            format!(
                "{}: no verdict on revision {revision} within {waited} ({}, canary weight {} %, failed checks {})",
                wait.name, status.phase, status.canary_weight, status.failed_checks
            )
        } else {
            format!(
                "{}: no verdict on revision {revision} within {waited} (it has not started; the current revision is {})",
                wait.name,
                status.revision.as_deref().unwrap_or("none")
            )
        };
        Verdict {
            status,
            outcome_known: false,
            outcome: Outcome::InProgress,
            reason,
            superseded_by: None,
            sentence,
            record: None,
        }
    }

    /// The status object with the verdict's fields.
    fn json(&self) -> Result<serde_json::Value> {
        let mut value = serde_json::to_value(&self.status)?;
        if let Some(object) = value.as_object_mut() {
            let outcome = if self.outcome_known {
                self.outcome.as_str()
            } else {
                "timed-out"
            };
            object.insert("outcome".into(), outcome.into());
            object.insert("reason".into(), self.reason.clone().into());
            object.insert(
                "supersededBy".into(),
                self.superseded_by
                    .clone()
                    .map_or(serde_json::Value::Null, Into::into),
            );
            object.insert("verdict".into(), self.sentence.clone().into());
            object.insert("rollout".into(), serde_json::to_value(&self.record)?);
        }
        Ok(value)
    }
}

/// A status for a canary the daemon stopped answering about.
fn placeholder(name: &str) -> CanaryStatus {
    CanaryStatus {
        name: name.to_owned(),
        phase: serin_rollout::Phase::Initialized,
        canary_weight: 0,
        failed_checks: 0,
        iterations: 0,
        revision: None,
        paused: false,
        message: String::new(),
        last_transition_time: serin_rollout::Timestamp::default(),
        conditions: Vec::new(),
        listen: String::new(),
        stable: String::new(),
        canary: None,
        next_tick_at: None,
        file: String::new(),
        analysis: Default::default(),
    }
}

/// The verdicts: the table (or JSON) on stdout, then one sentence each as
/// the last lines (on stderr with `--json`, keeping stdout JSON).
fn show_verdicts(verdicts: &[&Verdict], one: bool, json: bool) -> Result<()> {
    if json {
        let values = verdicts
            .iter()
            .map(|v| v.json())
            .collect::<Result<Vec<_>>>()?;
        let text = match values.as_slice() {
            [value] if one => serde_json::to_string_pretty(value)?,
            _ => serde_json::to_string_pretty(&values)?,
        };
        println!("{text}");
        for verdict in verdicts {
            eprintln!("{}", verdict.sentence);
        }
        return Ok(());
    }
    let statuses: Vec<CanaryStatus> = verdicts.iter().map(|v| v.status.clone()).collect();
    print!("{}", table(&statuses, std::io::stdout().is_terminal()));
    for verdict in verdicts {
        println!("{}", verdict.sentence);
    }
    Ok(())
}

async fn fetch(api: &Api, name: Option<&str>) -> Result<Vec<CanaryStatus>> {
    match name {
        Some(name) => {
            let path = format!("/api/v1/canaries/{}", segment(name));
            Ok(vec![api.call(http::Method::GET, &path, None).await?])
        }
        None => Ok(api
            .call::<CanaryList>(http::Method::GET, "/api/v1/canaries", None)
            .await?
            .canaries),
    }
}

fn refused(error: anyhow::Error) -> Result<ExitCode> {
    eprintln!("serin: {error:#}");
    Ok(ExitCode::from(EXIT_TROUBLE))
}

fn progress_line(waits: &[Wait], statuses: &[CanaryStatus]) -> String {
    waits
        .iter()
        .map(|wait| {
            let Some(s) = statuses.iter().find(|s| s.name == wait.name) else {
                return format!("{}: not served", wait.name);
            };
            match (&wait.verdict, &wait.revision) {
                (Some(verdict), _) => format!(
                    "{}: revision {} {}",
                    s.name,
                    verdict.status.revision.as_deref().unwrap_or("?"),
                    verdict.outcome.as_str()
                ),
                (None, None) => format!("{}: {}, no revision started yet", s.name, s.phase),
                (None, Some(revision)) if s.revision.as_deref() == Some(revision.as_str()) => {
                    format!(
                        "{}: revision {revision} {} weight {}% failed checks {}{}",
                        s.name,
                        s.phase,
                        s.canary_weight,
                        s.failed_checks,
                        if s.paused { " (paused)" } else { "" }
                    )
                }
                (None, Some(revision)) => format!(
                    "{}: waiting for revision {revision} (now {} {})",
                    s.name,
                    s.revision.as_deref().unwrap_or("no revision"),
                    s.phase
                ),
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn show(statuses: &[CanaryStatus], one: bool, json: bool) -> Result<()> {
    if json {
        let text = match statuses {
            [status] if one => serde_json::to_string_pretty(status)?,
            _ => serde_json::to_string_pretty(statuses)?,
        };
        println!("{text}");
        return Ok(());
    }
    print!("{}", table(statuses, std::io::stdout().is_terminal()));
    Ok(())
}

/// A table for people; colours only on a terminal.
fn table(statuses: &[CanaryStatus], colour: bool) -> String {
    let header = [
        "NAME", "PHASE", "WEIGHT", "FAILED", "ITER", "REVISION", "MESSAGE",
    ];
    let rows: Vec<[String; 7]> = statuses
        .iter()
        .map(|s| {
            let mut message: String = s.message.chars().take(72).collect();
            if s.message.chars().count() > 72 {
                message.push('…');
            }
            [
                s.name.clone(),
                format!("{}{}", s.phase, if s.paused { " (paused)" } else { "" }),
                format!("{}%", s.canary_weight),
                s.failed_checks.to_string(),
                s.iterations.to_string(),
                s.revision.clone().unwrap_or_else(|| "-".into()),
                message,
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: &[String], phase_colour: Option<&str>, out: &mut String| {
        for (index, (cell, width)) in cells.iter().zip(widths).enumerate() {
            let pad = width.saturating_sub(cell.chars().count());
            match (index, phase_colour) {
                (1, Some(code)) => out.push_str(&format!("\x1b[{code}m{cell}\x1b[0m")),
                _ => out.push_str(cell),
            }
            if index + 1 < cells.len() {
                out.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push('\n');
    };
    line(&header.map(String::from), None, &mut out);
    for (row, status) in rows.iter().zip(statuses) {
        let code = colour.then_some(match status.phase {
            serin_rollout::Phase::Succeeded => "32",
            serin_rollout::Phase::Failed => "31",
            serin_rollout::Phase::Initializing | serin_rollout::Phase::Initialized => "2",
            _ => "33",
        });
        line(row, code, &mut out);
    }
    // What serin cannot do for a canary now (a refused reload, a full disk).
    for status in statuses {
        for fault in status.conditions.iter().filter(|c| c.kind != "Promoted") {
            let secs = fault.last_transition_time.as_millis() / 1000;
            out.push_str(&format!(
                "{}: {} since {:02}:{:02}:{:02} UTC: {}\n",
                status.name,
                fault.kind,
                (secs / 3600) % 24,
                (secs / 60) % 60,
                secs % 60,
                fault.message
            ));
        }
    }
    out
}

/// A canary name as one URL path segment.
fn segment(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `serin status --kubernetes`: the canaries `serin controller` drives,
/// read from the cluster.
async fn kubernetes_status(args: &StatusArgs) -> Result<ExitCode> {
    let client = kube::Client::try_default().await.map_err(|error| {
        anyhow!("no Kubernetes API: not in a cluster and no usable kubeconfig ({error})")
    })?;
    let namespace = args
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_string());
    let canaries = serin_kube::status::read(client, &namespace, args.name.as_deref()).await?;
    if args.json {
        let text = match canaries.as_slice() {
            [canary] if args.name.is_some() => serde_json::to_string_pretty(canary)?,
            all => serde_json::to_string_pretty(all)?,
        };
        println!("{text}");
    } else {
        print!("{}", serin_kube::status::text(&canaries));
    }
    Ok(ExitCode::from(EXIT_OK))
}

/// `serin promote|abort|pause|resume --kubernetes`: the request written
/// as an annotation on the Canary, for `serin controller` to carry out.
async fn kubernetes_manual_action(
    action: ManualAction,
    args: &ManualActionArgs,
) -> Result<ExitCode> {
    let client = kube::Client::try_default().await.map_err(|error| {
        anyhow!("no Kubernetes API: not in a cluster and no usable kubeconfig ({error})")
    })?;
    let namespace = args
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_string());
    let request = match action {
        ManualAction::Promote => serin_kube::manual::Request::Promote,
        ManualAction::Abort => serin_kube::manual::Request::Abort,
        ManualAction::Pause => serin_kube::manual::Request::Pause,
        ManualAction::Resume => serin_kube::manual::Request::Resume,
    };
    serin_kube::manual::request(client, &namespace, &args.name, request).await?;
    println!(
        "{}.{namespace}: {}; serin controller carries it out at its next pass",
        args.name,
        request.describe()
    );
    Ok(ExitCode::from(EXIT_OK))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_escape_what_paths_cannot_hold() {
        assert_eq!(segment("my-app.v2"), "my-app.v2");
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
    }
}
