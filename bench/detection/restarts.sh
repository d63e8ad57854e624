#!/bin/sh
# False rollbacks of A/A rollouts killed every 2-8 s: the judge resumed from
# its saved evidence against a judge started afresh at each restart.
# Usage: bench/detection/restarts.sh [RUNS] [ALPHA]
set -eu
cd "$(dirname "$0")/../.."
cargo run --release -q -p serin-analysis --example restarts -- "${1:-300}" "${2:-0.05}"
