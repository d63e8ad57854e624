//! `serin serve`: many canaries in one process, each behind its own proxy
//! listener, with durable state, crash recovery, manual gates and a JSON API.
//!
//! - [`store`]: SQLite (WAL) under `--state-dir`: every canary's state and
//!   the history of every rollout, saved after each event before its actions
//!   run; versioned schema, migrated forward, newer versions refused.
//! - [`revisions`]: what became of each revision (promoted, rolled back,
//!   superseded), kept by the store with each state.
//! - [`supervisor`]: launches, restores, stops and commands the canaries.
//! - [`api`]: the axum router; [`api::router_with`] mounts extra routes.
//! - [`reload`]: SIGHUP and polling of the canary files.
//! - [`listener`]: the API's connections: header and idle timeouts, a cap.
//! - [`fds`]: the open-file limit, raised and shared between the API and
//!   the proxies.
//!
//! [`Daemon::start`] puts them together.

#![forbid(unsafe_code)]

pub mod api;
pub mod fds;
pub mod listener;
pub mod reload;
pub mod revisions;
pub mod status;
pub mod store;
pub mod stored;
pub mod supervisor;

pub use api::{Access, ApiState};
pub use listener::ApiLimits;
pub use status::CanaryStatus;
pub use store::Store;
pub use supervisor::{Change, CommandError, ManualAction, Supervisor};

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};
use tokio::{sync::watch, task::JoinHandle};

/// The API address when `--api` is not given.
pub const DEFAULT_API: &str = "127.0.0.1:9480";

/// What `serin serve` was asked to do.
#[derive(Clone, Debug)]
pub struct Config {
    /// Canary files (with their templates and alert providers).
    pub files: Vec<PathBuf>,
    /// Where the API listens.
    pub api: SocketAddr,
    /// Where state and history are kept.
    pub state_dir: PathBuf,
    /// The API's bearer token.
    pub token: Option<String>,
    /// How often the files are checked for changes.
    pub poll: Duration,
}

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The canary files have problems, one line each.
    #[error("{}", .0.join("\n"))]
    Invalid(Vec<String>),
    /// The state directory cannot be used.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// The API address cannot be bound.
    #[error("--api {addr}: {source}")]
    Api {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// A running daemon.
pub struct Daemon {
    supervisor: Supervisor,
    api_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

// === impl Daemon ===

impl Daemon {
    /// Opens the store, launches every canary (restored routes first, then
    /// their proxies accept traffic), serves the API with `extra` routes
    /// under the default [`ApiLimits`], and follows the files.
    pub async fn start(config: Config, extra: Vec<axum::Router>) -> Result<Daemon, Error> {
        Daemon::start_with(config, extra, ApiLimits::default()).await
    }

    /// [`Daemon::start`] with the API's timeouts and connection cap (the
    /// cap is lowered when the open-file limit is too low for it beside the
    /// proxies; see [`fds`]).
    pub async fn start_with(
        config: Config,
        extra: Vec<axum::Router>,
        api_limits: ApiLimits,
    ) -> Result<Daemon, Error> {
        let loaded = reload::load(&config.files).map_err(Error::Invalid)?;
        let state_dir = config.state_dir.clone();
        let store = tokio::task::spawn_blocking(move || Store::open(&state_dir))
            .await
            .map_err(|error| store::Error::Interrupted(error.to_string()))?;
        let store = Arc::new(store?);
        let listener = tokio::net::TcpListener::bind(config.api)
            .await
            .map_err(|source| Error::Api {
                addr: config.api,
                source,
            })?;
        let api_addr = listener.local_addr().map_err(|source| Error::Api {
            addr: config.api,
            source,
        })?;
        let open_files = fds::raise_open_files_limit();
        let canaries = loaded.catalog.canaries().len();
        let share = fds::budget(open_files, canaries, api_limits.max_connections);
        if share.short {
            tracing::warn!(
                limit = ?open_files,
                canaries,
                "the open-file limit is low for this many canaries: connections may be refused; raise it (ulimit -n, systemd LimitNOFILE=)"
            );
        }
        let api_limits = ApiLimits {
            max_connections: share.api,
            ..api_limits
        };
        tracing::info!(
            limit = ?open_files,
            api = share.api,
            per_proxy = ?share.per_proxy,
            "connection caps from the open-file limit"
        );
        let supervisor = Supervisor::new(store);
        supervisor.share_open_files(open_files, share.api);
        let problems = supervisor.reconcile(&loaded.catalog, &loaded.files).await;
        if !problems.is_empty() {
            supervisor.shutdown().await;
            return Err(Error::Invalid(problems));
        }
        let (shutdown, stopping) = watch::channel(false);
        let access = Access {
            token: config.token.clone(),
            reads_need_token: !api_addr.ip().is_loopback(),
        };
        let router = api::router_with(
            ApiState::new(supervisor.clone(), access, stopping.clone()),
            extra,
        );
        let mut api_stopping = stopping.clone();
        let api = tokio::spawn(async move {
            let stopped = async move {
                let _ = api_stopping.wait_for(|stop| *stop).await;
            };
            listener::serve(listener, router, api_limits, stopped).await;
        });
        let follow = tokio::spawn(reload::follow(
            supervisor.clone(),
            config.files.clone(),
            loaded,
            config.poll,
            stopping,
        ));
        Ok(Daemon {
            supervisor,
            api_addr,
            shutdown,
            tasks: vec![api, follow],
        })
    }

    /// Where the API listens.
    pub fn api_addr(&self) -> SocketAddr {
        self.api_addr
    }

    /// The canaries.
    pub fn supervisor(&self) -> &Supervisor {
        &self.supervisor
    }

    /// Stops following files and serving the API, then stops every canary
    /// (each saves its state and drains its proxy).
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        self.supervisor.shutdown().await;
    }
}
