#!/usr/bin/env bash
# 1,000 canaries on one `serin serve`, each with its own proxy listener on
# loopback and a rollout ticking every 10 s; reports start-up time, CPU and
# memory of the daemon, the API's latency and the state directory's size.
#
#   bench/daemon/run.sh                 # 1000 canaries, 120 s
#   N=200 DURATION=60 bench/daemon/run.sh
#   TRAFFIC=1 bench/daemon/run.sh       # plus a little traffic on 20 canaries (needs curl)
set -euo pipefail
cd "$(dirname "$0")/../.."

N=${N:-1000}
DURATION=${DURATION:-120}
BASE_PORT=${BASE_PORT:-21000}
API=${API:-127.0.0.1:29480}
BIN=${BIN:-target/release/serin}
[ -x "$BIN" ] || cargo build --release -p serin

work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; kill "$backend" 2>/dev/null || true; rm -rf "$work"' EXIT
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# One backend serves as every stable and canary upstream.
python3 -m http.server 29001 --bind 127.0.0.1 --directory "$work" >/dev/null 2>&1 &
backend=$!

# The parser takes at most 256 documents per file: 200 canaries a file.
for i in $(seq 1 "$N"); do
  file="$work/canaries-$(( (i - 1) / 200 )).yaml"
  cat >>"$file" <<YAML
---
apiVersion: serin.dev/v1alpha1
kind: Canary
metadata:
  name: app-$i
spec:
  provider: builtin
  service:
    listen: 127.0.0.1:$((BASE_PORT + i))
  upstreams:
    stable: http://127.0.0.1:29001
    canary: http://127.0.0.1:29001
    revision: v2
  analysis:
    interval: 10s
    threshold: 5
    stepWeights: [5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60, 65, 70, 75, 80, 85, 90, 95]
YAML
done

clk=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

start=$(date +%s.%N)
SERIN_TOKEN=bench "$BIN" serve "$work"/canaries-*.yaml --api "$API" --state-dir "$work/state" 2>"$work/serve.log" &
pid=$!
until curl -sf "http://$API/healthz" >/dev/null 2>&1; do
  kill -0 "$pid" 2>/dev/null || { cat "$work/serve.log"; exit 1; }
  sleep 0.1
done
ready=$(date +%s.%N)
echo "canaries: $N, start-up until the API answers: $(echo "$ready - $start" | bc) s, RSS $(( $(rss_kib "$pid") / 1024 )) MiB"

if [ "${TRAFFIC:-0}" = 1 ]; then
  for i in $(seq 1 20); do
    ( end=$((SECONDS + DURATION)); while [ $SECONDS -lt $end ]; do
        curl -s -o /dev/null "http://127.0.0.1:$((BASE_PORT + i))/"; sleep 0.1; done ) &
  done
fi

t0=$(cpu_ticks "$pid"); w0=$(date +%s.%N); peak=0
for _ in $(seq 1 $((DURATION / 10))); do
  sleep 10
  rss=$(rss_kib "$pid"); [ "$rss" -gt "$peak" ] && peak=$rss
  progressing=$(curl -s "http://$API/api/v1/canaries" | grep -o '"phase":"Progressing"' | wc -l)
  echo "  t=+$(printf %.0f "$(echo "$(date +%s.%N) - $w0" | bc)")s RSS $((rss / 1024)) MiB, progressing $progressing"
done
t1=$(cpu_ticks "$pid"); w1=$(date +%s.%N)
cpu=$(echo "scale=1; 100 * ($t1 - $t0) / $clk / ($w1 - $w0)" | bc)
echo "CPU over ${DURATION}s: ${cpu}% of one core; peak RSS $((peak / 1024)) MiB ($((peak / N)) KiB per canary)"

lat() { curl -s -o /dev/null -w '%{time_total}' "$1"; }
echo "GET /api/v1/canaries (all $N): $(lat "http://$API/api/v1/canaries") s; GET one: $(lat "http://$API/api/v1/canaries/app-1") s; history: $(lat "http://$API/api/v1/canaries/app-1/history") s"
echo "state directory: $(du -sh "$work/state" | cut -f1)"
weights=$(curl -s "http://$API/api/v1/canaries" | grep -o '"canaryWeight":[0-9]*' | cut -d: -f2 | sort -n | uniq -c | tr '\n' ' ')
echo "weights (count weight): $weights"
