//! Following the canary files: re-read on SIGHUP and when they change on
//! disk (polled: no inotify dependency, and it works on every filesystem).
//!
//! A reload that finds problems keeps the canaries as they run and says
//! why, in the log and as the `ConfigReloadFailed` condition of each canary
//! it concerns; the next good version of the files is picked up as usual
//! and clears the condition.

use crate::supervisor::Supervisor;
use serin_server::{Clock, TokioClock};
use std::collections::BTreeMap;
use std::{
    path::PathBuf,
    time::{Duration, SystemTime},
};
use tokio::sync::watch;

/// How often the files are checked for changes by default.
pub const DEFAULT_POLL: Duration = Duration::from_secs(2);

/// How long a changed file must stay unchanged before it is read.
const SETTLE: Duration = Duration::from_millis(150);

/// Files larger than this are refused before they are read.
pub const MAX_FILE_BYTES: u64 = serin_spec::parse::MAX_FILE_BYTES as u64;

/// The canary files as last read.
pub use serin_spec::Loaded;

/// Reads, parses and validates `paths` with the loader `serin validate`
/// uses ([`serin_spec::load_paths`]): the same rules, the same lines
/// (`FILE: FIELD.PATH: MESSAGE`), one per problem.
pub fn load(paths: &[PathBuf]) -> Result<Loaded, Vec<String>> {
    load_files(paths).map_err(|problems| problems.into_iter().map(|p| p.line).collect())
}

/// One problem with the files.
#[derive(Clone, Debug)]
struct FileProblem {
    /// The file it is in, as canaries record it.
    file: String,
    /// The problem, naming the file (and the field).
    line: String,
}

/// [`load`], each problem with its file.
fn load_files(paths: &[PathBuf]) -> Result<Loaded, Vec<FileProblem>> {
    serin_spec::load_paths(paths).map_err(|diagnostics| {
        diagnostics
            .iter()
            .map(|d| FileProblem {
                file: d.file.clone(),
                line: d.to_string(),
            })
            .collect()
    })
}

/// What a file looked like: changes in size, time or content trigger a reload.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Seen {
    modified: Option<SystemTime>,
    len: u64,
    hash: u64,
}

fn seen(paths: &[PathBuf]) -> Vec<Option<Seen>> {
    paths
        .iter()
        .map(|path| {
            let meta = std::fs::metadata(path).ok()?;
            // Hash the content too: an edit within the same second and size
            // (a revision string changed in place) must not be missed. A file
            // over the limit is not read every poll; its size and time still
            // show a change, and loading it says why it is refused.
            let hash = if meta.len() > MAX_FILE_BYTES {
                0
            } else {
                fnv1a(&serin_spec::files::read_bytes(path).ok()?)
            };
            Some(Seen {
                modified: meta.modified().ok(),
                len: meta.len(),
                hash,
            })
        })
        .collect()
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Follows `paths` until `shutdown` turns true: reloads on SIGHUP and on
/// change, and reconciles every `poll` (so a change deferred while a
/// rollout runs is applied once it ends).
pub async fn follow(
    supervisor: Supervisor,
    paths: Vec<PathBuf>,
    mut loaded: Loaded,
    poll: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut last = seen(&paths);
    let mut hangup = hangup_signal();
    let clock = TokioClock::new();
    // The problems of the last reload, until a reload succeeds.
    let mut refused: Vec<FileProblem> = Vec::new();
    loop {
        let forced = tokio::select! {
            () = tokio::time::sleep(poll) => false,
            () = next_hangup(&mut hangup) => true,
            _ = shutdown.changed() => return,
        };
        if *shutdown.borrow() {
            return;
        }
        let now = seen(&paths);
        if !forced && now != last {
            // Let a write in progress finish: apply a change only once the
            // files read the same twice in a row.
            tokio::time::sleep(SETTLE).await;
            if seen(&paths) != now {
                continue;
            }
        }
        if forced || now != last {
            last = now;
            match load_files(&paths) {
                Ok(fresh) => {
                    tracing::info!(files = paths.len(), forced, "canary files reloaded");
                    for name in supervisor.deferred(&fresh.catalog) {
                        tracing::info!(
                            canary = %name,
                            "the canary's file changed during its rollout: the change applies when the rollout ends"
                        );
                    }
                    loaded = fresh;
                    refused.clear();
                }
                Err(problems) => {
                    for problem in &problems {
                        tracing::error!(
                            "reload refused, canaries keep running as they are: {}",
                            problem.line
                        );
                    }
                    refused = problems;
                }
            }
        }
        let problems = supervisor
            .reconcile_each(&loaded.catalog, &loaded.files)
            .await;
        for (_, problem) in &problems {
            tracing::error!("{problem}");
        }
        let faults = faults(&supervisor, &refused, &problems);
        supervisor.set_config_faults(&faults, clock.now());
    }
}

/// What each running canary is told about the files: the problems of a
/// refused reload in its own file, and in files that hold no running
/// canary (templates and alert providers it may use: the whole reload was
/// refused), and what applying its file's change ran into.
fn faults(
    supervisor: &Supervisor,
    refused: &[FileProblem],
    applying: &[(String, String)],
) -> BTreeMap<String, String> {
    let canaries = supervisor.list();
    let canary_files: std::collections::BTreeSet<&str> =
        canaries.iter().map(|c| c.file.as_str()).collect();
    let mut faults = BTreeMap::new();
    for canary in &canaries {
        let mut lines: Vec<&str> = refused
            .iter()
            .filter(|p| p.file == canary.file || !canary_files.contains(p.file.as_str()))
            .map(|p| p.line.as_str())
            .collect();
        let reload = !lines.is_empty();
        lines.extend(
            applying
                .iter()
                .filter(|(name, _)| *name == canary.name)
                .map(|(_, line)| line.as_str()),
        );
        if lines.is_empty() {
            continue;
        }
        let lead = if reload {
            "reload refused, the canary runs as before: "
        } else {
            "the file's change could not be applied: "
        };
        // One line: a file's problems come one per line.
        let text = lines.join("; ").replace('\n', "; ");
        faults.insert(canary.name.clone(), format!("{lead}{text}"));
    }
    faults
}

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = Option<()>;

#[cfg(unix)]
fn hangup_signal() -> Hangup {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::hangup()) {
        Ok(signal) => Some(signal),
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGHUP; file changes are still followed");
            None
        }
    }
}

#[cfg(not(unix))]
fn hangup_signal() -> Hangup {
    None
}

#[cfg(unix)]
async fn next_hangup(hangup: &mut Hangup) {
    match hangup {
        Some(signal) => {
            if signal.recv().await.is_none() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending::<()>().await,
    }
}

#[cfg(not(unix))]
async fn next_hangup(_hangup: &mut Hangup) {
    std::future::pending::<()>().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_over_the_limit_are_refused_and_not_read_when_polled() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("huge.yaml");
        let file = std::fs::File::create(&path).expect("a file");
        file.set_len(MAX_FILE_BYTES + 1).expect("a sparse file");
        let problems = load(std::slice::from_ref(&path)).expect_err("refused");
        assert!(
            problems
                .iter()
                .any(|p| p.contains("larger than 4 MiB are refused")),
            "{problems:?}"
        );
        let seen = seen(std::slice::from_ref(&path));
        let Some(Some(seen)) = seen.first() else {
            panic!("the file is seen: {seen:?}");
        };
        assert_eq!(seen.len, MAX_FILE_BYTES + 1);
        assert_eq!(seen.hash, 0, "an oversized file is not hashed");
        assert!(serin_spec::files::read_bytes(&path).is_err());
    }
}
