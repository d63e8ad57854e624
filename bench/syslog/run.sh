#!/usr/bin/env bash
# The syslog receiver (HAProxy's and nginx's request log) under a steady
# flood on loopback: 20,000 lines a second for 10 seconds by default.
#   bench/syslog/run.sh [RATE] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo run --release -q -p serin-providers --example syslog_flood -- "${1:-20000}" "${2:-10}"
