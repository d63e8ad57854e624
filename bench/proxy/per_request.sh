#!/usr/bin/env bash
# What each proxy spends per request, measured so that the machine's load
# does not move the numbers: user-space instructions per request (callgrind)
# and system calls per request (strace -c), for serin, nginx and HAProxy in
# front of the same nginx origin, one worker each, over a fixed number of
# keep-alive requests (hey -n). Prints a table; writes nothing.
#
#   bench/proxy/per_request.sh                 # defaults below
#   REQUESTS=51200 CONNS=64 bench/proxy/per_request.sh
#   BIN=target/release/examples/bench_proxy bench/proxy/per_request.sh
#   PROXIES=serin KEEP=/tmp/cg bench/proxy/per_request.sh  # one proxy; keep
#                                        # its callgrind profile for
#                                        # callgrind_annotate
#
# Each proxy runs twice: under callgrind (its counters zeroed after a
# warm-up, dumped after the measured run: instructions in user space only;
# the kernel's share is what the system calls below cost), then natively
# under `strace -c -f` for the same run. Both are slow under their tool,
# so the run is bounded by count, not time.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
REQUESTS=${REQUESTS:-20000}
PROXIES=${PROXIES:-serin nginx haproxy}
KEEP=${KEEP:-}
WARMUP=${WARMUP:-2048}
CONNS=${CONNS:-16}
ORIGIN_PORT=${ORIGIN_PORT:-28580}
if [ $((REQUESTS % CONNS)) -ne 0 ] || [ $((WARMUP % CONNS)) -ne 0 ]; then
    echo "REQUESTS and WARMUP must be multiples of CONNS" >&2
    exit 1
fi
PROXY_PORT=${PROXY_PORT:-28581}

need() { command -v "$1" >/dev/null 2>&1; }
if ! need nginx || ! need haproxy || ! need hey || ! need valgrind || ! need strace; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y nginx haproxy hey valgrind strace ||
        { apt-get update && apt-get install -y nginx haproxy hey valgrind strace; }
fi
for port in $ORIGIN_PORT $PROXY_PORT; do
    if ss -Hltn "sport = :$port" | grep -q .; then
        echo "port $port is in use; set ORIGIN_PORT/PROXY_PORT" >&2
        exit 1
    fi
done

if [ -z "${BIN:-}" ]; then
    echo ">>> building the proxy (release)" >&2
    (cd "$ROOT" && cargo build --release -p serin-proxy --example bench_proxy) >&2
    TARGET_DIR=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
    BIN="$TARGET_DIR/release/examples/bench_proxy"
fi

WORK=$(mktemp -d)
PROXY_PID=""
cleanup() {
    [ -n "$PROXY_PID" ] && kill "$PROXY_PID" 2>/dev/null || true
    [ -f "$WORK/origin.pid" ] && kill "$(cat "$WORK/origin.pid")" 2>/dev/null || true
    sleep 0.5
    rm -rf "$WORK"
}
trap cleanup EXIT

# nginx in the foreground with one process (master_process off), so a tool
# wrapping the command sees the process that serves.
nginx_conf() { # name body
    cat >"$WORK/$1.conf" <<EOF
worker_processes 1;
pid $WORK/$1.pid;
error_log $WORK/$1.error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/$1-body;
    proxy_temp_path $WORK/$1-proxy;
    fastcgi_temp_path $WORK/$1-fastcgi;
    uwsgi_temp_path $WORK/$1-uwsgi;
    scgi_temp_path $WORK/$1-scgi;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    $2
}
EOF
}
nginx_conf origin "server { listen 127.0.0.1:$ORIGIN_PORT; location / { return 200 \"ok\"; } }"
nginx_conf proxy "
    upstream origin { server 127.0.0.1:$ORIGIN_PORT; keepalive 256; }
    server {
        listen 127.0.0.1:$PROXY_PORT;
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
    nbthread 1
    maxconn 8000
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
    bind 127.0.0.1:$PROXY_PORT
    http-request set-header X-Forwarded-Proto http
    http-request set-header X-Forwarded-Host %[req.hdr(host)]
    default_backend be
backend be
    server origin 127.0.0.1:$ORIGIN_PORT
HAPROXY

nginx -c "$WORK/origin.conf" -e "$WORK/origin.error.log"

proxy_cmd() { # name -> PROXY_CMD: the command line of one proxy, one worker
    case $1 in
    serin) PROXY_CMD=("$BIN" "127.0.0.1:$PROXY_PORT" "http://127.0.0.1:$ORIGIN_PORT" 1) ;;
    nginx) PROXY_CMD=(nginx -c "$WORK/proxy.conf" -e "$WORK/proxy.error.log" -g "daemon off; master_process off;") ;;
    haproxy) PROXY_CMD=(haproxy -db -f "$WORK/haproxy.cfg") ;;
    esac
}

wait_up() {
    for _ in $(seq 600); do
        curl -fsS "http://127.0.0.1:$PROXY_PORT/" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "the proxy did not answer" >&2
    return 1
}

stop_proxy() {
    kill -INT "$PROXY_PID" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$PROXY_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$PROXY_PID" 2>/dev/null || true
    wait "$PROXY_PID" 2>/dev/null || true
    PROXY_PID=""
}

load() { # requests (a multiple of CONNS: hey sends n / c per connection)
    hey -n "$1" -c "$CONNS" "http://127.0.0.1:$PROXY_PORT/" >"$WORK/hey.out"
    if ! grep -q "\[200\].*$1 responses" "$WORK/hey.out"; then
        echo "not every request was answered 200:" >&2
        cat "$WORK/hey.out" >&2
        return 1
    fi
}

# User-space instructions per request: callgrind, counters zeroed after the
# warm-up and dumped after the measured run.
instructions() { # name
    proxy_cmd "$1"
    (cd "$WORK" && exec valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.$1.%p" \
        "${PROXY_CMD[@]}" >"$WORK/vg.$1.log" 2>&1) &
    PROXY_PID=$!
    wait_up
    load "$WARMUP"
    (cd "$WORK" && callgrind_control -z "$PROXY_PID" >/dev/null)
    load "$REQUESTS"
    (cd "$WORK" && callgrind_control -d "$PROXY_PID" >/dev/null)
    sleep 1
    local total
    # The last dump holds the measured run only (zeroed before it).
    total=$(for f in "$WORK"/cg."$1".*; do
        awk '/^summary:/ {print $2}' "$f"
    done | sort -n | tail -1)
    stop_proxy
    if [ -n "$KEEP" ]; then
        mkdir -p "$KEEP"
        cp "$WORK"/cg."$1".* "$KEEP"/
    fi
    rm -f "$WORK"/cg."$1".*
    awk -v t="$total" -v n="$REQUESTS" 'BEGIN {printf "%.0f", t / n}'
}

# System calls per request: strace -c over the measured run, by name.
syscalls() { # name
    proxy_cmd "$1"
    (cd "$WORK" && exec "${PROXY_CMD[@]}" >"$WORK/native.$1.log" 2>&1) &
    PROXY_PID=$!
    wait_up
    load "$WARMUP"
    strace -c -f -p "$PROXY_PID" -o "$WORK/strace.$1" 2>/dev/null &
    local strace_pid=$!
    # Attaching to every thread takes a moment.
    sleep 1
    load "$REQUESTS"
    kill -INT "$strace_pid"
    wait "$strace_pid" 2>/dev/null || true
    stop_proxy
    # "calls" is the fourth column (the fifth when errors are counted).
    awk -v n="$REQUESTS" '
        $NF ~ /^[a-z_0-9]+$/ && $4 ~ /^[0-9]+$/ && $NF != "total" {
            calls[$NF] = $4
        }
        $NF == "total" { total = $4 }
        END {
            printf "%.2f", total / n
            for (s in calls) if (calls[s] / n >= 0.01) printf " %s=%.2f", s, calls[s] / n
        }' "$WORK/strace.$1"
}

printf '%-8s %14s  %s\n' proxy "instr/request" "syscalls/request (by name)"
for name in $PROXIES; do
    ins=$(instructions "$name")
    sys=$(syscalls "$name")
    printf '%-8s %14s  %s\n' "$name" "$ins" "$sys"
done
