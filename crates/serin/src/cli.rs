//! Command-line arguments.

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Progressive delivery in one binary: shift traffic to a canary step by
/// step, compare it with stable using statistics that stay honest when
/// checked every second, and promote or roll back on its own.
#[derive(Debug, Parser)]
#[command(name = "serin", version, propagate_version = true)]
pub struct Cli {
    /// More log output on stderr (-v info, -vv debug). SERIN_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Log line format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check canary, metric template and alert provider files.
    ///
    /// Exits 0 when every file is valid, 2 otherwise, printing one line per
    /// problem: FILE: FIELD.PATH: MESSAGE.
    Validate {
        /// Files to check (multi-document YAML allowed).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },

    /// Serve the proxy and run the rollout in FILE in the foreground.
    ///
    /// Exits 0 when the canary is promoted, 1 when it is rolled back.
    Run {
        /// The canary file (plus any template or alert provider files).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Output: progress for people, or one JSON object per update.
        #[arg(long, value_enum, default_value_t = Output::Auto)]
        output: Output,
        /// Serve /metrics (Prometheus/OpenMetrics) on this address, e.g. 127.0.0.1:9464.
        #[arg(long, value_name = "ADDR")]
        metrics: Option<std::net::SocketAddr>,
    },

    /// A whole rollout with built-in sample backends and load: nothing to set up.
    Demo {
        /// Make the canary fail so the rollback is seen.
        #[arg(long)]
        faulty: bool,
        /// The judge to use: sequential (default), threshold or mann-whitney.
        #[arg(long)]
        judge: Option<String>,
        /// Requests per second the load generator sends through the proxy.
        #[arg(long, default_value_t = 200.0)]
        rate: f64,
        /// Output: progress for people, or one JSON object per update.
        #[arg(long, value_enum, default_value_t = Output::Auto)]
        output: Output,
        /// Print the demo's canary file and exit.
        #[arg(long)]
        print_config: bool,
    },

    /// Judge a recorded request log offline, tick by tick as the live system did.
    ///
    /// Replays the log through the canary's own rollout (steps, interval,
    /// threshold, deadline) on the live loop's cadence. Prints one JSON
    /// object per analysis tick on stdout; each rollout in the log is judged
    /// on its own and its reports stop at its verdict. On stderr: skipped
    /// lines, then one summary line per rollout and a total. Exits 0 when
    /// nothing was rolled back, 1 when a rollout was, 2 on invalid input
    /// (including a log with no request to the canary).
    Analyze {
        /// The request log: JSON lines {"ts", "version", "status", "latency_ms"}, optionally with "weight" and "revision" (the proxy's access log). `-` reads stdin.
        #[arg(long)]
        replay: PathBuf,
        /// The canary whose rollout and analysis settings to use (default: Flagger's).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Override the judge: sequential, threshold or mann-whitney.
        #[arg(long)]
        judge: Option<String>,
        /// Judge only the rollout(s) of this revision (needs a log with "revision").
        #[arg(long)]
        revision: Option<String>,
    },

    /// Print a Grafana dashboard (JSON) for the canary in FILE.
    ///
    /// Error rate, p95/p99 latency and throughput of stable vs canary, the
    /// canary weight, phase, each analysis metric, and the verdicts as
    /// annotations. Import it as is; it asks for a Prometheus data source.
    Grafana {
        /// The canary file (plus any template files).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Which canary, when the files hold several.
        #[arg(long)]
        name: Option<String>,
        /// Wrap it for Grafana's HTTP API: {"dashboard": …, "overwrite": true}.
        #[arg(long)]
        api: bool,
    },

    /// Print the routing objects a canary's router holds at a canary weight.
    ///
    /// Multi-document YAML: for Kubernetes routers (istio, gatewayapi:v1,
    /// gatewayapi:v1beta1, kubernetes, nginx with ingressRef) the primary
    /// Deployment, the Services and the router's objects, named and labelled
    /// as Flagger names them. Documents of kind Deployment, HPA, Ingress,
    /// ConfigMap or Secret in FILE stand for the cluster's objects (the
    /// primary copies the target's pod spec, nginx copies the Ingress).
    Render {
        /// The canary file.
        file: PathBuf,
        /// The canary weight, 0 to 100. For A/B canaries any weight above 0
        /// means "during the analysis": matched requests go to the canary.
        #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
        weight: i64,
        /// Which canary, when the file holds several.
        #[arg(long)]
        name: Option<String>,
        /// The provider where the canary names none (Flagger's -mesh-provider).
        #[arg(long, default_value = "istio")]
        provider: String,
    },

    /// Kubernetes controller mode: reconcile every `Canary` (Flagger's
    /// flagger.app/v1beta1 and serin.dev/v1alpha1) in the cluster.
    ///
    /// In cluster, or with the current kubeconfig. Replicas elect a leader
    /// on the Lease `serin-controller` in their own namespace; only the
    /// leader acts.
    Controller {
        /// Watch only this namespace (all namespaces otherwise).
        #[arg(long)]
        namespace: Option<String>,
        /// The Prometheus of canaries without spec.metricsServer (Flagger's
        /// -metrics-server), e.g. http://prometheus.istio-system:9090.
        #[arg(long)]
        metrics_server: Option<String>,
    },

    /// The daemon: many canaries, each behind its own proxy, with durable
    /// state, crash recovery, the API on --api and manual gates.
    ///
    /// Reloads the files on SIGHUP and when they change; a changed
    /// upstreams.canary or upstreams.revision starts a rollout.
    Serve(crate::serve::ServeArgs),

    /// Start a rollout on the daemon. Exits 0 when accepted.
    Start(crate::client::StartArgs),

    /// Show rollouts; --wait blocks until the verdict.
    ///
    /// --wait waits on the revision current when it begins, or on --revision
    /// REV: exits 0 when that revision is promoted, 1 when it is rolled back
    /// or another revision is started before its verdict, 124 when
    /// --timeout passed first. The last line says which revision ended how
    /// and why.
    Status(crate::client::StatusArgs),

    /// Promote now, skipping the remaining steps.
    Promote(crate::client::ManualActionArgs),

    /// Roll back now.
    Abort(crate::client::ManualActionArgs),

    /// Hold the current weight; analysis continues.
    Pause(crate::client::ManualActionArgs),

    /// Let a paused rollout advance again.
    Resume(crate::client::ManualActionArgs),

    /// Forget a canary's stored state, so serin serve starts it afresh.
    ///
    /// For a state serin serve refuses at start ("state for canary NAME:
    /// FIELD: ..."): the canary's position in its rollout and its promoted
    /// upstream are dropped (all traffic goes to the stable upstream of its
    /// file); its history and revision records are kept. Refused while a
    /// daemon holds the state directory.
    Forget {
        /// The canary.
        name: String,
        /// The daemon's state directory.
        #[arg(long, default_value = ".serin")]
        state_dir: PathBuf,
    },

    /// A load-test and gate service that speaks flagger-loadtester's webhook protocol.
    Loadtester(crate::loadtester::Args),

    /// Print the shell completion script for SHELL.
    ///
    /// bash: serin completions bash > /etc/bash_completion.d/serin;
    /// zsh: serin completions zsh > "${fpath[1]}/_serin";
    /// fish: serin completions fish > ~/.config/fish/completions/serin.fish.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },

    /// Print serin's man page (roff), or write one per command to DIR.
    ///
    /// man -l <(serin man) reads it; the Debian package installs them.
    Man {
        /// Write serin.1 and serin-COMMAND.1 pages into this directory
        /// instead.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

/// How `run` and `demo` report progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// A live display on a terminal, plain lines otherwise.
    Auto,
    /// Plain lines.
    Plain,
    /// One JSON object per update.
    Json,
}
