#!/usr/bin/env bash
# Benchmarks serin's built-in proxy against nginx as a reverse proxy, both in
# front of the same nginx origin on loopback, and measures serin's memory with
# 1,000 keep-alive connections. Writes bench/proxy/RESULTS.md.
#
#   bench/proxy/run.sh            # defaults below
#   DURATION=30s ROUNDS=5 bench/proxy/run.sh
#
# Fairness: the proxies get the same number of cores. nginx runs
# `worker_processes $WORKERS` and serin $WORKERS worker threads, each a
# single-threaded Tokio runtime (default: nproc). Both keep a pool of
# keep-alive connections to the origin (nginx: `keepalive` + HTTP/1.1
# upstream; serin: one pool per worker), neither logs requests. Rounds alternate nginx and serin so background load hits both;
# the median round is reported.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT="$ROOT/bench/proxy/RESULTS.md"
WORKERS=${WORKERS:-$(nproc)}
THREADS=${THREADS:-2}
CONNS=${CONNS:-64}
DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-3}
MANY=${MANY:-1000}
ORIGIN_PORT=${ORIGIN_PORT:-28480}
NGINX_PORT=${NGINX_PORT:-28481}
SERIN_PORT=${SERIN_PORT:-28482}

need() { command -v "$1" >/dev/null 2>&1; }
if ! need nginx || ! need wrk; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y nginx wrk || { apt-get update && apt-get install -y nginx wrk; }
fi
for port in $ORIGIN_PORT $NGINX_PORT $SERIN_PORT; do
    if ss -Hltn "sport = :$port" | grep -q .; then
        echo "port $port is in use; set ORIGIN_PORT/NGINX_PORT/SERIN_PORT" >&2
        exit 1
    fi
done
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

echo ">>> building the proxy (release)"
(cd "$ROOT" && cargo build --release -p serin-proxy --example bench_proxy)
BIN="$ROOT/target/release/examples/bench_proxy"

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    [ -f "$WORK/origin.pid" ] && kill "$(cat "$WORK/origin.pid")" 2>/dev/null || true
    [ -f "$WORK/proxy.pid" ] && kill "$(cat "$WORK/proxy.pid")" 2>/dev/null || true
    sleep 0.5
    rm -rf "$WORK"
}
trap cleanup EXIT

nginx_conf() { # name workers body
    cat >"$WORK/$1.conf" <<EOF
worker_processes $2;
pid $WORK/$1.pid;
error_log $WORK/$1.error.log warn;
daemon on;
events { worker_connections 8192; multi_accept on; }
http {
    access_log off;
    client_body_temp_path $WORK/$1-body;
    proxy_temp_path $WORK/$1-proxy;
    fastcgi_temp_path $WORK/$1-fastcgi;
    uwsgi_temp_path $WORK/$1-uwsgi;
    scgi_temp_path $WORK/$1-scgi;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    $3
}
EOF
}

# The origin: as cheap as an HTTP answer gets, so the proxies are measured.
nginx_conf origin "$WORKERS" "server { listen 127.0.0.1:$ORIGIN_PORT; location / { return 200 \"ok\"; } }"
nginx_conf proxy "$WORKERS" "
    upstream origin { server 127.0.0.1:$ORIGIN_PORT; keepalive 256; }
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_set_header X-Forwarded-Host \$host;
        }
    }"

nginx -c "$WORK/origin.conf" -e "$WORK/origin.error.log"
nginx -c "$WORK/proxy.conf" -e "$WORK/proxy.error.log"
"$BIN" "127.0.0.1:$SERIN_PORT" "http://127.0.0.1:$ORIGIN_PORT" "$WORKERS" 2>"$WORK/serin.log" &
SERIN_PID=$!
PIDS+=("$SERIN_PID")
for port in $ORIGIN_PORT $NGINX_PORT $SERIN_PORT; do
    for _ in $(seq 50); do
        curl -fsS "http://127.0.0.1:$port/" >/dev/null 2>&1 && break
        sleep 0.1
    done
    curl -fsS "http://127.0.0.1:$port/" >/dev/null
done

# wrk prints latency in us/ms/s; normalise to milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) n = n / 1000; else if (v ~ /ms$/) n = n; else if (v ~ /s$/) n = n * 1000
        printf "%.2f", n }'
}

# CPU time (user + system, clock ticks) of the given processes.
TICK=$(getconf CLK_TCK)
cpu_ticks() {
    local t=0 p s
    for p in "$@"; do
        read -r -a s < <(cut -d' ' -f14,15 "/proc/$p/stat")
        t=$((t + s[0] + s[1]))
    done
    echo "$t"
}

bench() { # port conns pids... -> "rps p50 p99 cpu_us_per_request errors"
    local out port=$1 conns=$2 before after
    shift 2
    before=$(cpu_ticks "$@")
    out=$(wrk -t"$THREADS" -c"$conns" -d"$DURATION" --latency "http://127.0.0.1:$port/")
    after=$(cpu_ticks "$@")
    local rps p50 p99 errs reqs cpu
    rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
    p50=$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")
    p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
    errs=$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out" | tr '\n' ' ')
    reqs=$(awk '/requests in/ {print $1}' <<<"$out")
    cpu=$(awk -v a="$before" -v b="$after" -v r="$reqs" -v t="$TICK" 'BEGIN {printf "%.1f", (b - a) / t / r * 1e6}')
    echo "$rps $p50 $p99 $cpu ${errs:-none}"
}

median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
nginx_rss_kib() { # sum of the proxy's master and workers
    local master total=0
    master=$(cat "$WORK/proxy.pid")
    for pid in $master $(pgrep -P "$master"); do
        total=$((total + $(rss_kib "$pid")))
    done
    echo "$total"
}

NGINX_PIDS=$(pgrep -P "$(cat "$WORK/proxy.pid")" | tr '\n' ' ')
declare -a NGINX_RPS NGINX_P50 NGINX_P99 NGINX_CPU SERIN_RPS SERIN_P50 SERIN_P99 SERIN_CPU
echo ">>> warm-up"
wrk -t"$THREADS" -c"$CONNS" -d3s "http://127.0.0.1:$NGINX_PORT/" >/dev/null
wrk -t"$THREADS" -c"$CONNS" -d3s "http://127.0.0.1:$SERIN_PORT/" >/dev/null
for round in $(seq "$ROUNDS"); do
    # shellcheck disable=SC2086 # a list of pids
    read -r rps p50 p99 cpu errs < <(bench "$NGINX_PORT" "$CONNS" $NGINX_PIDS)
    echo "round $round nginx: $rps req/s p50 ${p50}ms p99 ${p99}ms cpu ${cpu}us/req errors: $errs"
    NGINX_RPS+=("$rps"); NGINX_P50+=("$p50"); NGINX_P99+=("$p99"); NGINX_CPU+=("$cpu")
    read -r rps p50 p99 cpu errs < <(bench "$SERIN_PORT" "$CONNS" "$SERIN_PID")
    echo "round $round serin: $rps req/s p50 ${p50}ms p99 ${p99}ms cpu ${cpu}us/req errors: $errs"
    SERIN_RPS+=("$rps"); SERIN_P50+=("$p50"); SERIN_P99+=("$p99"); SERIN_CPU+=("$cpu")
done

echo ">>> $MANY keep-alive connections"
many() { # port pid-function -> "rps p99 peak_rss_kib"
    local port=$1 rssfn=$2 peak=0 r
    wrk -t"$THREADS" -c"$MANY" -d"$DURATION" --latency "http://127.0.0.1:$port/" >"$WORK/many.out" &
    local wrk_pid=$!
    while kill -0 "$wrk_pid" 2>/dev/null; do
        r=$($rssfn)
        [ "$r" -gt "$peak" ] && peak=$r
        sleep 0.25
    done
    wait "$wrk_pid"
    local rps p99
    rps=$(awk '/^Requests\/sec/ {print $2}' "$WORK/many.out")
    p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$WORK/many.out")")
    echo "$rps $p99 $peak"
}
serin_rss() { rss_kib "$SERIN_PID"; }
SERIN_IDLE_RSS=$(serin_rss)
read -r MANY_NGINX_RPS MANY_NGINX_P99 MANY_NGINX_RSS < <(many "$NGINX_PORT" nginx_rss_kib)
read -r MANY_SERIN_RPS MANY_SERIN_P99 MANY_SERIN_RSS < <(many "$SERIN_PORT" serin_rss)
echo "nginx: $MANY_NGINX_RPS req/s p99 ${MANY_NGINX_P99}ms peak RSS ${MANY_NGINX_RSS} KiB"
echo "serin: $MANY_SERIN_RPS req/s p99 ${MANY_SERIN_P99}ms peak RSS ${MANY_SERIN_RSS} KiB (idle before: ${SERIN_IDLE_RSS} KiB)"

kill -INT "$SERIN_PID"
wait "$SERIN_PID" || true
tail -1 "$WORK/serin.log"

med() { printf '%s\n' "$@" | median; }
N_RPS=$(med "${NGINX_RPS[@]}"); N_P50=$(med "${NGINX_P50[@]}"); N_P99=$(med "${NGINX_P99[@]}"); N_CPU=$(med "${NGINX_CPU[@]}")
S_RPS=$(med "${SERIN_RPS[@]}"); S_P50=$(med "${SERIN_P50[@]}"); S_P99=$(med "${SERIN_P99[@]}"); S_CPU=$(med "${SERIN_CPU[@]}")
RATIO=$(awk -v s="$S_RPS" -v n="$N_RPS" 'BEGIN {printf "%.2f", s / n}')
MIB() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }

# Hand-written notes below the marker survive regeneration.
NOTES=""
[ -f "$OUT" ] && NOTES=$(sed -n '/^<!-- notes -->/,$p' "$OUT")

cat >"$OUT" <<EOF
# serin proxy benchmark

Generated by \`bench/proxy/run.sh\` on $(date -u +"%Y-%m-%d %H:%M UTC").

| | |
|---|---|
| machine | $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo) |
| kernel | $(uname -r) |
| nginx | $(nginx -v 2>&1 | sed 's/.*nginx\///') (origin and reverse proxy, \`worker_processes $WORKERS\`) |
| wrk | $(wrk --version 2>&1 | head -1 | awk '{print $2}') |
| serin | $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown), $(rustc --version) , release profile, $WORKERS worker threads (one single-threaded Tokio runtime each) |
| load | wrk -t$THREADS -c$CONNS -d$DURATION, $ROUNDS alternating rounds, median reported |

Everything (origin, proxy, wrk) shares the same $(nproc) cores on loopback, so
absolute numbers are low and noisy; the comparison is what matters. The
machine was shared with other builds while this ran (load average at the
end: $(cut -d' ' -f1-3 /proc/loadavg)).

## Throughput and latency, $CONNS keep-alive connections

| proxy | requests/s | p50 ms | p99 ms | proxy CPU per request |
|---|---:|---:|---:|---:|
| nginx $(nginx -v 2>&1 | sed 's/.*nginx\///') | $N_RPS | $N_P50 | $N_P99 | $N_CPU µs |
| serin | $S_RPS | $S_P50 | $S_P99 | $S_CPU µs |

serin / nginx throughput: **$RATIO**.

Per round (nginx, serin requests/s): $(for i in "${!NGINX_RPS[@]}"; do printf '(%s, %s) ' "${NGINX_RPS[$i]}" "${SERIN_RPS[$i]}"; done)

## $MANY keep-alive connections

| proxy | requests/s | p99 ms | peak RSS |
|---|---:|---:|---:|
| nginx (master + workers) | $MANY_NGINX_RPS | $MANY_NGINX_P99 | $(MIB "$MANY_NGINX_RSS") MiB |
| serin | $MANY_SERIN_RPS | $MANY_SERIN_P99 | $(MIB "$MANY_SERIN_RSS") MiB |

serin's RSS before the run (after the $CONNS-connection rounds): $(MIB "$SERIN_IDLE_RSS") MiB.
Target: under 64 MiB with $MANY connections.

## Why $WORKERS nginx workers

The proxies are compared on equal cores: nginx gets \`worker_processes
$WORKERS\` and serin $WORKERS worker threads, the machine's core count. nginx
with \`auto\` would pick the same number here; pinning it keeps the comparison
fair on machines where \`auto\` differs from the thread count given to serin.
EOF
if [ -n "$NOTES" ]; then printf '\n%s\n' "$NOTES" >>"$OUT"; fi
echo ">>> wrote $OUT"
