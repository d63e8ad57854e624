//! Replays every fuzz target's checked-in corpus and past crashes, then a
//! bounded random sample of mutated corpus inputs: what the fuzzers found
//! stays found, without a fuzzer. `SERIN_FUZZ_SEED=N` repeats a sample;
//! `SERIN_FUZZ_SAMPLES=N` sets its size; `SERIN_FUZZ_INPUT=FILE` checks that
//! one input instead (name the target's test too).

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

/// Longest a target's random sample runs.
const SAMPLE_BUDGET: Duration = Duration::from_secs(3);

fn inputs(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut inputs: Vec<(PathBuf, Vec<u8>)> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n != "README.md"))
        .filter_map(|p| std::fs::read(&p).ok().map(|data| (p, data)))
        .collect();
    inputs.sort();
    inputs
}

/// Names the input being checked should the check panic.
struct Naming<'a>(&'a str);

impl Drop for Naming<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("fuzz input that failed: {}", self.0);
        }
    }
}

fn replay(target: &str, default_samples: usize) {
    if let Some(path) = std::env::var_os("SERIN_FUZZ_INPUT") {
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        serin_fuzz::check(target, &data);
        return;
    }
    let corpus = inputs(&serin_fuzz::corpus_dir(target));
    let regressions = inputs(&serin_fuzz::regressions_dir(target));
    assert!(!corpus.is_empty(), "{target}: no corpus");
    for (path, data) in corpus.iter().chain(&regressions) {
        let name = path.display().to_string();
        let _naming = Naming(&name);
        serin_fuzz::check(target, data);
    }

    let seed = std::env::var("SERIN_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    let samples = std::env::var("SERIN_FUZZ_SAMPLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default_samples);
    let mut rng = fastrand::Rng::with_seed(seed);
    let pool: Vec<&[u8]> = corpus
        .iter()
        .chain(&regressions)
        .map(|(_, d)| d.as_slice())
        .collect();
    let started = Instant::now();
    let mut ran = 0;
    for i in 0..samples {
        if started.elapsed() > SAMPLE_BUDGET && std::env::var_os("SERIN_FUZZ_SAMPLES").is_none() {
            break;
        }
        let input = mutate(&mut rng, &pool);
        let name = format!(
            "sample {i} of SERIN_FUZZ_SEED={seed} ({} bytes): {:?}",
            input.len(),
            String::from_utf8_lossy(&input)
        );
        let _naming = Naming(&name);
        serin_fuzz::check(target, &input);
        ran += 1;
    }
    eprintln!(
        "{target}: {} corpus inputs, {} regressions, {ran} random samples (SERIN_FUZZ_SEED={seed})",
        corpus.len(),
        regressions.len()
    );
}

/// A corpus input with a few random changes (AFL's havoc in miniature).
fn mutate(rng: &mut fastrand::Rng, pool: &[&[u8]]) -> Vec<u8> {
    let mut data = pool[rng.usize(..pool.len())].to_vec();
    for _ in 0..rng.usize(1..=4) {
        let len = data.len();
        match rng.u8(..7) {
            0 if len > 0 => {
                let at = rng.usize(..len);
                data[at] ^= 1 << rng.u8(..8);
            }
            1 if len > 0 => {
                let at = rng.usize(..len);
                data[at] = rng.u8(..);
            }
            2 => {
                let at = rng.usize(..=len);
                let byte = *rng
                    .choice(b"\r\n :;,\"{}[]-0123456789aAzZ\t\0\x7f\xff")
                    .unwrap_or(&b' ');
                data.insert(at, byte);
            }
            3 if len > 0 => {
                let from = rng.usize(..len);
                let to = rng.usize(from..=len.min(from + 16));
                data.drain(from..to);
            }
            4 if len > 0 => {
                // Repeat a piece.
                let from = rng.usize(..len);
                let to = rng.usize(from..=len.min(from + 32));
                let piece = data[from..to].to_vec();
                let at = rng.usize(..=len);
                data.splice(at..at, piece);
            }
            5 => {
                // Splice in a piece of another input.
                let other = pool[rng.usize(..pool.len())];
                if !other.is_empty() {
                    let from = rng.usize(..other.len());
                    let to = rng.usize(from..=other.len());
                    let at = rng.usize(..=len);
                    data.splice(at..at, other[from..to].iter().copied());
                }
            }
            _ if len > 0 => data.truncate(rng.usize(..len)),
            _ => {}
        }
    }
    data
}

#[test]
fn spec() {
    replay("spec", 2000);
}

#[test]
fn proxy() {
    replay("proxy", 300);
}

#[test]
fn replay_log() {
    replay("replay", 2000);
}

#[test]
fn api() {
    replay("api", 200);
}
