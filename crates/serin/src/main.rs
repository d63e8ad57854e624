//! The `serin` command line: parsing arguments, printing for people and for
//! machines, exit codes. Everything else lives in the library crates.

#![forbid(unsafe_code)]

mod cli;
mod client;
mod commands;
mod display;
mod grafana;
mod loadtester;
mod metrics;
mod observe;
mod render;
mod serve;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    init_tracing(cli.verbose, cli.log_format);
    match commands::dispatch(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("serin: {error:#}");
            ExitCode::from(commands::EXIT_TROUBLE)
        }
    }
}

fn init_tracing(verbose: u8, format: cli::LogFormat) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "error",
        1 => "info,hyper=warn",
        _ => "debug,hyper=info",
    };
    let filter = EnvFilter::try_from_env("SERIN_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        cli::LogFormat::Text => builder.with_target(false).init(),
        cli::LogFormat::Json => builder.json().init(),
    }
}
