//! Fuzz targets for serin's inputs from the outside world, one module each:
//!
//! - [`spec`]: canary files, parsed and validated as `serin validate` does
//!   and mapped as `serin run` does;
//! - [`proxy`]: raw bytes sent to the built-in proxy over loopback, in front
//!   of an upstream that checks every request it is forwarded;
//! - [`replay`]: a request log, as `serin analyze --replay` reads it;
//! - [`api`]: calls to the daemon's API, bodies included, in process.
//!
//! Each target is one `check(&[u8])` that panics when a property fails. The
//! same functions run under AFL++ (`src/bin/afl_*.rs`, built with `cargo
//! afl`) and in `cargo test` (`tests/corpus.rs`), which replays the
//! checked-in corpus, every past crash (`regressions/`) and a bounded random
//! sample, so CI needs no fuzzer. See `docs/fuzzing.md`.

#![forbid(unsafe_code)]

pub mod api;
pub mod proxy;
pub mod replay;
pub mod spec;
pub mod wire;

use std::{cell::Cell, path::PathBuf, sync::Once};

/// Every target, by the name its corpus directory and binary use.
pub const TARGETS: [&str; 4] = ["spec", "proxy", "replay", "api"];

/// Runs one target on one input.
///
/// # Panics
///
/// When the input breaks one of the target's properties, or on an unknown
/// target name.
pub fn check(target: &str, data: &[u8]) {
    match target {
        "spec" => spec::check(data),
        "proxy" => proxy::check(data),
        "replay" => replay::check(data),
        "api" => api::check(data),
        other => panic!("no fuzz target {other:?}"),
    }
}

/// The checked-in corpus of a target (minimised inputs).
pub fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target)
}

/// Inputs that once broke a target, kept as regression tests.
pub fn regressions_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("regressions")
        .join(target)
}

thread_local! {
    /// Set when this thread panics: a panic in a task of a single-threaded
    /// runtime happens on the thread that drives it, and the runtime would
    /// otherwise catch it unseen.
    static PANICKED: Cell<bool> = const { Cell::new(false) };
}

/// Starts noting panics (once per process; the previous hook still runs,
/// so AFL's abort on panic and the test harness's message are kept).
pub(crate) fn note_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICKED.with(|p| p.set(true));
            previous(info);
        }));
    });
}

/// Whether this thread panicked since the last call (and forgets it).
pub(crate) fn panicked() -> bool {
    PANICKED.with(|p| p.replace(false))
}
