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
use serin_daemon::{CanaryStatus, api::CanaryList};
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
    /// Block until the rollout ends: exit 0 promoted, 1 rolled back.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up after this long (30s, 10m, 1h30m) and exit 124.
    #[arg(long, value_name = "DUR")]
    pub timeout: Option<String>,
    /// JSON: the canary's status object (an array without NAME).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// `serin promote|abort|pause|resume`.
#[derive(Debug, Args)]
pub struct GateArgs {
    /// The canary (metadata.name).
    pub name: String,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// A manual gate, as the API names it.
#[derive(Clone, Copy, Debug)]
pub enum Gate {
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
            println!(
                "{}: rollout of {} accepted ({}, canary weight {}%)",
                status.name,
                status.revision.as_deref().unwrap_or("?"),
                status.phase,
                status.canary_weight
            );
            Ok(ExitCode::from(EXIT_OK))
        }
        Err(error) => refused(error),
    }
}

pub async fn gate(gate: Gate, args: GateArgs) -> Result<ExitCode> {
    let api = Api::new(&args.server)?;
    let verb = match gate {
        Gate::Promote => "promote",
        Gate::Abort => "abort",
        Gate::Pause => "pause",
        Gate::Resume => "resume",
    };
    let path = format!("/api/v1/canaries/{}/{verb}", segment(&args.name));
    match api
        .call::<CanaryStatus>(http::Method::POST, &path, None)
        .await
    {
        Ok(status) => {
            let done = match gate {
                Gate::Promote => "promoting",
                Gate::Abort => "rolled back",
                Gate::Pause => "paused",
                Gate::Resume => "resumed",
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
        return match fetch(&api, args.name.as_deref()).await {
            Ok(statuses) => {
                show(&statuses, args.name.is_some(), args.json)?;
                Ok(ExitCode::from(EXIT_OK))
            }
            Err(error) => refused(error),
        };
    }
    let deadline = timeout.map(|t| Instant::now() + t);
    let mut last: Option<Vec<CanaryStatus>> = None;
    let mut last_line = String::new();
    loop {
        match fetch(&api, args.name.as_deref()).await {
            Ok(statuses) => {
                let line = progress_line(&statuses);
                if line != last_line && !args.json {
                    eprintln!("{line}");
                    last_line = line;
                }
                if !statuses.is_empty() && statuses.iter().all(CanaryStatus::is_done) {
                    show(&statuses, args.name.is_some(), args.json)?;
                    let failed = statuses
                        .iter()
                        .any(|s| s.phase != serin_rollout::Phase::Succeeded);
                    return Ok(ExitCode::from(if failed {
                        EXIT_ROLLED_BACK
                    } else {
                        EXIT_OK
                    }));
                }
                last = Some(statuses);
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
            let now = last
                .as_deref()
                .map(progress_line)
                .unwrap_or_else(|| "no answer from the daemon".into());
            eprintln!(
                "serin: timed out after {} waiting for the verdict: {now}",
                args.timeout.as_deref().unwrap_or("")
            );
            if let Some(statuses) = &last {
                show(statuses, args.name.is_some(), args.json)?;
            }
            return Ok(ExitCode::from(EXIT_TIMED_OUT));
        }
        tokio::time::sleep(WAIT_POLL).await;
    }
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

fn progress_line(statuses: &[CanaryStatus]) -> String {
    statuses
        .iter()
        .map(|s| {
            format!(
                "{}: {} weight {}% failed checks {}{}",
                s.name,
                s.phase,
                s.canary_weight,
                s.failed_checks,
                if s.paused { " (paused)" } else { "" }
            )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_escape_what_paths_cannot_hold() {
        assert_eq!(segment("my-app.v2"), "my-app.v2");
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
    }
}
