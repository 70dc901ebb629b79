#!/usr/bin/env bash
# gateway_bench.sh — sluice with its full chain against its peers, same run, same fast upstream.
#
# Upstream: nginx answering a fixed chat completion (`return 200`), and a fixed SSE stream for
# streaming requests. Targets, each driven by wrk with the same threads/connections/duration:
#   direct      the upstream itself
#   nginx       nginx proxy_pass with upstream keep-alive
#   portkey     the Portkey AI gateway (@portkey-ai/gateway from npm, tests/bench/portkey/,
#               node), pointed at the upstream with x-portkey-provider: openai and
#               x-portkey-custom-host
#   sluice      the full chain: auth (a key), guard (deny words, regex, e-mail mask),
#               ratelimit, quota (reserve + settle, journaled), cache (temperature 0 and a
#               new prompt each request: a miss, looked up and stored), route, metrics, access log
# Every request carries a unique prompt (wrk request()), for all targets alike.
# Non-streaming: requests/s, p50, p99. Streaming: requests/s through wrk, and time to first
# event (sequential, one keep-alive connection) through each proxy minus direct. Prints tables and the ratios.
# CPU µs/req: user+system time of the target's processes (all threads, children) over the
# wrk run, over the requests answered (the upstream's own time for direct).
# Not a test: asserts nothing about speed.
#
# usage: tests/bench/gateway_bench.sh [BUILD_DIR]     (default build/)
# env:   BENCH_DURATION=5 BENCH_ROUNDS=3 BENCH_CONNECTIONS=64 BENCH_THREADS=2 BENCH_WORKERS=1
#        BENCH_TTFB_N=200 (sequential streamed requests per target for the TTFB figures)
#        BENCH_EVENTS=5: content events in each streamed answer (then a usage event and [DONE]);
#        real streams carry a token or so an event, hundreds of them
#        BENCH_PROMPT_BYTES=N: a system prompt of about N bytes (28 by default; real ones run to KBs)
#        BENCH_MAX_TOKENS=0: requests without max_tokens (sluice's quota then adds its cap)
#        BENCH_RATE=N: the fixed-rate latency run at N requests/s instead of half nginx's peak
#        BENCH_RATE_SHARES="0.5 0.25": the fixed-rate runs, as shares of nginx's peak
#        BENCH_RATE_ROUNDS=3: each fixed-rate run that many times, targets interleaved; the table
#        gives each percentile's median over the rounds, and every round's p99 and worst latency
#        (on a VM a vCPU can sit idle ~100 ms with work waiting; one such pause decides a
#        5-second run's p99, whichever target it lands on)
#        After each fixed-rate table, sluice's own account of what it added to those requests
#        (its sluice_gateway_overhead_seconds histogram, read before and after each round): the
#        bucket each percentile falls in, and how many had more than 1 ms added. It leaves out
#        what the load generator and the kernel add on the way (the table's figures hold that)
#        RATE_LOAD_DUMP=PREFIX: those runs write each request's due time (CLOCK_MONOTONIC s) and
#        latency (ms) to PREFIX.SHARE.TARGET, to line a stall up with perf sched/record -k CLOCK_MONOTONIC
#        BENCH_ACCESS_LOG=PATH, BENCH_JOURNAL=PATH: where sluice writes its access log ("off" for
#        none) and its store's journal (default: the bench's temp folder), to tell their disk costs apart
#        NO_PORTKEY=1 to leave Portkey out (it is installed by npm ci in tests/bench/portkey)
#        BENCH_TARGETS="nginx sluice" to run some targets only; BENCH_STREAMS="0" (non-streaming
#        only) or "1"; SLUICE_WRAP="perf record -g -o FILE --" runs sluice under a profiler
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$ROOT/build}
SLUICE=${SLUICE:-$BUILD/gateway/sluice}
DUR=${BENCH_DURATION:-5}
ROUNDS=${BENCH_ROUNDS:-3}
CONNS=${BENCH_CONNECTIONS:-64}
THREADS=${BENCH_THREADS:-2}
WORKERS=${BENCH_WORKERS:-1}
TTFB_N=${BENCH_TTFB_N:-200}
RATE_ROUNDS=${BENCH_RATE_ROUNDS:-3}
NGINX=${NGINX:-/usr/sbin/nginx}
WRK=${WRK:-wrk}
PORTKEY_DIR=$ROOT/tests/bench/portkey
PY=python3; [ -x /usr/bin/python3 ] && PY=/usr/bin/python3
for p in "$NGINX" "$WRK" "$PY" curl node; do
    command -v "$p" >/dev/null || { echo "gateway_bench: $p not found" >&2; exit 2; }
done
[ -x "$SLUICE" ] || { echo "gateway_bench: no sluice binary at $SLUICE" >&2; exit 2; }
if [ "${NO_PORTKEY:-0}" != 1 ] && [ ! -d "$PORTKEY_DIR/node_modules/@portkey-ai/gateway" ]; then
    (cd "$PORTKEY_DIR" && npm ci --no-audit --no-fund --loglevel=error) >&2 || { echo "gateway_bench: npm ci in $PORTKEY_DIR failed (NO_PORTKEY=1 to skip it)" >&2; exit 2; }
fi

# BENCH_PIN=LOAD:PROXY (CPU lists, e.g. 0:1): the load generators and the upstream run on LOAD,
# the proxy under test (nginx, Portkey, sluice alike) on PROXY, so the scheduler does not put a
# proxy and its upstream on one core where each request preempts the proxy twice
ON_LOAD= ON_PROXY=
if [ -n "${BENCH_PIN:-}" ]; then
    command -v taskset >/dev/null || { echo "gateway_bench: BENCH_PIN needs taskset (util-linux)" >&2; exit 2; }
    ON_LOAD="taskset -c ${BENCH_PIN%%:*}" ON_PROXY="taskset -c ${BENCH_PIN#*:}"
fi

T=$(mktemp -d "${TMPDIR:-/tmp}/sluice-gwbench.XXXXXX")
PIDS=()
declare -A ROOT_PID # the process (tree) whose CPU time each target's requests cost
ours() { local st; st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1; st=${st##*) }; set -- $st; [ "$1" != Z ] && [ "$2" = "$$" ]; }
cleanup() {
    local pid
    # a SLUICE_WRAP tracer (strace, perf trace) detaches on SIGTERM and would leave sluice running
    [ -n "${SLUICE_WRAP:-}" ] && [ -n "${ROOT_PID[sluice]:-}" ] && ours "${ROOT_PID[sluice]}" &&
        pkill -TERM -P "${ROOT_PID[sluice]}" 2>/dev/null
    for pid in "${PIDS[@]}"; do ours "$pid" && kill -TERM "$pid" 2>/dev/null; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
    rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
free_port() { "$PY" "$ROOT/tests/integration/free_port.py"; }
wait_http() { local i; for ((i = 0; i < 150; i++)); do [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$1")" != 000 ] && return 0; sleep 0.1; done; return 1; }

UP_PORT=$(free_port); NGX_PORT=$(free_port); PK_PORT=$(free_port); GW_PORT=$(free_port); ADMIN_PORT=$(free_port)
RESPONSE='{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"bench-model","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I help you today?"},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":9,"total_tokens":21}}'
CHUNK='{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"bench-model","choices":[{"index":0,"delta":{"content":"Hello"},"finish_reason":null}]}'
LAST='{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"bench-model","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}}'
EVENTS=${BENCH_EVENTS:-5} # content events a stream (each "Hello"), then the usage event and [DONE]
SSE=""; for ((i = 0; i < EVENTS; i++)); do SSE="${SSE}data: $CHUNK\n\n"; done
SSE="${SSE}data: $LAST\n\ndata: [DONE]\n\n"
export BENCH_STREAM_EVENTS=$((EVENTS + 1))
# room for every event's token: sluice ends a stream that goes past the request's max_tokens
MAX_TOKENS=64; ((EVENTS * 2 > MAX_TOKENS)) && MAX_TOKENS=$((EVENTS * 2))
if ((${#SSE} < 3500)); then # the answer in the config, as nginx's return writes it
    STREAM_LOCATION="        location /stream/ { default_type text/event-stream; return 200 '$SSE'; }"
else # longer than a config string may be: a file; a POST to it is a 405, made a 200 with the file by an internal GET
    mkdir -p "$T/www" && chmod 755 "$T" "$T/www" # nginx's workers run as nobody when we are root
    printf "$SSE" >"$T/www/stream.sse" && chmod 644 "$T/www/stream.sse"
    STREAM_LOCATION="        location /stream/ { error_page 405 =200 /stream.sse; return 405; }
        location = /stream.sse { internal; default_type text/event-stream; root $T/www; }"
fi

start_nginx() { # NAME WORKERS HTTP-BLOCK
    local dir=$T/$1; mkdir -p "$dir/logs" "$dir/tmp"
    cat >"$dir/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes $2;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 4096; multi_accept on; }
http {
    access_log off;
    client_body_temp_path $dir/tmp/body; proxy_temp_path $dir/tmp/proxy; fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi; scgi_temp_path $dir/tmp/scgi;
    keepalive_requests 1000000;
$3
}
EOF
    local on=$ON_PROXY; [ "$1" = upstream ] && on=$ON_LOAD
    $on "$NGINX" -p "$dir" -c "$dir/nginx.conf" -e "$dir/logs/error.log" & PIDS+=($!)
    ROOT_PID[$1]=$!
}
start_nginx upstream 1 "    server {
        listen 127.0.0.1:$UP_PORT;
        location / { default_type application/json; return 200 '$RESPONSE'; }
$STREAM_LOCATION
    }"
start_nginx proxy "$WORKERS" "    upstream bench_up { server 127.0.0.1:$UP_PORT; keepalive 64; }
    server {
        listen 127.0.0.1:$NGX_PORT;
        location / { proxy_pass http://bench_up; proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_buffering off; }
    }"
wait_http "http://127.0.0.1:$UP_PORT/" || { echo "gateway_bench: upstream nginx did not start: $(cat "$T"/upstream/logs/error.log)" >&2; exit 1; }
wait_http "http://127.0.0.1:$NGX_PORT/" || { echo "gateway_bench: proxy nginx did not start" >&2; exit 1; }

have_pk=0
if [ "${NO_PORTKEY:-0}" != 1 ]; then
    (cd "$PORTKEY_DIR" && NODE_ENV=production exec $ON_PROXY node node_modules/@portkey-ai/gateway/build/start-server.js --port="$PK_PORT" --headless) >"$T/portkey.log" 2>&1 &
    PIDS+=($!); ROOT_PID[portkey]=$!
    if wait_http "http://127.0.0.1:$PK_PORT/"; then have_pk=1
    else echo "gateway_bench: portkey did not start:" >&2; tail -n 20 "$T/portkey.log" >&2; fi
fi

# sluice: two upstream entries on the same nginx, one per answer shape (plain / streamed path)
export SLUICE_SECRET=bench-secret-0123456789abcdef BENCH_ADMIN=bench-admin-token BENCH_UP_KEY=sk-up
cat >"$T/sluice.yaml" <<EOF
listen: [ { address: 127.0.0.1:$GW_PORT } ]
server: { workers: $WORKERS }
log: { access_log: ${BENCH_ACCESS_LOG:-$T/access.log} }
admin: { listen: 127.0.0.1:$ADMIN_PORT, token_env: BENCH_ADMIN }
store: { backend: memory, path: ${BENCH_JOURNAL:-$T/sluice.journal} }
upstreams:
  up: { type: openai, base_url: http://127.0.0.1:$UP_PORT/v1, api_key_env: BENCH_UP_KEY }
  up-stream: { type: openai, base_url: http://127.0.0.1:$UP_PORT/stream/v1, api_key_env: BENCH_UP_KEY }
models:
  demo: { targets: [ { upstream: up, model: bench-model } ] }
  demo-stream: { targets: [ { upstream: up-stream, model: bench-model } ] }
consumers:
  bench: { quota: { tokens: 1000000000000, window: month }, rate: { rpm: 100000000, tpm: 100000000000 } }
plugins:
  - auth
  - guard: { deny: [forbidden phrase, another banned word], deny_regex: ["internal[- ]only"], mask: [email] }
  - ratelimit
  - quota
  - cache: { ttl: 1h, max_bytes: 64MiB }
  - route
EOF
$ON_PROXY ${SLUICE_WRAP:-} "$SLUICE" serve -c "$T/sluice.yaml" >"$T/sluice.log" 2>&1 & PIDS+=($!); ROOT_PID[sluice]=$!
ROOT_PID[direct]=${ROOT_PID[upstream]}; ROOT_PID[nginx]=${ROOT_PID[proxy]}
wait_http "http://127.0.0.1:$GW_PORT/v1/models" || { echo "gateway_bench: sluice did not start:" >&2; tail -n 20 "$T/sluice.log" >&2; exit 1; }
KEY=$("$SLUICE" key -c "$T/sluice.yaml" issue --consumer bench 2>/dev/null)
[ -n "$KEY" ] || { echo "gateway_bench: could not issue a key" >&2; exit 1; }

url_of() {
    case $1 in
        direct) echo "http://127.0.0.1:$UP_PORT";; nginx) echo "http://127.0.0.1:$NGX_PORT";;
        portkey) echo "http://127.0.0.1:$PK_PORT";; sluice) echo "http://127.0.0.1:$GW_PORT";;
    esac
}
path_of() { # TARGET STREAM(0/1): direct and nginx reach the streamed answer by its path
    case $1 in
        direct|nginx) if [ "$2" = 1 ]; then echo /stream/v1/chat/completions; else echo /v1/chat/completions; fi;;
        *) echo /v1/chat/completions;;
    esac
}
model_of() { if [ "$1" = sluice ] && [ "$2" = 1 ]; then echo demo-stream; else echo demo; fi; }
# headers_of TARGET STREAM: one "Name: value" a line
headers_of() {
    echo "Content-Type: application/json"
    case $1 in
        portkey) echo "Authorization: Bearer sk-bench-client"; echo "x-portkey-provider: openai"
                 echo "x-portkey-custom-host: http://127.0.0.1:$UP_PORT$([ "$2" = 1 ] && echo /stream)/v1";;
        sluice) echo "Authorization: Bearer $KEY";;
        *) echo "Authorization: Bearer sk-bench-client";;
    esac
}
# BENCH_PROMPT_BYTES: a system prompt of about that many bytes (real prompts run to KBs);
# BENCH_MAX_TOKENS=0: no max_tokens in the request (most clients send none: quota adds its cap)
SYSTEM="You are a helpful assistant."
while ((${#SYSTEM} < ${BENCH_PROMPT_BYTES:-0})); do SYSTEM="$SYSTEM Answer briefly, and say where each fact comes from."; done
[ "${BENCH_MAX_TOKENS:-}" = 0 ] && CAP_MEMBER="" || CAP_MEMBER=",\"max_tokens\":$MAX_TOKENS"
body_of() { # TARGET STREAM TEXT
    local stream=false; [ "$2" = 1 ] && stream=true
    printf '{"model":"%s","messages":[{"role":"system","content":"%s"},{"role":"user","content":"Hello there, how are you? %s"}],"temperature":0%s,"stream":%s}' \
        "$(model_of "$1" "$2")" "$SYSTEM" "$3" "$CAP_MEMBER" "$stream"
}
lua_of() { # TARGET STREAM -> a wrk script sending a new prompt each request
    local h="" line
    while IFS= read -r line; do h="$h[\"${line%%:*}\"] = \"${line#*: }\", "; done < <(headers_of "$1" "$2")
    local body
    body=$(body_of "$1" "$2" "@@N@@")
    # wrk's Lua states all start from the same random seed: the prompt's prefix is made
    # unique per run (the nanosecond clock) and per thread (setup() numbers them)
    printf 'local nonce = "%s"\nlocal made = 0\nsetup = function(thread)\n    made = made + 1\n    thread:set("tid", made)\nend\n' "$(date +%s%N)"
    printf 'local n = 0\nrequest = function()\n    n = n + 1\n'
    printf '    local body = [[%s]]\n' "${body%%@@N@@*}"
    printf '    body = body .. nonce .. "." .. tostring(tid) .. "-" .. n .. [[%s]]\n' "${body#*@@N@@}"
    printf '    return wrk.format("POST", "%s", { %s }, body)\nend\n' "$(path_of "$1" "$2")" "$h"
}
curl_headers() { local line; while IFS= read -r line; do printf -- '-H\n%s\n' "$line"; done < <(headers_of "$1" "$2"); }
check() { # TARGET STREAM: one request answers with the upstream's content
    local args; mapfile -t args < <(curl_headers "$1" "$2")
    curl -s --max-time 10 "${args[@]}" --data "$(body_of "$1" "$2" check)" "$(url_of "$1")$(path_of "$1" "$2")" | grep -q 'chatcmpl-bench'
}
TARGETS=(direct nginx); [ $have_pk = 1 ] && TARGETS+=(portkey); TARGETS+=(sluice)
if [ -n "${BENCH_TARGETS:-}" ]; then # a subset, e.g. BENCH_TARGETS=sluice to profile it alone
    keep=(); for t in "${TARGETS[@]}"; do [[ " $BENCH_TARGETS " == *" $t "* ]] && keep+=("$t"); done; TARGETS=("${keep[@]}")
fi
for t in "${TARGETS[@]}"; do
    for s in 0 1; do check "$t" "$s" || echo "gateway_bench: $t (stream=$s) does not answer with the upstream's body" >&2; done
done

cpu_ticks() { # PID: "user system" clock ticks of the process and its descendants (all threads)
    local pids=($1) i=0 u=0 k=0 st c
    while ((i < ${#pids[@]})); do
        for c in $(cat /proc/${pids[i]}/task/*/children 2>/dev/null); do pids+=("$c"); done
        i=$((i + 1))
    done
    for c in "${pids[@]}"; do
        st=$(cat "/proc/$c/stat" 2>/dev/null) || continue
        st=${st##*) }; set -- $st
        u=$((u + ${12})); k=$((k + ${13}))
    done
    echo "$u $k"
}
run_wrk() { # TARGET STREAM ROUND
    local t=$1 s=$2 r=$3 f=$T/$1.$2.$3
    if [ "$r" = 1 ]; then
        lua_of "$t" "$s" >"$T/$t.$s.lua"
        $ON_LOAD "$WRK" -t"$THREADS" -c"$CONNS" -d2s -s "$T/$t.$s.lua" "$(url_of "$t")" >/dev/null 2>&1
    fi
    lua_of "$t" "$s" >"$T/$t.$s.lua" # a new nonce: the warm-up's prompts are not sent again
    local c0 c1
    c0=$(cpu_ticks "${ROOT_PID[$t]}")
    $ON_LOAD "$WRK" -t"$THREADS" -c"$CONNS" -d"${DUR}s" --latency -s "$T/$t.$s.lua" "$(url_of "$t")" >"$f" 2>&1
    c1=$(cpu_ticks "${ROOT_PID[$t]}")
    "$PY" - "$t" "$s" "$f" $c0 $c1 "$(getconf CLK_TCK)" >>"$T/results" <<'PY'
import re, sys
name, s, t = sys.argv[1], sys.argv[2], open(sys.argv[3]).read()
u0, k0, u1, k1, hz = map(int, sys.argv[4:9])
n = re.search(r"(\d+) requests in", t)
n = int(n.group(1)) if n else 0
cpu = lambda a, b: "%.1f" % ((b - a) / hz * 1e6 / n) if n else "nan"
ms = lambda v, u: float(v) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[u]
rps = re.search(r"Requests/sec:\s+([\d.]+)", t)
p = {q: re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s|m)\b" % q, t, re.M) for q in ("50", "99")}
non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", t)
sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", t)
err = (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, sock.groups())) if sock else 0)
if rps and all(p.values()):
    print(name, s, rps.group(1), "%.3f" % ms(*p["50"].groups()), "%.3f" % ms(*p["99"].groups()), err,
          cpu(u0, u1), cpu(k0, k1))
PY
}
ttfb() { # TARGET: TTFB_N sequential streamed requests on one keep-alive connection; the time
    # from sending each to its first "data:" byte, in ms, one a line
    local t=$1 args; mapfile -t args < <(headers_of "$t" 1)
    $ON_LOAD "$PY" - "$t" "$(url_of "$t")" "$(path_of "$t" 1)" "$TTFB_N" "$(body_of "$t" 1 @@N@@)" "${args[@]}" >>"$T/ttfb" <<'PY'
import socket, sys, time, urllib.parse
name, url, path, n, body = sys.argv[1], urllib.parse.urlparse(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
headers = "".join(h + "\r\n" for h in sys.argv[6:])
s = socket.create_connection((url.hostname, url.port))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
for i in range(n):
    b = body.replace("@@N@@", f"ttfb {i} {time.time()}").encode()
    req = f"POST {path} HTTP/1.1\r\nHost: {url.hostname}\r\n{headers}Content-Length: {len(b)}\r\n\r\n".encode() + b
    t0 = time.perf_counter()
    s.sendall(req)
    buf, first = b"", None
    while True:  # read the whole answer (Content-Length or chunked) to reuse the connection
        d = s.recv(65536)
        if not d:
            raise SystemExit(f"{name}: connection closed")
        buf += d
        if first is None and b"data:" in buf:
            first = time.perf_counter()
        head, sep, rest = buf.partition(b"\r\n\r\n")
        if not sep:
            continue
        cl = [l.split(b":", 1)[1] for l in head.lower().split(b"\r\n") if l.startswith(b"content-length:")]
        if (int(cl[0]) <= len(rest)) if cl else rest.endswith(b"0\r\n\r\n"):
            break
    print(name, "%.4f" % ((first - t0) * 1000))
PY
}

echo "# wrk -t$THREADS -c$CONNS -d${DUR}s x $ROUNDS rounds (median), a new prompt each request; proxy workers: $WORKERS (portkey: one node process); $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg)"
: >"$T/results"; : >"$T/ttfb"
# rounds interleave the targets, so a change in the machine's load hits all of them alike
for ((r = 1; r <= ROUNDS; r++)); do
    for s in ${BENCH_STREAMS:-0 1}; do for t in "${TARGETS[@]}"; do run_wrk "$t" "$s" "$r"; done; done
done
for t in "${TARGETS[@]}"; do ttfb "$t"; done

# Latency at a fixed load: half of nginx's median non-streaming peak (wrk above), and a
# quarter of it, open loop (tests/bench/rate_load.c: latency from when each request was due),
# same rate for all. BENCH_RATE_SHARES="0.5" for the issue's point alone.
RATE_LOAD=${RATE_LOAD:-$BUILD/tests/bench/rate_load}
: >"$T/rate"; : >"$T/overhead"
# sluice's own account of what it added (sluice_gateway_overhead_seconds), its buckets summed
# over the labels: "le=count,..." on one line
overhead_buckets() {
    curl -s -H "Authorization: Bearer $BENCH_ADMIN" "http://127.0.0.1:$ADMIN_PORT/metrics" |
        awk '/^sluice_gateway_overhead_seconds_bucket/ { match($0, /le="[^"]*"/); le = substr($0, RSTART + 4, RLENGTH - 5)
                 n[le] += $NF; if (!(le in seen)) { seen[le] = 1; order[++k] = le } }
             END { for (i = 1; i <= k; i++) printf "%s%s=%d", (i > 1 ? "," : ""), order[i], n[order[i]]; print "" }'
}
if [ -x "$RATE_LOAD" ] && { [ -n "${BENCH_RATE:-}" ] || grep -q '^nginx 0 ' "$T/results"; }; then
    PEAK=$(awk '$1 == "nginx" && $2 == 0 { print $3 }' "$T/results" | sort -n | awk '{ v[NR] = $1 } END { if (NR) printf "%d", v[int((NR + 1) / 2)] }')
    SHARES=${BENCH_RATE_SHARES:-0.5 0.25}; [ -n "${BENCH_RATE:-}" ] && SHARES=set
    for ((r = 1; r <= RATE_ROUNDS; r++)); do for share in $SHARES; do
        if [ "$share" = set ]; then RATE=$BENCH_RATE; else RATE=$(awk -v p="$PEAK" -v s="$share" 'BEGIN { printf "%d", p * s }'); fi
        for t in "${TARGETS[@]}"; do
            [ "$t" = portkey ] && continue # it cannot keep half of nginx's rate (see its requests/s)
            mapfile -t hdrs < <(headers_of "$t" 0)
            u=$(url_of "$t"); hp=${u#http://}
            c0=$(cpu_ticks "${ROOT_PID[$t]}")
            [ "$t" = sluice ] && o0=$(overhead_buckets)
            line=$(RATE_LOAD_DUMP=${RATE_LOAD_DUMP:+$RATE_LOAD_DUMP.$share.$t.$r} $ON_LOAD "$RATE_LOAD" "${hp%:*}" "${hp#*:}" "$(path_of "$t" 0)" "$RATE" "${BENCH_RATE_SECONDS:-5}" "$CONNS" \
                   "$(body_of "$t" 0 "rate-$(date +%s%N)-@@N@@")" "${hdrs[@]}")
            c1=$(cpu_ticks "${ROOT_PID[$t]}")
            echo "$share $t $line cpu0=${c0/ /,} cpu1=${c1/ /,}" >>"$T/rate"
            [ "$t" = sluice ] && echo "$share $o0 $(overhead_buckets)" >>"$T/overhead"
        done
    done; done
fi
hits=$(grep -c '"cache":"hit"' "$T/access.log" 2>/dev/null); misses=$(grep -c '"cache":"miss"' "$T/access.log" 2>/dev/null)
echo "# sluice's cache over the runs: ${misses:-0} misses, ${hits:-0} hits (every prompt is new: a hit means the load repeated itself)"
"$PY" - "$T/results" "$T/ttfb" "$TTFB_N" "$T/rate" "${BENCH_RATE_SECONDS:-5}" "${BENCH_RATE:+set by BENCH_RATE}" "$(getconf CLK_TCK)" "$T/overhead" <<'PY'
import statistics, sys
res, tt = {}, {}
for line in open(sys.argv[1]):
    name, s, rps, p50, p99, err, us, sy = line.split()
    res.setdefault((name, s), []).append((float(rps), float(p50), float(p99), int(err), float(us), float(sy)))
for line in open(sys.argv[2]):
    name, ms = line.split()
    tt.setdefault(name, []).append(float(ms))
rate = [l.split() for l in open(sys.argv[4])] if len(sys.argv) > 4 else []
names = [n for n in ("direct", "nginx", "portkey", "sluice")
         if (n, "0") in res or (n, "1") in res or n in tt or any(r[1] == n for r in rate)]
labels = {"direct": "upstream (direct)", "nginx": "nginx proxy_pass", "portkey": "Portkey gateway",
          "sluice": "sluice (full chain)"}
med = lambda k, i: statistics.median(r[i] for r in res[k]) if k in res else None
def q(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(p / 100 * len(v)))]
import os
for s, title in (("0", "non-streaming"), ("1", "streaming (%s events + [DONE])" % os.environ.get("BENCH_STREAM_EVENTS", "6"))):
    print(f"\n## {title}")
    print("| %-20s | %10s | %15s | %8s | %8s | %6s | %13s |" % ("target", "req/s", "rounds min-max", "p50 ms", "p99 ms",
          "errors", "CPU µs/req u+s"))
    print("|%s|%s|%s|%s|%s|%s|%s|" % ("-" * 22, "-" * 12, "-" * 17, "-" * 10, "-" * 10, "-" * 8, "-" * 15))
    for n in names:
        k = (n, s)
        if k not in res:
            print("| %-20s | %10s | %15s | %8s | %8s | %6s | %13s |" % (labels[n], "n/a", "", "n/a", "n/a", "n/a", ""))
            continue
        rs = [r[0] for r in res[k]]
        print("| %-20s | %10.0f | %15s | %8.2f | %8.2f | %6d | %13s |" % (labels[n], med(k, 0), "%.0f-%.0f" % (min(rs), max(rs)),
              med(k, 1), med(k, 2), sum(r[3] for r in res[k]), "%.1f+%.1f" % (med(k, 4), med(k, 5))))
    sl, ng, pk = med(("sluice", s), 0), med(("nginx", s), 0), med(("portkey", s), 0)
    print("sluice/nginx requests/s: %s   sluice/portkey requests/s: %s" % (
        "%.2f" % (sl / ng) if sl and ng else "n/a", "%.1f" % (sl / pk) if sl and pk else "n/a"))
shares = []
for r in rate:
    if r[0] not in shares:
        shares.append(r[0])
for share in shares:
    kv = {}
    for r in rate:
        if r[0] == share:
            kv.setdefault(r[1], []).append(dict(x.split("=") for x in r[2:]))
    what = sys.argv[6] if share == "set" else "%s of nginx's peak" % {"0.5": "half", "0.25": "a quarter"}.get(share, share)
    nr = max(len(v) for v in kv.values())
    print("\n## latency at a fixed rate: %s, %s req/s for %s s, open loop (from when each was due), %d round%s (medians)"
          % (what, next(iter(kv.values()))[0]["rate"], sys.argv[5], nr, "" if nr == 1 else "s"))
    print("| %-20s | %8s | %8s | %8s | %8s | %14s | %22s | %6s | %13s |" % ("target", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms",
          "added p99 ms", "each round: p99 / max", "errors", "CPU µs/req u+s"))
    print("|%s|%s|%s|%s|%s|%s|%s|%s|%s|" % ("-" * 22, "-" * 10, "-" * 10, "-" * 10, "-" * 10, "-" * 16, "-" * 24, "-" * 8, "-" * 15))
    hz = float(sys.argv[7])
    def rate_cpu(ds):
        u = k = n = 0
        for d in ds:
            (u0, k0), (u1, k1) = (map(int, d[c].split(",")) for c in ("cpu0", "cpu1"))
            u, k, n = u + u1 - u0, k + k1 - k0, n + int(d["answered"])
        return "%.1f+%.1f" % (u / hz * 1e6 / n, k / hz * 1e6 / n) if n else "nan"
    pmed = lambda ds, key: statistics.median(float(d[key]) for d in ds)
    base99 = pmed(kv["direct"], "p99") if "direct" in kv else 0.0
    for n in names:
        if n in kv:
            ds = kv[n]
            each = " ".join("%.1f/%.0f" % (float(d["p99"]), float(d["max"])) for d in ds)
            print("| %-20s | %8.3f | %8.3f | %8.3f | %8.3f | %14.3f | %22s | %6d | %13s |" % (labels[n], pmed(ds, "p50"), pmed(ds, "p90"),
                  pmed(ds, "p99"), pmed(ds, "p999"), pmed(ds, "p99") - base99, each,
                  sum(int(d["non200"]) + int(d["errors"]) + int(d["sent"]) - int(d["answered"]) for d in ds), rate_cpu(ds)))
    # sluice's own figure: its overhead histogram over these rounds (bucket bounds, not interpolated)
    got = {}
    for line in open(sys.argv[8]):
        f = line.split()
        if len(f) == 3 and f[0] == share:
            b0, b1 = (dict(x.split("=") for x in s.split(",")) for s in f[1:])
            for le in b1:
                got[le] = got.get(le, 0) + int(b1[le]) - int(b0.get(le, 0))
    if got.get("+Inf"):
        bounds = sorted((float(le), n) for le, n in got.items())
        total = got["+Inf"]
        def within(p):
            le = next(b for b, n in bounds if n >= p / 100 * total)
            return "<= %g ms" % (le * 1000) if le != float("inf") else "over %g ms" % (bounds[-2][0] * 1000)
        over1 = total - got.get("0.001", total)
        print("sluice's own account (sluice_gateway_overhead_seconds, %d requests): p50 %s, p99 %s, p99.9 %s; "
              "%d (%.3f%%) had more than 1 ms added" % (total, within(50), within(99), within(99.9), over1, 100 * over1 / total))
print(f"\n## time to first event, streamed, {sys.argv[3]} sequential requests each on one connection")
print("| %-20s | %8s | %8s | %14s | %14s |" % ("target", "p50 ms", "p99 ms", "added p50 ms", "added p99 ms"))
print("|%s|%s|%s|%s|%s|" % ("-" * 22, "-" * 10, "-" * 10, "-" * 16, "-" * 16))
d50, d99 = (q(tt["direct"], 50), q(tt["direct"], 99)) if "direct" in tt else (0, 0)
for n in names:
    if n in tt:
        a, b = q(tt[n], 50), q(tt[n], 99)
        print("| %-20s | %8.3f | %8.3f | %14.3f | %14.3f |" % (labels[n], a, b, a - d50, b - d99))
PY
