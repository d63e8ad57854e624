//! Running what a webhook asks for: an allow-listed program, a shell script
//! (only when the operator allowed shells), or serin's built-in load
//! generator; bounded in number, run time and captured output.

use crate::command::Argv;
use serde::Serialize;
use serin_demo::LoadSpec;
use std::{
    collections::HashSet,
    process::Stdio,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};
use tokio::{
    io::{AsyncRead, AsyncReadExt},
    sync::Semaphore,
};

/// The most output kept from one command (the rest is read and dropped, so
/// the program never blocks on a full pipe).
pub const MAX_OUTPUT_BYTES: usize = 64 * 1024;

/// What to run.
#[derive(Clone, Debug)]
pub enum Job {
    /// An allow-listed program with its arguments, no shell.
    Program(Argv),
    /// A script for `bash -c`; only accepted when shells are allowed.
    Shell(String),
    /// serin's built-in HTTP load generator.
    Load(LoadSpec),
}

/// One run asked for by a webhook.
#[derive(Clone, Debug)]
pub struct Task {
    /// `name.namespace` of the canary that asked.
    pub canary: String,
    /// What to run.
    pub job: Job,
    /// Log the program's output when it finishes.
    pub log_output: bool,
}

/// How a run ended.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    /// The program exited 0 (or the load run completed).
    pub ok: bool,
    /// The exit status, when the program exited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Why it failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Requests, errors and latency, when known (load runs, `hey`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub results: Option<LoadResults>,
    /// Combined output, up to [`MAX_OUTPUT_BYTES`].
    #[serde(skip)]
    pub output: String,
    /// Wall time.
    pub millis: u64,
}

/// What a load run saw.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadResults {
    /// Requests sent.
    pub requests: u64,
    /// 5xx answers plus requests that got no answer.
    pub errors: u64,
    /// Median latency.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p50_ms: Option<f64>,
    /// 95th percentile latency.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p95_ms: Option<f64>,
    /// 99th percentile latency.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99_ms: Option<f64>,
}

/// Why a run was not started.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RunError {
    /// The most concurrent runs are already going.
    #[error("{0} runs already in progress; try again later")]
    Busy(usize),
    /// The same canary already runs the same command (Flagger skips it too).
    #[error("already running for {0}")]
    AlreadyRunning(String),
}

/// Runs tasks within the operator's bounds.
#[derive(Debug)]
pub struct Runner {
    slots: Arc<Semaphore>,
    max_concurrent: usize,
    max_duration: Duration,
    running: Arc<Mutex<HashSet<String>>>,
}

// === impl Runner ===

impl Runner {
    /// At most `max_concurrent` runs at once, each killed after `max_duration`.
    pub fn new(max_concurrent: usize, max_duration: Duration) -> Self {
        Runner {
            slots: Arc::new(Semaphore::new(max_concurrent)),
            max_concurrent,
            max_duration,
            running: Arc::default(),
        }
    }

    /// The longest a run may last.
    pub fn max_duration(&self) -> Duration {
        self.max_duration
    }

    /// Runs `task` and waits for it.
    pub async fn run(&self, task: Task) -> Result<Outcome, RunError> {
        let permit = self
            .slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| RunError::Busy(self.max_concurrent))?;
        let outcome = execute(&task, self.max_duration).await;
        drop(permit);
        Ok(outcome)
    }

    /// Starts `task` in the background, as flagger-loadtester does with
    /// `cmd` tasks: the webhook is answered at once, and a task already
    /// running for the same canary is not started twice.
    pub fn spawn(&self, task: Task) -> Result<(), RunError> {
        let key = format!("{}\u{0}{:?}", task.canary, task.job);
        {
            let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
            if running.contains(&key) {
                return Err(RunError::AlreadyRunning(task.canary));
            }
            let permit = self
                .slots
                .clone()
                .try_acquire_owned()
                .map_err(|_| RunError::Busy(self.max_concurrent))?;
            running.insert(key.clone());
            let running = self.running.clone();
            let max_duration = self.max_duration;
            tokio::spawn(async move {
                let _outcome = execute(&task, max_duration).await;
                drop(permit);
                running
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&key);
            });
        }
        Ok(())
    }
}

/// Runs one task to its end or its time limit, and logs the outcome.
async fn execute(task: &Task, max_duration: Duration) -> Outcome {
    let started = Instant::now();
    let mut outcome = match &task.job {
        Job::Program(argv) => {
            tracing::info!(canary = %task.canary, program = %argv.program, args = ?argv.args, "command starting");
            let mut command = tokio::process::Command::new(&argv.program);
            command.args(&argv.args);
            run_process(command, max_duration).await
        }
        Job::Shell(script) => {
            tracing::info!(canary = %task.canary, %script, "shell command starting (--allow-shell)");
            let mut command = tokio::process::Command::new("bash");
            command.arg("-c").arg(script);
            run_process(command, max_duration).await
        }
        Job::Load(spec) => {
            tracing::info!(canary = %task.canary, url = %spec.url, rate = ?spec.rate, duration = ?spec.duration, "load starting");
            let mut spec = spec.clone();
            spec.duration = spec.duration.min(max_duration);
            match serin_demo::load::run(spec).await {
                Ok(report) => Outcome {
                    ok: true,
                    exit_code: None,
                    error: None,
                    results: Some(LoadResults {
                        requests: report.requests,
                        errors: report.errors,
                        p50_ms: report.latency.quantile_millis(0.5),
                        p95_ms: report.latency.quantile_millis(0.95),
                        p99_ms: report.latency.quantile_millis(0.99),
                    }),
                    output: String::new(),
                    millis: 0,
                },
                Err(error) => failed(error.to_string()),
            }
        }
    };
    if outcome.results.is_none() && matches!(&task.job, Job::Program(argv) if argv.program == "hey")
    {
        outcome.results = hey_results(&outcome.output);
    }
    outcome.millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let results = outcome
        .results
        .as_ref()
        .and_then(|r| serde_json::to_string(r).ok())
        .unwrap_or_default();
    if outcome.ok {
        tracing::info!(canary = %task.canary, millis = outcome.millis, %results, "run finished");
    } else {
        tracing::warn!(canary = %task.canary, millis = outcome.millis, error = outcome.error.as_deref().unwrap_or(""), output = %outcome.output, "run failed");
    }
    if task.log_output && !outcome.output.is_empty() {
        tracing::info!(canary = %task.canary, output = %outcome.output, "command output");
    }
    outcome
}

fn failed(error: String) -> Outcome {
    Outcome {
        ok: false,
        exit_code: None,
        error: Some(error),
        results: None,
        output: String::new(),
        millis: 0,
    }
}

/// Runs a process with no environment but `PATH`, no stdin, bounded output,
/// killed at `limit`, in a fresh empty directory: relative paths in its
/// arguments (`hey -D etc/shadow` from a loadtester started in `/`) find
/// nothing of the loadtester's.
async fn run_process(mut command: tokio::process::Command, limit: Duration) -> Outcome {
    let workdir = match tempfile::Builder::new().prefix("serin-loadtest-").tempdir() {
        Ok(dir) => dir,
        Err(error) => return failed(format!("cannot create a working directory: {error}")),
    };
    command
        .current_dir(workdir.path())
        .env_clear()
        .env(
            "PATH",
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(error) => return failed(format!("cannot start: {error}")),
    };
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let ran = tokio::time::timeout(limit, async {
        let (out, err, status) = tokio::join!(capture(stdout), capture(stderr), child.wait());
        (out, err, status)
    })
    .await;
    match ran {
        Ok((out, err, Ok(status))) => {
            let mut output = out;
            if !err.is_empty() {
                if !output.is_empty() {
                    output.push('\n');
                }
                output.push_str(&err);
            }
            Outcome {
                ok: status.success(),
                exit_code: status.code(),
                error: (!status.success()).then(|| format!("exited with {status}")),
                results: None,
                output,
                millis: 0,
            }
        }
        Ok((_, _, Err(error))) => failed(format!("wait failed: {error}")),
        Err(_) => {
            // Dropping the child kills it (kill_on_drop).
            let _ = child.start_kill();
            failed(format!("killed after {limit:?} (the load tester's limit)"))
        }
    }
}

/// Reads a pipe to its end, keeping the first [`MAX_OUTPUT_BYTES`].
async fn capture(pipe: Option<impl AsyncRead + Unpin>) -> String {
    let Some(mut pipe) = pipe else {
        return String::new();
    };
    let mut kept = Vec::new();
    let mut buffer = [0u8; 8192];
    loop {
        match pipe.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = MAX_OUTPUT_BYTES.saturating_sub(kept.len());
                kept.extend_from_slice(buffer.get(..n.min(room)).unwrap_or_default());
            }
        }
    }
    String::from_utf8_lossy(&kept).into_owned()
}

/// Requests, errors and latency from `hey`'s summary.
pub fn hey_results(output: &str) -> Option<LoadResults> {
    let mut results = LoadResults::default();
    let mut seen = false;
    let mut section = "";
    for line in output.lines() {
        let trimmed = line.trim();
        if trimmed.ends_with(':') && !trimmed.contains(' ') || trimmed.ends_with("distribution:") {
            section = trimmed;
            continue;
        }
        match section {
            "Status code distribution:" => {
                // `[200]	100 responses`
                if let Some((code, rest)) =
                    trimmed.strip_prefix('[').and_then(|t| t.split_once(']'))
                {
                    let count: u64 = rest
                        .split_whitespace()
                        .next()
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0);
                    results.requests = results.requests.saturating_add(count);
                    if code.starts_with('5') {
                        results.errors = results.errors.saturating_add(count);
                    }
                    seen = true;
                }
            }
            "Error distribution:" => {
                // `[3]	Get "http://…": dial tcp …`
                if let Some(count) = trimmed
                    .strip_prefix('[')
                    .and_then(|t| t.split_once(']'))
                    .and_then(|(n, _)| n.parse::<u64>().ok())
                {
                    results.requests = results.requests.saturating_add(count);
                    results.errors = results.errors.saturating_add(count);
                    seen = true;
                }
            }
            "Latency distribution:" => {
                // `50% in 0.0012 secs`
                let mut words = trimmed.split_whitespace();
                let (Some(pct), Some("in"), Some(secs)) =
                    (words.next(), words.next(), words.next())
                else {
                    continue;
                };
                let Ok(secs) = secs.parse::<f64>() else {
                    continue;
                };
                let ms = Some(secs * 1000.0);
                match pct {
                    "50%" => results.p50_ms = ms,
                    "95%" => results.p95_ms = ms,
                    "99%" => results.p99_ms = ms,
                    _ => {}
                }
            }
            _ => {}
        }
    }
    seen.then_some(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hey_summaries_give_requests_errors_and_latency() {
        let output = "
Summary:
  Total:	1.0032 secs
  Requests/sec:	99.6810

Latency distribution:
  10% in 0.0010 secs
  50% in 0.0020 secs
  95% in 0.0050 secs
  99% in 0.0100 secs

Status code distribution:
  [200]	95 responses
  [503]	3 responses

Error distribution:
  [2]	Get \"http://127.0.0.1:1/\": dial tcp 127.0.0.1:1: connect: connection refused
";
        let results = hey_results(output).unwrap();
        assert_eq!(results.requests, 100);
        assert_eq!(results.errors, 5);
        assert_eq!(results.p50_ms, Some(2.0));
        assert_eq!(results.p99_ms, Some(10.0));
        assert_eq!(hey_results("nothing"), None);
    }

    #[test]
    fn absurd_counts_in_a_summary_saturate_instead_of_overflowing() {
        let huge = u64::MAX;
        let output = format!(
            "Status code distribution:\n  [500]\t{huge} responses\n  [502]\t{huge} responses\n\n\
             Error distribution:\n  [{huge}]\tGet: dial tcp: refused\n"
        );
        let results = hey_results(&output).unwrap();
        assert_eq!((results.requests, results.errors), (huge, huge));
    }
}
