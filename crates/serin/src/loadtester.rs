//! `serin loadtester`: the load-test and approval-gate service that speaks
//! flagger-loadtester's webhook protocol.

use anyhow::{Context, Result};
use serin_loadtester::{Allowlist, Config, LoadTester, command::DEFAULT_PROGRAMS};
use std::{net::SocketAddr, process::ExitCode};

/// A load-test and gate service that speaks flagger-loadtester's webhook protocol.
///
/// Point a canary's `rollout` webhooks at it with `metadata.cmd: hey ...`
/// (run as an argument vector, never through a shell) or `metadata.type:
/// load` (the built-in generator), and its confirm webhooks at
/// `/gate/check`; open gates with `POST /gate/open`. Use -v to log each run.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// A program `cmd` may run, besides hey, wrk and ghz (repeatable).
    #[arg(long = "allow", value_name = "PROGRAM")]
    pub allow: Vec<String>,
    /// Run only the programs given with --allow.
    #[arg(long)]
    pub only_allowed: bool,
    /// Accept `type: bash` webhooks, which run `bash -c CMD`: anyone who can
    /// edit a canary can then run anything here.
    #[arg(long)]
    pub allow_shell: bool,
    /// Runs at once; more are answered 503.
    #[arg(long, default_value_t = 8)]
    pub max_concurrent: usize,
    /// The longest one run may take (Go duration); it is killed then.
    #[arg(long, default_value = "1h")]
    pub max_duration: String,
}

pub async fn loadtester(args: Args) -> Result<ExitCode> {
    let max_duration = serin_spec::Duration::parse(&args.max_duration)
        .with_context(|| format!("--max-duration {:?}", args.max_duration))?
        .as_std();
    let mut programs = if args.only_allowed {
        Allowlist::new([])
    } else {
        Allowlist::new(DEFAULT_PROGRAMS.iter().copied())
    };
    for program in &args.allow {
        anyhow::ensure!(
            !program.is_empty() && !program.contains('/'),
            "--allow {program:?}: give a bare program name, found on PATH"
        );
        programs.allow(program);
    }
    let config = Config {
        programs,
        allow_shell: args.allow_shell,
        max_concurrent: args.max_concurrent,
        max_duration,
        ..Config::default()
    };
    let tester = LoadTester::bind(args.listen, config).await?;
    eprintln!(
        "serin: load tester listening on http://{}{}",
        tester.local_addr(),
        if args.allow_shell {
            " (shell commands allowed)"
        } else {
            ""
        }
    );
    tester
        .serve(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
    Ok(ExitCode::SUCCESS)
}
