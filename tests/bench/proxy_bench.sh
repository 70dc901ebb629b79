#!/usr/bin/env bash
# proxy_bench.sh — sluice against nginx as a reverse proxy, in front of the same fast upstream.
#
# The upstream is nginx answering a fixed chat completion (`return 200 '...'`). The same
# non-streaming POST /v1/chat/completions is driven with wrk (same threads, connections and
# duration) through (a) nginx proxy_pass with upstream keep-alive and (b) sluice, and once
# straight at the upstream for reference. Prints a table (requests/s, p50, p99, errors) and
# the sluice/nginx ratios. Not a test: it asserts nothing about speed.
#
# usage: tests/bench/proxy_bench.sh [BUILD_DIR]      (default build/)
# env:   BENCH_DURATION=5 (s per run)  BENCH_ROUNDS=3  BENCH_CONNECTIONS=64  BENCH_THREADS=2  BENCH_WORKERS=1
#        (proxy worker processes/threads, the same for nginx and sluice)  SLUICE=path/to/sluice
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$ROOT/build}
SLUICE=${SLUICE:-$BUILD/gateway/sluice}
DUR=${BENCH_DURATION:-5}
ROUNDS=${BENCH_ROUNDS:-3}
CONNS=${BENCH_CONNECTIONS:-64}
THREADS=${BENCH_THREADS:-2}
WORKERS=${BENCH_WORKERS:-1}
NGINX=${NGINX:-/usr/sbin/nginx}
WRK=${WRK:-wrk}

PY=python3; [ -x /usr/bin/python3 ] && PY=/usr/bin/python3
for p in "$NGINX" "$WRK" "$PY" curl; do
    command -v "$p" >/dev/null || { echo "proxy_bench: $p not found" >&2; exit 2; }
done

T=$(mktemp -d "${TMPDIR:-/tmp}/sluice-bench.XXXXXX")
PIDS=()
# Signal only live children of this shell: a PID of ours that exited may be reused by now.
ours() {
    local st
    st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    st=${st##*) }
    set -- $st
    [ "$1" != Z ] && [ "$2" = "$$" ]
}
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do ours "$pid" && kill -TERM "$pid" 2>/dev/null; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
    rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { "$PY" "$ROOT/tests/integration/free_port.py"; }
wait_http() { # URL: until it answers any status (10 s)
    local i
    for ((i = 0; i < 100; i++)); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$1")" != 000 ] && return 0
        sleep 0.1
    done
    return 1
}

UP_PORT=$(free_port)
NGX_PORT=$(free_port)
GW_PORT=$(free_port)

RESPONSE='{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"bench-model","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I help you today?"},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":9,"total_tokens":21}}'
BODY='{"model":"demo","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Hello there, how are you?"}],"temperature":0.7,"max_tokens":64}'

# nginx with its own prefix, in the foreground: nginx_conf NAME WORKERS HTTP-BLOCK-BODY
start_nginx() {
    local name=$1 workers=$2 http=$3 dir=$T/$1
    mkdir -p "$dir/logs" "$dir/tmp"
    cat >"$dir/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes $workers;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 4096; multi_accept on; }
http {
    access_log off;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    keepalive_requests 1000000;
$http
}
EOF
    "$NGINX" -p "$dir" -c "$dir/nginx.conf" -e "$dir/logs/error.log" &
    PIDS+=($!)
}

start_nginx upstream 1 "    server {
        listen 127.0.0.1:$UP_PORT;
        location / { default_type application/json; return 200 '$RESPONSE'; }
    }"
start_nginx proxy "$WORKERS" "    upstream bench_up { server 127.0.0.1:$UP_PORT; keepalive 64; }
    server {
        listen 127.0.0.1:$NGX_PORT;
        location / {
            proxy_pass http://bench_up;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
        }
    }"
wait_http "http://127.0.0.1:$UP_PORT/" || { echo "proxy_bench: upstream nginx did not start: $(cat "$T"/upstream/logs/error.log)" >&2; exit 1; }
wait_http "http://127.0.0.1:$NGX_PORT/" || { echo "proxy_bench: proxy nginx did not start: $(cat "$T"/proxy/logs/error.log)" >&2; exit 1; }

have_sluice=0
if [ -x "$SLUICE" ]; then
    cat >"$T/sluice.yaml" <<EOF
listen:
  - address: 127.0.0.1:$GW_PORT
server: { workers: $WORKERS }
log: { access_log: "off" }
store: { backend: memory, path: $T/sluice.journal }
upstreams:
  up:
    type: openai
    base_url: http://127.0.0.1:$UP_PORT/v1
    api_key_env: BENCH_KEY
models:
  demo: { targets: [ { upstream: up, model: bench-model } ] }
EOF
    BENCH_KEY=sk-bench SLUICE_SECRET=${SLUICE_SECRET:-bench-secret-0123456789abcdef} "$SLUICE" serve -c "$T/sluice.yaml" >"$T/sluice.log" 2>&1 &
    PIDS+=($!)
    if wait_http "http://127.0.0.1:$GW_PORT/v1/models"; then have_sluice=1
    else echo "proxy_bench: sluice did not start; its log:" >&2; tail -n 20 "$T/sluice.log" >&2; fi
else
    echo "proxy_bench: no sluice binary at $SLUICE" >&2
fi

cat >"$T/post.lua" <<EOF
wrk.method = "POST"
wrk.body = '$BODY'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-bench-client"
EOF

# run_wrk NAME URL ROUND: a 2 s warm-up in round 1, then the measured run; appends
# "NAME rps p50_ms p99_ms errors" to $T/results.
run_wrk() {
    local name=$1 url=$2 round=$3
    [ "$round" = 1 ] && "$WRK" -t"$THREADS" -c"$CONNS" -d2s -s "$T/post.lua" "$url" >/dev/null 2>&1
    "$WRK" -t"$THREADS" -c"$CONNS" -d"${DUR}s" --latency -s "$T/post.lua" "$url" >"$T/$name.$round.wrk" 2>&1
    "$PY" - "$name" "$T/$name.$round.wrk" >>"$T/results" <<'PY'
import re, sys
name, t = sys.argv[1], open(sys.argv[2]).read()
def ms(v, unit):
    return float(v) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]
rps = re.search(r"Requests/sec:\s+([\d.]+)", t)
p = {q: re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s|m)\b" % q, t, re.M) for q in ("50", "99")}
non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", t)
sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", t)
errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, sock.groups())) if sock else 0)
if rps and all(p.values()):
    print(name, rps.group(1), "%.3f" % ms(*p["50"].groups()), "%.3f" % ms(*p["99"].groups()), errors)
PY
}

# Each proxy must answer the POST with the upstream's body before it is timed.
for u in "http://127.0.0.1:$NGX_PORT" $([ $have_sluice = 1 ] && echo "http://127.0.0.1:$GW_PORT"); do
    got=$(curl -s --max-time 5 -H 'content-type: application/json' --data "$BODY" "$u/v1/chat/completions")
    case $got in *chatcmpl-bench*) ;; *) echo "proxy_bench: $u answered: ${got:0:300}" >&2 ;; esac
done

echo "# wrk -t$THREADS -c$CONNS -d${DUR}s x $ROUNDS rounds (median shown), POST /v1/chat/completions (${#BODY} B body, ${#RESPONSE} B answer), proxy workers: $WORKERS, $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg)"
: >"$T/results"
# Rounds interleave the targets, so a change in the machine's load hits all of them alike.
for ((r = 1; r <= ROUNDS; r++)); do
    run_wrk direct "http://127.0.0.1:$UP_PORT/v1/chat/completions" "$r"
    run_wrk nginx "http://127.0.0.1:$NGX_PORT/v1/chat/completions" "$r"
    [ $have_sluice = 1 ] && run_wrk sluice "http://127.0.0.1:$GW_PORT/v1/chat/completions" "$r"
done
"$PY" - "$T/results" <<'PY'
import statistics, sys
res = {}
for line in open(sys.argv[1]):
    name, rps, p50, p99, err = line.split()
    res.setdefault(name, []).append((float(rps), float(p50), float(p99), int(err)))
def med(name, i):
    return statistics.median(r[i] for r in res[name]) if name in res else None
print("| %-18s | %12s | %17s | %9s | %9s | %7s |" % ("target", "requests/s", "rounds min-max", "p50 ms", "p99 ms", "errors"))
print("|%s|%s|%s|%s|%s|%s|" % ("-" * 20, "-" * 14, "-" * 19, "-" * 11, "-" * 11, "-" * 9))
for name, label in (("direct", "upstream (direct)"), ("nginx", "nginx proxy_pass"), ("sluice", "sluice")):
    if name not in res:
        print("| %-18s | %12s | %17s | %9s | %9s | %7s |" % (label, "n/a", "", "n/a", "n/a", "n/a"))
        continue
    rs = [r[0] for r in res[name]]
    print("| %-18s | %12.0f | %17s | %9.2f | %9.2f | %7d |" % (label, med(name, 0), "%.0f-%.0f" % (min(rs), max(rs)),
          med(name, 1), med(name, 2), sum(r[3] for r in res[name])))
def ratio(i):
    s, n = med("sluice", i), med("nginx", i)
    return "n/a" if s is None or not n else "%.2f" % (s / n)
print("sluice/nginx: requests/s %s, p50 %s, p99 %s" % (ratio(0), ratio(1), ratio(2)))
PY
[ $have_sluice = 1 ] || exit 1
