#!/usr/bin/env bash
# Benchmarks serin's built-in proxy against nginx and HAProxy as reverse
# proxies, all in front of the same nginx origin on loopback; measures each
# one's memory with 1,000 keep-alive connections, and TLS (new connections
# per second, requests per second over kept-alive TLS) against nginx with
# the same certificate. Writes bench/proxy/RESULTS.md.
#
#   bench/proxy/run.sh            # defaults below
#   DURATION=30s ROUNDS=5 bench/proxy/run.sh
#
# Fairness: the proxies get the same number of cores. nginx runs
# `worker_processes $WORKERS`, HAProxy `nbthread $WORKERS` and serin
# $WORKERS worker threads, each a single-threaded Tokio runtime (default:
# nproc). All keep a pool of keep-alive connections to the origin (nginx:
# `keepalive` + HTTP/1.1 upstream; HAProxy: `http-reuse always`; serin: one
# pool per worker), none logs requests. Rounds alternate the proxies so
# background load hits all; the median round is reported.
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
HAPROXY_PORT=${HAPROXY_PORT:-28483}
NGINX_TLS_PORT=${NGINX_TLS_PORT:-28484}
SERIN_TLS_PORT=${SERIN_TLS_PORT:-28485}

need() { command -v "$1" >/dev/null 2>&1; }
if ! need nginx || ! need wrk || ! need haproxy || ! need openssl; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y nginx wrk haproxy openssl || { apt-get update && apt-get install -y nginx wrk haproxy openssl; }
fi
for port in $ORIGIN_PORT $NGINX_PORT $SERIN_PORT $HAPROXY_PORT $NGINX_TLS_PORT $SERIN_TLS_PORT; do
    if ss -Hltn "sport = :$port" | grep -q .; then
        echo "port $port is in use; set ORIGIN_PORT/NGINX_PORT/SERIN_PORT" >&2
        exit 1
    fi
done
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

echo ">>> building the proxy (release)"
(cd "$ROOT" && cargo build --release -p serin-proxy --example bench_proxy)
TARGET_DIR=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
BIN="$TARGET_DIR/release/examples/bench_proxy"

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    [ -f "$WORK/origin.pid" ] && kill "$(cat "$WORK/origin.pid")" 2>/dev/null || true
    [ -f "$WORK/proxy.pid" ] && kill "$(cat "$WORK/proxy.pid")" 2>/dev/null || true
    [ -f "$WORK/tls.pid" ] && kill "$(cat "$WORK/tls.pid")" 2>/dev/null || true
    [ -f "$WORK/haproxy.pid" ] && kill "$(cat "$WORK/haproxy.pid")" 2>/dev/null || true
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

# One certificate (EC P-256, as certbot issues by default) for both TLS
# listeners.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
    -keyout "$WORK/tls.key" -out "$WORK/tls.pem" 2>/dev/null
nginx_conf tls "$WORKERS" "
    upstream origin { server 127.0.0.1:$ORIGIN_PORT; keepalive 256; }
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache off;
    ssl_session_tickets off;
    server {
        listen 127.0.0.1:$NGINX_TLS_PORT ssl http2;
        ssl_certificate $WORK/tls.pem;
        ssl_certificate_key $WORK/tls.key;
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_set_header X-Forwarded-Host \$host;
        }
    }"
cat >"$WORK/haproxy.cfg" <<HAPROXY
global
    nbthread $WORKERS
    maxconn 8000
    pidfile $WORK/haproxy.pid
    daemon
defaults
    mode http
    timeout connect 5s
    timeout client 75s
    timeout server 60s
    timeout http-keep-alive 75s
    option http-keep-alive
    option forwardfor
    http-reuse always
frontend fe
    bind 127.0.0.1:$HAPROXY_PORT
    http-request set-header X-Forwarded-Proto http
    http-request set-header X-Forwarded-Host %[req.hdr(host)]
    default_backend be
backend be
    server origin 127.0.0.1:$ORIGIN_PORT
HAPROXY

nginx -c "$WORK/origin.conf" -e "$WORK/origin.error.log"
nginx -c "$WORK/proxy.conf" -e "$WORK/proxy.error.log"
nginx -c "$WORK/tls.conf" -e "$WORK/tls.error.log"
haproxy -f "$WORK/haproxy.cfg"
# nginx and HAProxy daemonize, which puts each in a session of its own;
# with the kernel's autogroup scheduling (on by default) a session is one
# scheduling group. serin is started in a session of its own too, as a
# service manager would run it: in this script's session it would share
# one group, and so its CPU share and wake-up latency, with wrk, which
# measured as a p99 of 7-22 ms against 4.2-4.5 ms in its own session
# (see the notes).
start_serin() { # log listen [env...]
    local log=$1 listen=$2
    shift 2
    env "$@" setsid "$BIN" "$listen" "http://127.0.0.1:$ORIGIN_PORT" "$WORKERS" 2>"$log" </dev/null &
}
start_serin "$WORK/serin.log" "127.0.0.1:$SERIN_PORT"
SERIN_PID=$!
PIDS+=("$SERIN_PID")
start_serin "$WORK/serin-tls.log" "127.0.0.1:$SERIN_TLS_PORT" \
    BENCH_TLS_CERT="$WORK/tls.pem" BENCH_TLS_KEY="$WORK/tls.key"
SERIN_TLS_PID=$!
PIDS+=("$SERIN_TLS_PID")
for url in "http://127.0.0.1:$ORIGIN_PORT/" "http://127.0.0.1:$NGINX_PORT/" \
    "http://127.0.0.1:$SERIN_PORT/" "http://127.0.0.1:$HAPROXY_PORT/" \
    "https://127.0.0.1:$NGINX_TLS_PORT/" "https://127.0.0.1:$SERIN_TLS_PORT/"; do
    for _ in $(seq 50); do
        curl -fsS --cacert "$WORK/tls.pem" "$url" >/dev/null 2>&1 && break
        sleep 0.1
    done
    curl -fsS --cacert "$WORK/tls.pem" "$url" >/dev/null
done

# `env` and `setsid` exec in place (this script's background jobs lead no
# process group), so the pids are the proxies' own: check.
for pid in "$SERIN_PID" "$SERIN_TLS_PID"; do
    if [ "$(cat "/proc/$pid/comm")" != bench_proxy ] || [ "$(ps -o sid= -p "$pid" | tr -d ' ')" != "$pid" ]; then
        echo "serin ($pid) is not running in a session of its own" >&2
        exit 1
    fi
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

EXTRA=()
bench() { # url conns pids... -> "rps p50 p99 cpu_us_per_request errors"
    local out url=$1 conns=$2 before after
    shift 2
    before=$(cpu_ticks "$@")
    out=$(wrk -t"$THREADS" -c"$conns" -d"$DURATION" --latency "${EXTRA[@]}" "$url")
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
HAPROXY_PID=$(cat "$WORK/haproxy.pid")
declare -a NGINX_RPS NGINX_P50 NGINX_P99 NGINX_CPU SERIN_RPS SERIN_P50 SERIN_P99 SERIN_CPU
declare -a HAPROXY_RPS HAPROXY_P50 HAPROXY_P99 HAPROXY_CPU
echo ">>> warm-up"
for port in $NGINX_PORT $HAPROXY_PORT $SERIN_PORT; do
    wrk -t"$THREADS" -c"$CONNS" -d3s "http://127.0.0.1:$port/" >/dev/null
done
for round in $(seq "$ROUNDS"); do
    # shellcheck disable=SC2086 # a list of pids
    read -r rps p50 p99 cpu errs < <(bench "http://127.0.0.1:$NGINX_PORT/" "$CONNS" $NGINX_PIDS)
    echo "round $round nginx: $rps req/s p50 ${p50}ms p99 ${p99}ms cpu ${cpu}us/req errors: $errs"
    NGINX_RPS+=("$rps"); NGINX_P50+=("$p50"); NGINX_P99+=("$p99"); NGINX_CPU+=("$cpu")
    read -r rps p50 p99 cpu errs < <(bench "http://127.0.0.1:$HAPROXY_PORT/" "$CONNS" "$HAPROXY_PID")
    echo "round $round haproxy: $rps req/s p50 ${p50}ms p99 ${p99}ms cpu ${cpu}us/req errors: $errs"
    HAPROXY_RPS+=("$rps"); HAPROXY_P50+=("$p50"); HAPROXY_P99+=("$p99"); HAPROXY_CPU+=("$cpu")
    read -r rps p50 p99 cpu errs < <(bench "http://127.0.0.1:$SERIN_PORT/" "$CONNS" "$SERIN_PID")
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
haproxy_rss() { rss_kib "$HAPROXY_PID"; }
SERIN_IDLE_RSS=$(serin_rss)
read -r MANY_NGINX_RPS MANY_NGINX_P99 MANY_NGINX_RSS < <(many "$NGINX_PORT" nginx_rss_kib)
read -r MANY_HAPROXY_RPS MANY_HAPROXY_P99 MANY_HAPROXY_RSS < <(many "$HAPROXY_PORT" haproxy_rss)
read -r MANY_SERIN_RPS MANY_SERIN_P99 MANY_SERIN_RSS < <(many "$SERIN_PORT" serin_rss)
echo "nginx: $MANY_NGINX_RPS req/s p99 ${MANY_NGINX_P99}ms peak RSS ${MANY_NGINX_RSS} KiB"
echo "haproxy: $MANY_HAPROXY_RPS req/s p99 ${MANY_HAPROXY_P99}ms peak RSS ${MANY_HAPROXY_RSS} KiB"
echo "serin: $MANY_SERIN_RPS req/s p99 ${MANY_SERIN_P99}ms peak RSS ${MANY_SERIN_RSS} KiB (idle before: ${SERIN_IDLE_RSS} KiB)"

echo ">>> TLS: nginx and serin, one certificate, $CONNS connections"
# New connections: one request each (Connection: close), each a full
# handshake (nginx's session cache and tickets are off; wrk offers no
# resumption).
TLS_NGINX_PIDS=$(pgrep -P "$(cat "$WORK/tls.pid")" | tr '\n' ' ')
EXTRA=(-H "Connection: close")
# shellcheck disable=SC2086 # a list of pids
read -r TLS_NEW_NGINX _ TLS_NEW_NGINX_P99 TLS_NEW_NGINX_CPU _ < <(bench "https://127.0.0.1:$NGINX_TLS_PORT/" "$CONNS" $TLS_NGINX_PIDS)
read -r TLS_NEW_SERIN _ TLS_NEW_SERIN_P99 TLS_NEW_SERIN_CPU _ < <(bench "https://127.0.0.1:$SERIN_TLS_PORT/" "$CONNS" "$SERIN_TLS_PID")
EXTRA=()
# shellcheck disable=SC2086 # a list of pids
read -r TLS_KA_NGINX _ TLS_KA_NGINX_P99 TLS_KA_NGINX_CPU _ < <(bench "https://127.0.0.1:$NGINX_TLS_PORT/" "$CONNS" $TLS_NGINX_PIDS)
read -r TLS_KA_SERIN _ TLS_KA_SERIN_P99 TLS_KA_SERIN_CPU _ < <(bench "https://127.0.0.1:$SERIN_TLS_PORT/" "$CONNS" "$SERIN_TLS_PID")
echo "new TLS connections/s: nginx $TLS_NEW_NGINX serin $TLS_NEW_SERIN"
echo "requests/s over kept-alive TLS: nginx $TLS_KA_NGINX serin $TLS_KA_SERIN"

kill -INT "$SERIN_PID" "$SERIN_TLS_PID"
wait "$SERIN_PID" || true
wait "$SERIN_TLS_PID" || true
tail -1 "$WORK/serin.log"

med() { printf '%s\n' "$@" | median; }
N_RPS=$(med "${NGINX_RPS[@]}"); N_P50=$(med "${NGINX_P50[@]}"); N_P99=$(med "${NGINX_P99[@]}"); N_CPU=$(med "${NGINX_CPU[@]}")
H_RPS=$(med "${HAPROXY_RPS[@]}"); H_P50=$(med "${HAPROXY_P50[@]}"); H_P99=$(med "${HAPROXY_P99[@]}"); H_CPU=$(med "${HAPROXY_CPU[@]}")
S_RPS=$(med "${SERIN_RPS[@]}"); S_P50=$(med "${SERIN_P50[@]}"); S_P99=$(med "${SERIN_P99[@]}"); S_CPU=$(med "${SERIN_CPU[@]}")
ratio() { awk -v s="$1" -v n="$2" 'BEGIN {printf "%.2f", s / n}'; }
RATIO=$(ratio "$S_RPS" "$N_RPS")
H_RATIO=$(ratio "$S_RPS" "$H_RPS")
TLS_NEW_RATIO=$(ratio "$TLS_NEW_SERIN" "$TLS_NEW_NGINX")
TLS_KA_RATIO=$(ratio "$TLS_KA_SERIN" "$TLS_KA_NGINX")
HAPROXY_VERSION=$(haproxy -v 2>&1 | head -1 | awk '{print $3}')
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
| HAProxy | $HAPROXY_VERSION (\`nbthread $WORKERS\`, \`http-reuse always\`) |
| wrk | $(wrk --version 2>&1 | head -1 | awk '{print $2}') |
| serin | $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown), $(rustc --version) , release profile, $WORKERS worker threads (one single-threaded Tokio runtime each) |
| load | wrk -t$THREADS -c$CONNS -d$DURATION, $ROUNDS alternating rounds, median reported |

Everything (origin, proxy, wrk) shares the same $(nproc) cores on loopback, so
absolute numbers are low and noisy; the comparison is what matters. Load
average at the end, the benchmark's own load included: $(cut -d' ' -f1-3 /proc/loadavg).
Each proxy runs in a session (a scheduling group) of its own, wrk in the
script's.

## Throughput and latency, $CONNS keep-alive connections

| proxy | requests/s | p50 ms | p99 ms | proxy CPU per request |
|---|---:|---:|---:|---:|
| nginx $(nginx -v 2>&1 | sed 's/.*nginx\///') | $N_RPS | $N_P50 | $N_P99 | $N_CPU µs |
| HAProxy $HAPROXY_VERSION | $H_RPS | $H_P50 | $H_P99 | $H_CPU µs |
| serin | $S_RPS | $S_P50 | $S_P99 | $S_CPU µs |

serin / nginx throughput: **$RATIO**; serin / HAProxy: **$H_RATIO**.

Per round (nginx, HAProxy, serin requests/s): $(for i in "${!NGINX_RPS[@]}"; do printf '(%s, %s, %s) ' "${NGINX_RPS[$i]}" "${HAPROXY_RPS[$i]}" "${SERIN_RPS[$i]}"; done)

## $MANY keep-alive connections

| proxy | requests/s | p99 ms | peak RSS |
|---|---:|---:|---:|
| nginx (master + workers) | $MANY_NGINX_RPS | $MANY_NGINX_P99 | $(MIB "$MANY_NGINX_RSS") MiB |
| HAProxy | $MANY_HAPROXY_RPS | $MANY_HAPROXY_P99 | $(MIB "$MANY_HAPROXY_RSS") MiB |
| serin | $MANY_SERIN_RPS | $MANY_SERIN_P99 | $(MIB "$MANY_SERIN_RSS") MiB |

serin's RSS before the run (after the $CONNS-connection rounds): $(MIB "$SERIN_IDLE_RSS") MiB.
Target: under 64 MiB with $MANY connections.

## TLS, $CONNS connections, one certificate (EC P-256)

nginx terminates TLS with OpenSSL $(openssl version | awk '{print $2}'), serin with rustls on
aws-lc-rs; wrk negotiates TLS 1.3 with both; both proxy to the same origin
over plain HTTP. One round each (not a median).

| | nginx | serin | serin / nginx |
|---|---:|---:|---:|
| new TLS connections/s (one request each, full handshake) | $TLS_NEW_NGINX | $TLS_NEW_SERIN | $TLS_NEW_RATIO |
| p99 ms, new connections | $TLS_NEW_NGINX_P99 | $TLS_NEW_SERIN_P99 | |
| proxy CPU per new connection | $TLS_NEW_NGINX_CPU µs | $TLS_NEW_SERIN_CPU µs | |
| requests/s over kept-alive TLS | $TLS_KA_NGINX | $TLS_KA_SERIN | $TLS_KA_RATIO |
| p99 ms, kept-alive TLS | $TLS_KA_NGINX_P99 | $TLS_KA_SERIN_P99 | |
| proxy CPU per request, kept-alive TLS | $TLS_KA_NGINX_CPU µs | $TLS_KA_SERIN_CPU µs | |

## Why $WORKERS workers

The proxies are compared on equal cores: nginx gets \`worker_processes
$WORKERS\`, HAProxy \`nbthread $WORKERS\` and serin $WORKERS worker threads,
the machine's core count. nginx with \`auto\` would pick the same number
here; pinning it keeps the comparison fair on machines where \`auto\`
differs from the thread count given to serin.
EOF
if [ -n "$NOTES" ]; then printf '\n%s\n' "$NOTES" >>"$OUT"; fi
echo ">>> wrote $OUT"
