//! A load-test and approval-gate service that speaks flagger-loadtester's
//! webhook protocol, so Flagger manifests that point at a load tester work
//! unchanged, without handing anyone a shell.
//!
//! - `metadata.type: cmd` (the default) runs an allow-listed program
//!   (`hey`, `wrk`, `ghz` unless the operator says otherwise) as an argument
//!   vector, never through a shell; see [`command`] for what is refused.
//!   Like flagger-loadtester it runs in the background (202) and is not
//!   started twice for the same canary; `blocking: "true"` waits and answers
//!   200 or 500 with the results.
//! - `type: bash` is refused unless the operator allowed shells.
//! - `type: load` is serin's built-in HTTP load generator: `url`, `rate`,
//!   `duration`, `concurrency`, `headers`; nothing to install.
//! - `/gate/*` and `/rollback/*` are manual approval gates.
//!
//! Every run is bounded: at most `max_concurrent` at once, each killed after
//! `max_duration`, output and request bodies capped.

#![forbid(unsafe_code)]

pub mod command;
pub mod gate;
mod server;
pub mod task;

pub use command::{Allowlist, Argv, CommandError};
pub use task::{LoadResults, Outcome};

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};
use tokio::{net::TcpListener, sync::Semaphore};

/// The most connections served at once; more wait in the listen queue.
const MAX_CONNECTIONS: usize = 256;
/// How long a client may take to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// What the operator allows.
#[derive(Clone, Debug)]
pub struct Config {
    /// Programs `cmd` may run.
    pub programs: Allowlist,
    /// Accept `type: bash` (runs `bash -c`): only for operators who trust
    /// everyone who can edit a canary.
    pub allow_shell: bool,
    /// Runs at once; more are answered 503.
    pub max_concurrent: usize,
    /// The longest one run may take; it is killed then.
    pub max_duration: Duration,
    /// The largest webhook payload read.
    pub max_body_bytes: usize,
    /// How long a client may take to send a payload once its headers came:
    /// without it a client trickling a body would hold a connection slot
    /// for ever, and a few hundred of them would shut the service out.
    pub body_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            programs: Allowlist::default(),
            allow_shell: false,
            max_concurrent: 8,
            max_duration: Duration::from_secs(3600),
            max_body_bytes: 64 * 1024,
            body_timeout: Duration::from_secs(10),
        }
    }
}

/// Why the load tester could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A limit of zero would refuse everything.
    #[error("{0} must be above zero")]
    Zero(&'static str),
}

/// A bound load tester, ready to serve.
#[derive(Debug)]
pub struct LoadTester {
    listener: TcpListener,
    addr: SocketAddr,
    service: Arc<server::Service>,
}

// === impl LoadTester ===

impl LoadTester {
    /// Binds `addr` (port 0 for any).
    pub async fn bind(addr: SocketAddr, config: Config) -> Result<LoadTester, Error> {
        if config.max_concurrent == 0 {
            return Err(Error::Zero("max concurrent runs"));
        }
        if config.max_duration.is_zero() {
            return Err(Error::Zero("max duration"));
        }
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| Error::Bind { addr, source })?;
        let runner = task::Runner::new(config.max_concurrent, config.max_duration);
        Ok(LoadTester {
            listener,
            addr,
            service: Arc::new(server::Service {
                config,
                gates: gate::Gates::default(),
                runner,
            }),
        })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `shutdown` completes.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        tokio::pin!(shutdown);
        loop {
            let Ok(permit) = connections.clone().acquire_owned().await else {
                return;
            };
            let accepted = tokio::select! {
                () = &mut shutdown => return,
                accepted = self.listener.accept() => accepted,
            };
            let (stream, _) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::debug!(%error, "accept failed");
                    continue;
                }
            };
            let service = self.service.clone();
            tokio::spawn(async move {
                let handler = service_fn(move |request| {
                    let service = service.clone();
                    async move { Ok::<_, std::convert::Infallible>(service.handle(request).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .serve_connection(TokioIo::new(stream), handler)
                    .await;
                drop(permit);
            });
        }
    }
}
