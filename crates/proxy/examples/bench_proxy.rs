//! The proxy alone, for benchmarks: forwards everything to one upstream.
//!
//! ```text
//! cargo run --release -p serin-proxy --example bench_proxy -- LISTEN UPSTREAM [WORKERS] [CANARY WEIGHT]
//! ```
//! e.g. `bench_proxy 127.0.0.1:8081 http://127.0.0.1:8080 2`. With `CANARY`
//! and `WEIGHT` the split path is measured too. With `BENCH_TLS_CERT` and
//! `BENCH_TLS_KEY` set (PEM files) the listener terminates TLS. Stops on
//! Ctrl-C or SIGTERM.

use serin_proxy::{Limits, Proxy, ProxyConfig, Recorder, Routes, TlsFiles};
use std::{process::ExitCode, sync::Arc, time::Duration};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(listen), Some(upstream)) = (args.first(), args.get(1)) else {
        eprintln!("usage: bench_proxy LISTEN UPSTREAM [WORKERS] [CANARY WEIGHT]");
        return ExitCode::from(2);
    };
    let workers = args
        .get(2)
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    // The proxy serves on its own worker threads; this runtime only waits
    // for the signal.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bench_proxy: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(listen, upstream, workers, args.get(3), args.get(4))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench_proxy: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(
    listen: &str,
    upstream: &str,
    workers: usize,
    canary: Option<&String>,
    weight: Option<&String>,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut routes = Routes::stable_only(upstream.parse()?);
    if let Some(canary) = canary {
        routes.canary = Some(canary.parse()?);
        routes.canary_weight = weight.map_or(Ok(10), |w| w.parse())?;
    }
    let config = ProxyConfig {
        listen: listen.parse()?,
        limits: Limits {
            workers: Some(workers),
            ..Limits::default()
        },
        access_log: None,
        trusted_proxies: Default::default(),
        tls: match (
            std::env::var_os("BENCH_TLS_CERT"),
            std::env::var_os("BENCH_TLS_KEY"),
        ) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert_file: cert.into(),
                key_file: key.into(),
            }),
            _ => None,
        },
        upstream_ca_file: None,
    };
    let recorder = Arc::new(Recorder::new(Duration::from_secs(3600)));
    let proxy = Proxy::bind(config, routes, recorder.clone()).await?;
    eprintln!("bench_proxy: listening on {}", proxy.local_addr());
    let handle = proxy.handle();
    proxy
        .serve(async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async {
                    match term.as_mut() {
                        Some(t) => { t.recv().await; }
                        None => std::future::pending::<()>().await,
                    }
                } => {}
            }
        })
        .await?;
    let totals = recorder.totals();
    eprintln!(
        "bench_proxy: stable {} requests ({} errors), canary {} requests; {:?}",
        totals.stable.requests,
        totals.stable.errors,
        totals.canary.requests,
        handle.counters()
    );
    Ok(())
}
