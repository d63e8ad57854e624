//! `serin serve`: the daemon in the foreground until SIGINT or SIGTERM.

use crate::commands::{EXIT_OK, EXIT_TROUBLE};
use anyhow::{Context, Result, bail};
use clap::Args;
use std::{net::SocketAddr, path::PathBuf, process::ExitCode};

/// `serin serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Canary files (plus metric template and alert provider files).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Where the API (and /healthz) listens.
    #[arg(long, default_value = serin_daemon::DEFAULT_API)]
    pub api: SocketAddr,
    /// Where state and history are kept (created when missing).
    #[arg(long, default_value = ".serin")]
    pub state_dir: PathBuf,
    /// A file holding the API token (instead of SERIN_TOKEN).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// How often the files are checked for changes (SIGHUP reloads at once).
    #[arg(long, default_value = "2s", value_name = "DUR")]
    pub poll: String,
    /// Most API connections open at once (lowered when the open-file limit
    /// is too low for it beside the proxies); at the cap the connection
    /// idle the longest is closed to make room.
    #[arg(long, default_value = "256", value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..))]
    pub api_max_connections: u16,
}

/// Largest token file read.
const MAX_TOKEN_BYTES: u64 = 4096;

pub async fn serve(args: ServeArgs) -> Result<ExitCode> {
    let poll = serin_spec::Duration::parse(&args.poll)
        .map_err(|e| anyhow::anyhow!("--poll: {e}"))?
        .as_std();
    if poll.is_zero() {
        bail!("--poll: must be more than 0s");
    }
    let token = token(args.token_file.as_deref())?;
    if token.is_none() {
        eprintln!(
            "serin serve: no API token (SERIN_TOKEN or --token-file): start, promote, abort, pause and resume are refused"
        );
    }
    let config = serin_daemon::Config {
        files: args.files,
        api: args.api,
        state_dir: args.state_dir,
        token,
        poll,
    };
    let api_limits = serin_daemon::ApiLimits {
        max_connections: usize::from(args.api_max_connections),
        ..serin_daemon::ApiLimits::default()
    };
    let telemetry = serin_telemetry::Telemetry::new();
    let extra = crate::observe::routes(&telemetry);
    let daemon = match serin_daemon::Daemon::start_with(config, extra, api_limits).await {
        Ok(daemon) => daemon,
        Err(serin_daemon::Error::Invalid(problems)) => {
            for problem in problems {
                eprintln!("{problem}");
            }
            return Ok(ExitCode::from(EXIT_TROUBLE));
        }
        Err(error) => {
            eprintln!("serin serve: {error}");
            return Ok(ExitCode::from(EXIT_TROUBLE));
        }
    };
    let _follow = crate::observe::follow(&telemetry, daemon.supervisor());
    let canaries = daemon.supervisor().list();
    eprintln!(
        "serin serve: API on http://{}, dashboard on http://{}/ui/, {} canar{}",
        daemon.api_addr(),
        daemon.api_addr(),
        canaries.len(),
        if canaries.len() == 1 { "y" } else { "ies" }
    );
    for canary in &canaries {
        eprintln!(
            "serin serve: {}: proxy on http://{} ({}, canary weight {}%)",
            canary.name, canary.listen, canary.phase, canary.canary_weight
        );
    }
    stopped().await;
    eprintln!("serin serve: stopping: saving state and draining proxies");
    daemon.shutdown().await;
    Ok(ExitCode::from(EXIT_OK))
}

fn token(file: Option<&std::path::Path>) -> Result<Option<String>> {
    let text = match file {
        Some(path) => {
            let meta = std::fs::metadata(path)
                .with_context(|| format!("--token-file {}", path.display()))?;
            if meta.len() > MAX_TOKEN_BYTES {
                bail!(
                    "--token-file {}: larger than {MAX_TOKEN_BYTES} bytes",
                    path.display()
                );
            }
            std::fs::read_to_string(path)
                .with_context(|| format!("--token-file {}", path.display()))?
        }
        None => std::env::var("SERIN_TOKEN").unwrap_or_default(),
    };
    let token = text.trim().to_owned();
    if file.is_some() && token.is_empty() {
        bail!("--token-file: the file is empty");
    }
    Ok((!token.is_empty()).then_some(token))
}

/// Resolves at SIGINT or SIGTERM.
async fn stopped() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
