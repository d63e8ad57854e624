#!/usr/bin/env bash
# Coverage-guided fuzzing of one serin-fuzz target with AFL++ (cargo-afl), on
# the stable toolchain. See docs/fuzzing.md.
#
#   cargo install cargo-afl && cargo afl config --build      # once
#   cargo afl build --release -p serin-fuzz --features afl   # after each change
#   scripts/fuzz.sh TARGET [SECONDS]                         # spec, proxy, replay or api
#
# Runs afl-fuzz for SECONDS (default 600) from the checked-in corpus
# (crates/fuzz/corpus/TARGET), then minimises what it found back into that
# corpus (afl-cmin) and copies every crash to crates/fuzz/regressions/TARGET,
# where `cargo test -p serin-fuzz` replays it. The run's statistics stay in
# TARGET_DIR/fuzz/TARGET/default/fuzzer_stats.
set -euo pipefail
cd "$(dirname "$0")/.."

target=${1:?usage: scripts/fuzz.sh spec|proxy|replay|api [SECONDS]}
seconds=${2:-600}
case "$target" in
  spec | replay) timeout_ms=2000 ;;
  proxy | api) timeout_ms=30000 ;;
  *) echo "unknown target $target: spec, proxy, replay or api" >&2; exit 2 ;;
esac

target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
binary="$target_dir/release/afl-$target"
[ -x "$binary" ] || { echo "$binary missing: cargo afl build --release -p serin-fuzz --features afl" >&2; exit 2; }
corpus=crates/fuzz/corpus/$target
regressions=crates/fuzz/regressions/$target
out="$target_dir/fuzz/$target"
rm -rf "$out"
mkdir -p "$out" "$regressions"

# In a container afl-system-config cannot tune the kernel: run without it.
export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_AFFINITY=1
export AFL_NO_UI=1 AFL_SKIP_CRASHES=1
# Dictionary of the target's tokens, when there is one.
dict=()
[ -f "crates/fuzz/dict/$target.dict" ] && dict=(-x "crates/fuzz/dict/$target.dict")

nice cargo afl fuzz -i "$corpus" -o "$out" -t "$timeout_ms" -m none -V "$seconds" "${dict[@]}" -- "$binary" \
  > "$out.log" 2>&1 || { tail -20 "$out.log" >&2; exit 1; }

# Every crash becomes a regression test (named after its hash, so a rerun
# does not duplicate it).
for crash in "$out"/default/crashes/id:*; do
  [ -f "$crash" ] || continue
  cp "$crash" "$regressions/crash-$(sha1sum "$crash" | cut -c1-12)"
done

# The queue, minimised to the inputs that keep its coverage, is the corpus.
# (afl-cmin.bash: the Python afl-cmin finds no coverage in these binaries.)
minimised="$out/cmin"
afl_bin=$(dirname "$(ls -d "${XDG_DATA_HOME:-$HOME/.local/share}"/afl.rs/rustc-*/afl.rs-*/afl/bin/afl-cmin.bash | tail -1)")
PATH="$afl_bin:$PATH" AFL_PATH="$afl_bin" nice "$afl_bin/afl-cmin.bash" -i "$out/default/queue" -o "$minimised" \
  -t "$timeout_ms" -m none -- "$binary" >> "$out.log" 2>&1
if [ -n "$(ls -A "$minimised" 2>/dev/null)" ]; then
  rm -f "$corpus"/*
  for input in "$minimised"/*; do
    cp "$input" "$corpus/$(sha1sum "$input" | cut -c1-12)"
  done
fi

grep -E '^(run_time|execs_done|execs_per_sec|corpus_count|saved_crashes|saved_hangs|bitmap_cvg|edges_found)' \
  "$out/default/fuzzer_stats"
echo "corpus: $(ls "$corpus" | wc -l) inputs, $(du -sh "$corpus" | cut -f1); regressions: $(ls "$regressions" | wc -l)"
