//! What each subcommand does, and its exit status.

use crate::{
    cli::{Cli, Command, Output},
    display,
};
use anyhow::{Context, Result, bail};
use serin_analysis::JudgeKind;
use serin_spec::Catalog;
use std::{
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::ExitCode,
    time::Duration,
};
use tokio::sync::broadcast;

/// The canary was promoted / the files are valid / nothing was rolled back.
pub const EXIT_OK: u8 = 0;
/// The canary was rolled back.
pub const EXIT_ROLLED_BACK: u8 = 1;
/// Invalid input or a problem that kept serin from doing its job.
pub const EXIT_TROUBLE: u8 = 2;

pub fn dispatch(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Validate { files } => validate(&files),
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "serin", &mut std::io::stdout());
            Ok(ExitCode::from(EXIT_OK))
        }
        Command::Man { dir } => man(dir.as_deref()),
        Command::Serve(args) => runtime()?.block_on(crate::serve::serve(args)),
        Command::Forget { name, state_dir } => forget(&name, &state_dir),
        Command::Loadtester(args) => runtime()?.block_on(crate::loadtester::loadtester(args)),
        Command::Start(args) => runtime()?.block_on(crate::client::start(args)),
        Command::Status(args) => runtime()?.block_on(crate::client::status(args)),
        Command::Promote(args) => runtime()?.block_on(crate::client::manual_action(
            crate::client::ManualAction::Promote,
            args,
        )),
        Command::Abort(args) => runtime()?.block_on(crate::client::manual_action(
            crate::client::ManualAction::Abort,
            args,
        )),
        Command::Pause(args) => runtime()?.block_on(crate::client::manual_action(
            crate::client::ManualAction::Pause,
            args,
        )),
        Command::Resume(args) => runtime()?.block_on(crate::client::manual_action(
            crate::client::ManualAction::Resume,
            args,
        )),
        Command::Run {
            files,
            output,
            metrics,
        } => runtime()?.block_on(run(&files, output, metrics)),
        Command::Grafana { files, name, api } => {
            crate::grafana::grafana(&files, name.as_deref(), api)
        }
        Command::Render {
            file,
            weight,
            name,
            provider,
        } => crate::render::render(&file, weight, name.as_deref(), &provider),
        Command::Controller {
            namespace,
            metrics_server,
        } => runtime()?.block_on(controller(namespace, metrics_server)),
        Command::Demo {
            faulty,
            judge,
            rate,
            output,
            print_config,
        } => runtime()?.block_on(demo(faulty, judge.as_deref(), rate, output, print_config)),
        Command::Analyze {
            replay,
            config,
            judge,
            revision,
        } => analyze(&replay, config.as_deref(), judge.as_deref(), revision),
    }
}

/// `serin man`: the page generated from the same definitions that parse
/// the arguments, so it never drifts from them.
fn man(dir: Option<&Path>) -> Result<ExitCode> {
    let command = <Cli as clap::CommandFactory>::command();
    match dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(command, dir)
                .with_context(|| format!("cannot write man pages to {}", dir.display()))?;
        }
        None => {
            let mut out = std::io::stdout().lock();
            clap_mangen::Man::new(command)
                .render(&mut out)
                .context("cannot write the man page")?;
            out.flush().context("cannot write the man page")?;
        }
    }
    Ok(ExitCode::from(EXIT_OK))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Parses and validates files into one catalog, or prints every problem.
pub(crate) fn load(files: &[PathBuf]) -> Result<Catalog, ExitCode> {
    load_with_files(files).map(|loaded| loaded.catalog)
}

/// As [`load`], remembering which file each canary came from: problems found
/// later (resolving, mapping) must name that file, not the first one given.
/// The one loader `serve` and the daemon's reloads use too
/// ([`serin_spec::load_paths`]): what `validate` accepts, they accept.
pub(crate) fn load_with_files(files: &[PathBuf]) -> Result<serin_spec::Loaded, ExitCode> {
    serin_spec::load_paths(files).map_err(|diagnostics| {
        for diagnostic in diagnostics {
            eprintln!("{diagnostic}");
        }
        ExitCode::from(EXIT_TROUBLE)
    })
}

fn validate(files: &[PathBuf]) -> Result<ExitCode> {
    let loaded = match load_with_files(files) {
        Ok(loaded) => loaded,
        Err(code) => return Ok(code),
    };
    // What `run` and `serve` check of each canary they serve before it
    // listens: its plan, its judges, its metric queries, alerts and routes.
    let mut problems = Vec::new();
    for canary in loaded.catalog.canaries().iter().filter(|c| c.is_runnable()) {
        let file = loaded.file_of(Some(canary.name()), files);
        if let Err(serin_server::RunError::Invalid(diagnostics)) =
            serin_server::Prepared::for_canary(&loaded.catalog, canary, &file)
        {
            problems.extend(diagnostics);
        }
    }
    if !problems.is_empty() {
        for problem in problems {
            eprintln!("{problem}");
        }
        return Ok(ExitCode::from(EXIT_TROUBLE));
    }
    let catalog = &loaded.catalog;
    let (canaries, templates, providers) = (
        catalog.canaries().len(),
        catalog.metric_templates().len(),
        catalog.alert_providers().len(),
    );
    println!(
        "{} valid: {canaries} canar{}, {templates} metric template{}, {providers} alert provider{}",
        plural(files.len(), "file", "files"),
        if canaries == 1 { "y" } else { "ies" },
        if templates == 1 { "" } else { "s" },
        if providers == 1 { "" } else { "s" },
    );
    Ok(ExitCode::from(EXIT_OK))
}

fn forget(name: &str, state_dir: &Path) -> Result<ExitCode> {
    let store = match serin_daemon::Store::open(state_dir) {
        Ok(store) => store,
        Err(error) => {
            eprintln!("serin forget: {error}");
            return Ok(ExitCode::from(EXIT_TROUBLE));
        }
    };
    if store.forget(name)? {
        println!(
            "{name}: state forgotten; serin serve starts it afresh, all traffic on its stable upstream (its history is kept)"
        );
    } else {
        println!("{name}: no state stored in {}", state_dir.display());
    }
    Ok(ExitCode::from(EXIT_OK))
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

async fn run(
    files: &[PathBuf],
    output: Output,
    metrics: Option<std::net::SocketAddr>,
) -> Result<ExitCode> {
    let loaded = match load_with_files(files) {
        Ok(loaded) => loaded,
        Err(code) => return Ok(code),
    };
    let file = loaded.file_of(None, files);
    let prepared = match serin_server::Prepared::from_catalog(&loaded.catalog, None, &file) {
        Ok(prepared) => prepared,
        Err(serin_server::RunError::Invalid(diagnostics)) => {
            for diagnostic in diagnostics {
                eprintln!("{diagnostic}");
            }
            return Ok(ExitCode::from(EXIT_TROUBLE));
        }
        Err(other) => return Err(other.into()),
    };
    let name = prepared.canary.name().to_owned();
    let scheme = match prepared.canary.spec.service.tls {
        Some(_) => "https",
        None => "http",
    };
    let threshold = prepared.plan.threshold;
    let (updates, watch) = broadcast::channel(1024);
    let metrics_watch = updates.subscribe();
    let running = serin_server::start(prepared, updates).await?;
    match running.proxy {
        Some(_) => eprintln!(
            "serin: {name}: proxy listening on {scheme}://{}",
            running.listen
        ),
        None => eprintln!(
            "serin: {name}: receiving the balancer's request log on udp://{}",
            running.listen
        ),
    }
    let _metrics = crate::metrics::serve_run(metrics, &name, &running, metrics_watch).await?;
    let shown = tokio::spawn(display::show(watch, output, name.clone(), threshold));
    let commands = running.commands.clone();
    let outcome = tokio::select! {
        outcome = running.outcome() => outcome?,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("serin: interrupted: rolling back {name}");
            let _ = commands.send(serin_server::Command::Abort).await;
            bail!("interrupted");
        }
    };
    drop(commands);
    let tracker = shown.await.unwrap_or_default();
    Ok(verdict(&name, &outcome, tracker, threshold, output))
}

/// The last line: which revision ended how and why (a JSON object with
/// `--output json`); the exit status.
fn verdict(
    name: &str,
    state: &serin_rollout::RolloutState,
    mut tracker: serin_daemon::revisions::Tracker,
    threshold: u32,
    output: Output,
) -> ExitCode {
    if tracker.current().is_none() {
        // The display saw nothing (it could not keep up): judge from the end.
        tracker = serin_daemon::revisions::Tracker::new(Some(threshold), None);
    }
    // The final state, in case the display missed it; a no-op otherwise.
    tracker.state(state);
    let sentence = match tracker.current() {
        Some(record) if record.is_done() => record.sentence(name),
        _ => format!(
            "{name}: revision {} ended {}: {}",
            state.revision.as_deref().unwrap_or("?"),
            state.phase,
            state.message
        ),
    };
    if output == Output::Json {
        let mut line = serde_json::json!({
            "update": "verdict",
            "name": name,
            "revision": state.revision,
            "phase": state.phase,
            "verdict": sentence,
        });
        if let (Some(object), Some(record)) = (line.as_object_mut(), tracker.current()) {
            object.insert("outcome".into(), record.outcome.as_str().into());
            object.insert("reason".into(), record.reason.clone().into());
            object.insert("rollout".into(), serde_json::json!(record));
        }
        println!("{line}");
    } else {
        println!("{sentence}");
    }
    if serin_server::promoted(state) {
        ExitCode::from(EXIT_OK)
    } else {
        ExitCode::from(EXIT_ROLLED_BACK)
    }
}

/// The demo's canary file; `{stable}`, `{canary}`, `{judge}` and
/// `{min_requests}` are filled in at start.
const DEMO_CANARY: &str = include_str!("demo.yaml");

async fn demo(
    faulty: bool,
    judge: Option<&str>,
    rate: f64,
    output: Output,
    print_config: bool,
) -> Result<ExitCode> {
    use serin_demo::{Backend, Behaviour, LoadSpec, load};
    let judge = match judge {
        None => JudgeKind::Sequential,
        Some(name) => parse_judge(name)?,
    };
    if !(1.0..=5_000.0).contains(&rate) {
        bail!("--rate: must be between 1 and 5000 requests per second, got {rate}");
    }
    let local = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let stable = Backend::start(local, Behaviour::healthy("stable v1"))
        .await
        .context("starting the stable backend")?;
    let canary_behaviour = if faulty {
        Behaviour {
            error_rate: 0.08,
            latency: Duration::from_millis(30),
            ..Behaviour::healthy("canary v2 (faulty)")
        }
    } else {
        Behaviour::healthy("canary v2")
    };
    let canary = Backend::start(local, canary_behaviour)
        .await
        .context("starting the canary backend")?;
    let yaml = DEMO_CANARY
        .replace("{stable}", &stable.url())
        .replace("{canary}", &canary.url())
        .replace("{judge}", judge.as_str());
    if print_config {
        print!("{yaml}");
        return Ok(ExitCode::from(EXIT_OK));
    }
    let documents = serin_spec::load_documents("demo.yaml", &yaml)
        .map_err(|problems| anyhow::anyhow!(serin_spec::render_problems("demo.yaml", &problems)))?;
    let catalog = Catalog::from_documents(documents);
    let prepared = serin_server::Prepared::from_catalog(&catalog, None, "demo.yaml")?;
    let name = prepared.canary.name().to_owned();
    let threshold = prepared.plan.threshold;
    let (updates, watch) = broadcast::channel(1024);
    let running = serin_server::start(prepared, updates).await?;
    eprintln!(
        "serin demo: stable at {}, canary at {}{}, proxy at http://{}, {rate} requests/s, judge {}",
        stable.url(),
        canary.url(),
        if faulty {
            " (fails 8% of requests)"
        } else {
            ""
        },
        running.listen,
        judge.as_str()
    );
    let shown = tokio::spawn(display::show(watch, output, name.clone(), threshold));
    let mut spec = LoadSpec::new(
        format!("http://{}/", running.listen).parse()?,
        Some(rate),
        Duration::from_secs(600),
    );
    spec.concurrency = 8;
    let load = tokio::spawn(load::run(spec));
    let outcome = running.outcome().await?;
    load.abort();
    let tracker = shown.await.unwrap_or_default();
    Ok(verdict(&name, &outcome, tracker, threshold, output))
}

fn parse_judge(name: &str) -> Result<JudgeKind> {
    JudgeKind::ALL
        .into_iter()
        .find(|kind| kind.as_str() == name)
        .with_context(|| {
            format!(
                "--judge: unknown judge {name:?}; expected sequential, threshold or mann-whitney"
            )
        })
}

fn analyze(
    log: &Path,
    config: Option<&Path>,
    judge: Option<&str>,
    revision: Option<String>,
) -> Result<ExitCode> {
    use serin_server::replay::{ReplaySetup, replay};
    let mut setup = match config {
        None => ReplaySetup::defaults(),
        Some(file) => {
            let catalog = match load(&[file.to_path_buf()]) {
                Ok(catalog) => catalog,
                Err(code) => return Ok(code),
            };
            let name = file.display().to_string();
            let canary = match catalog.canaries() {
                [one] => one,
                _ => {
                    eprintln!("{name}: kind: expected exactly one Canary");
                    return Ok(ExitCode::from(EXIT_TROUBLE));
                }
            };
            let plan = serin_server::mapping::plan_for(canary);
            let analysis = catalog
                .resolve_for_run(canary)
                .and_then(|resolved| serin_server::mapping::analysis_for(&resolved, &plan));
            match analysis {
                Ok(analysis) => ReplaySetup::new(plan, analysis),
                Err(problems) => {
                    for problem in problems {
                        eprintln!("{}", problem.in_file(name.as_str()));
                    }
                    return Ok(ExitCode::from(EXIT_TROUBLE));
                }
            }
        }
    };
    if let Some(name) = judge {
        setup.analysis = setup.analysis.with_judge(parse_judge(name)?);
    }
    setup.revision = revision;
    let name = log.display().to_string();
    let left_out = setup.left_out();
    if let (false, Some(file)) = (left_out.is_empty(), config) {
        eprintln!(
            "{}: spec.analysis.metrics: custom metrics have no values in a request log; left out of the replay: {}",
            file.display(),
            left_out.join(", "),
        );
    }
    let reader: Box<dyn BufRead> = if log.as_os_str() == "-" {
        Box::new(BufReader::new(std::io::stdin().lock()))
    } else {
        match std::fs::File::open(log) {
            Ok(file) => Box::new(BufReader::with_capacity(1 << 20, file)),
            Err(error) => {
                eprintln!("{name}: cannot open: {error}");
                return Ok(ExitCode::from(EXIT_TROUBLE));
            }
        }
    };
    let stdout = std::io::stdout();
    let mut sink = AnalyzeOutput {
        out: std::io::BufWriter::new(stdout.lock()),
        name: &name,
        shown: 0,
    };
    let summary = match replay(reader, &setup, &mut sink) {
        Ok(summary) => summary,
        Err(error) => {
            let _ = sink.out.flush();
            eprintln!("{name}: {error}");
            return Ok(ExitCode::from(EXIT_TROUBLE));
        }
    };
    sink.out.flush()?;
    if let Some(why) = summary.unusable(&setup) {
        eprintln!("{name}: {why}");
        return Ok(ExitCode::from(EXIT_TROUBLE));
    }
    let without = summary
        .rollouts
        .saturating_sub(summary.rolled_back)
        .saturating_sub(summary.promoted);
    eprintln!(
        "{name}: {} judged: {} rolled back, {} promoted, {without} without a verdict; {} ({} to the canary), {}",
        plural(summary.rollouts as usize, "rollout", "rollouts"),
        summary.rolled_back,
        summary.promoted,
        plural(summary.records as usize, "request", "requests"),
        summary.canary_records,
        plural(
            summary.malformed as usize,
            "malformed line skipped",
            "malformed lines skipped"
        ),
    );
    Ok(ExitCode::from(if summary.rolled_back > 0 {
        EXIT_ROLLED_BACK
    } else {
        EXIT_OK
    }))
}

/// Malformed lines `serin analyze` names one by one; the rest are counted.
const MALFORMED_SHOWN: u64 = 10;

/// Where `serin analyze` writes: reports on stdout, the rest on stderr.
struct AnalyzeOutput<'a, W: Write> {
    out: W,
    name: &'a str,
    shown: u64,
}

impl<W: Write> serin_server::replay::ReplaySink for AnalyzeOutput<'_, W> {
    fn tick(&mut self, report: &serin_server::replay::TickReport) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.out, report)?;
        self.out.write_all(b"\n")
    }

    fn rollout(&mut self, summary: &serin_server::replay::RolloutSummary) -> std::io::Result<()> {
        // The reports come first, then what they add up to.
        self.out.flush()?;
        let revision = summary
            .revision
            .as_deref()
            .map(|r| format!(" (revision {r})"))
            .unwrap_or_default();
        let when = if summary.between_ticks {
            " between ticks"
        } else {
            ""
        };
        eprintln!(
            "{}: rollout {}{revision}: {}{when} after {}, from {:.3} to {:.3}, at canary weight {}, {} failed {}: {}",
            self.name,
            summary.rollout,
            summary.outcome.as_str(),
            plural(summary.ticks as usize, "analysis tick", "analysis ticks"),
            summary.started,
            summary.ended,
            summary.weight,
            summary.failed_checks,
            if summary.failed_checks == 1 {
                "check"
            } else {
                "checks"
            },
            summary.reason
        );
        Ok(())
    }

    fn malformed(&mut self, line: u64, message: &str) {
        self.shown += 1;
        if self.shown <= MALFORMED_SHOWN {
            eprintln!("{}: line {line}: {message} (skipped)", self.name);
        }
    }

    fn diverged(&mut self, rollout: u32, message: &str) {
        eprintln!(
            "{}: rollout {rollout}: the replay no longer follows the live rollout {message}",
            self.name
        );
    }
}

/// `serin controller`: the Kubernetes client from the environment (in
/// cluster, or the current kubeconfig), the Lease in the controller's own
/// namespace, named after its pod.
async fn controller(namespace: Option<String>, metrics_server: Option<String>) -> Result<ExitCode> {
    let client = kube::Client::try_default()
        .await
        // kube's error repeats its chain in its own message: one line is
        // enough, so it is not kept as a source.
        .map_err(|error| {
            anyhow::anyhow!(
                "no Kubernetes API: not in a cluster and no usable kubeconfig ({error})"
            )
        })?;
    let lease_namespace = std::env::var("POD_NAMESPACE")
        .ok()
        .or_else(|| {
            std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
                .ok()
                .map(|text| text.trim().to_string())
        })
        .filter(|namespace| !namespace.is_empty())
        .unwrap_or_else(|| client.default_namespace().to_string());
    let identity = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| format!("serin-{}", std::process::id()));
    let settings = serin_kube::operator::Settings {
        namespace,
        lease_namespace,
        identity,
        default_provider: "istio".into(),
    };
    let checks = serin_kube::checks::PrometheusChecks::new(metrics_server, Some(client.clone()));
    serin_kube::operator::run(client, settings, checks)
        .await
        .context("serin controller")?;
    Ok(ExitCode::SUCCESS)
}
