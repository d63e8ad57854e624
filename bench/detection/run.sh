#!/bin/sh
# Runs the detection benchmark in release and prints the table (markdown).
# Every judge and the oracle SPRT on the same synthetic users.
# Usage: bench/detection/run.sh [RUNS_AA] [RUNS_AB] [FILTER] > bench/detection/table.md
set -eu
cd "$(dirname "$0")/../.."
cargo run --release -q -p serin-analysis --example detection -- "${1:-200}" "${2:-100}" "${3:-}"
