#!/usr/bin/env bash
# policy_bench.sh — what each policy costs: sluice in front of one fast upstream (nginx
# `return 200`), the same non-streaming request driven by wrk through a gateway started with
# one chain at a time, all in the same run, rounds interleaved so the machine's load hits
# every config alike. Prints requests/s, p50, p99 and the ratio to the bare gateway.
#   bare           route only (the chain present, no policy), no access log
#   auth memory    + auth, keys in the memory store
#   auth redis     + auth, keys in a real redis-server (cached per worker after the first
#                  lookup; revocations arrive by pub/sub)
#   quota+rate mem / redis   + auth, ratelimit (rpm, tpm) and quota (reserve + settle)
#   guard          + guard: 1,000 deny keywords, 20 deny regexes, e-mail/phone masks
#   cache miss     + cache, a new prompt each request (looked up, stored)
#   cache hit      + cache, one prompt (served from memory)
# Not a test: asserts nothing about speed.
#
# usage: tests/bench/policy_bench.sh [BUILD_DIR]     (default build/)
# env:   BENCH_DURATION=5 BENCH_ROUNDS=3 BENCH_CONNECTIONS=64 BENCH_THREADS=2 BENCH_WORKERS=1
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$ROOT/build}
SLUICE=${SLUICE:-$BUILD/gateway/sluice}
DUR=${BENCH_DURATION:-5} ROUNDS=${BENCH_ROUNDS:-3} CONNS=${BENCH_CONNECTIONS:-64}
THREADS=${BENCH_THREADS:-2} WORKERS=${BENCH_WORKERS:-1}
NGINX=${NGINX:-/usr/sbin/nginx} WRK=${WRK:-wrk} REDIS=${REDIS:-redis-server}
PY=python3; [ -x /usr/bin/python3 ] && PY=/usr/bin/python3
for p in "$NGINX" "$WRK" "$REDIS" "$PY" curl; do
    command -v "$p" >/dev/null || { echo "policy_bench: $p not found" >&2; exit 2; }
done
[ -x "$SLUICE" ] || { echo "policy_bench: no sluice binary at $SLUICE" >&2; exit 2; }

T=$(mktemp -d "${TMPDIR:-/tmp}/sluice-polbench.XXXXXX")
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
    rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
free_port() { "$PY" "$ROOT/tests/integration/free_port.py"; }
wait_http() { local i; for ((i = 0; i < 150; i++)); do [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$1")" != 000 ] && return 0; sleep 0.1; done; return 1; }

# ---- the upstream and Redis ----
UP_PORT=$(free_port) REDIS_PORT=$(free_port)
RESPONSE='{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"bench-model","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I help you today?"},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":9,"total_tokens":21}}'
mkdir -p "$T/up/logs" "$T/up/tmp"
cat >"$T/up/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $T/up/nginx.pid;
error_log $T/up/logs/error.log warn;
events { worker_connections 4096; multi_accept on; }
http {
    access_log off; keepalive_requests 1000000;
    client_body_temp_path $T/up/tmp/body; proxy_temp_path $T/up/tmp/proxy; fastcgi_temp_path $T/up/tmp/fastcgi;
    uwsgi_temp_path $T/up/tmp/uwsgi; scgi_temp_path $T/up/tmp/scgi;
    server { listen 127.0.0.1:$UP_PORT; location / { default_type application/json; return 200 '$RESPONSE'; } }
}
EOF
"$NGINX" -p "$T/up" -c "$T/up/nginx.conf" -e "$T/up/logs/error.log" & PIDS+=($!)
"$REDIS" --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$T" >"$T/redis.log" 2>&1 & PIDS+=($!)
wait_http "http://127.0.0.1:$UP_PORT/" || { echo "policy_bench: upstream did not start" >&2; exit 1; }

# ---- the guard's rules: 1,000 keywords, 20 regexes ----
GUARD=$("$PY" - <<'PY'
import random
random.seed(7)
letters = "abcdefghijklmnopqrstuvwxyz"
words = sorted({"".join(random.choice(letters) for _ in range(random.randint(6, 12))) for _ in range(1200)})[:1000]
rx = ['"%s[0-9]{%d,}x"' % (w[:4], i % 5 + 2) for i, w in enumerate(words[:20])]
print("{ deny: [%s], deny_regex: [%s], mask: [email, phone] }" % (", ".join(words), ", ".join(rx)))
PY
)

export SLUICE_SECRET=bench-secret-0123456789abcdef0123456789 BENCH_KEY=sk-up
start_gw() { # INDEX STORE PLUGINS(YAML list items, one per line)
    local i=$1 port admin
    port=$(free_port); admin=$(free_port)
    cat >"$T/gw$i.yaml" <<EOF
listen: [ { address: 127.0.0.1:$port } ]
server: { workers: $WORKERS }
admin: { listen: 127.0.0.1:$admin, token_env: SLUICE_SECRET }
log: { access_log: "off" }
store: $2
upstreams:
  up: { type: openai, base_url: "http://127.0.0.1:$UP_PORT/v1", api_key_env: BENCH_KEY }
models:
  demo: { targets: [ { upstream: up, model: bench-model } ] }
consumers:
  bench:
    quota: { tokens: 1000000000000, window: month }
    rate: { rpm: 100000000, tpm: 100000000000 }
plugins:
$3
EOF
    "$SLUICE" serve -c "$T/gw$i.yaml" >"$T/gw$i.log" 2>&1 & PIDS+=($!)
    wait_http "http://127.0.0.1:$port/v1/models" || { echo "policy_bench: gateway $i did not start:" >&2; tail -5 "$T/gw$i.log" >&2; exit 1; }
    eval "PORT_$i=$port"
    KEY_OF[$i]=$("$SLUICE" key -c "$T/gw$i.yaml" issue --consumer bench 2>/dev/null)
}
MEM="{ backend: memory, path: $T/journal-@@ }"
RED="{ backend: redis, redis: { url: \"redis://127.0.0.1:$REDIS_PORT/0\", prefix: \"b@@:\" } }"
NAMES=("bare" "auth memory" "auth redis" "quota+rate memory" "quota+rate redis" "guard 1000+20" "cache miss" "cache hit")
declare -A KEY_OF
start_gw 0 "${MEM//@@/0}" "  - route"
start_gw 1 "${MEM//@@/1}" "  - auth
  - route"
start_gw 2 "${RED//@@/2}" "  - auth
  - route"
start_gw 3 "${MEM//@@/3}" "  - auth
  - ratelimit
  - quota
  - route"
start_gw 4 "${RED//@@/4}" "  - auth
  - ratelimit
  - quota
  - route"
start_gw 5 "${MEM//@@/5}" "  - guard: $GUARD
  - route"
start_gw 6 "${MEM//@@/6}" "  - cache: { ttl: 1h, max_bytes: 256MiB }
  - route"
start_gw 7 "${MEM//@@/7}" "  - cache: { ttl: 1h, max_bytes: 256MiB }
  - route"

lua_of() { # INDEX: a wrk script; a new prompt each request except for the cache hit
    local key=${KEY_OF[$1]:-none} same=0
    [ "$1" = 7 ] && same=1
    cat <<EOF
local n = 0
local tid = tostring(math.random(1, 1000000000))
request = function()
    n = n + 1
    local text = "Hello there, how are you? Please write to me at someone@example.com. " .. (($same == 1) and "same" or (tid .. "-" .. n))
    local body = '{"model":"demo","temperature":0,"max_tokens":64,"messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"' .. text .. '"}]}'
    return wrk.format("POST", "/v1/chat/completions", { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer $key" }, body)
end
EOF
}
for i in "${!NAMES[@]}"; do
    port_var=PORT_$i
    lua_of "$i" >"$T/$i.lua"
    code=$(curl -s -o "$T/check.$i" -w '%{http_code}' -H 'content-type: application/json' -H "Authorization: Bearer ${KEY_OF[$i]:-none}" \
        --data '{"model":"demo","temperature":0,"messages":[{"role":"user","content":"check"}]}' "http://127.0.0.1:${!port_var}/v1/chat/completions")
    [ "$code" = 200 ] || { echo "policy_bench: ${NAMES[$i]} answers $code: $(head -c 300 "$T/check.$i")" >&2; exit 1; }
done

echo "# wrk -t$THREADS -c$CONNS -d${DUR}s x $ROUNDS rounds (median), POST /v1/chat/completions, gateway worker threads: $WORKERS; $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg)"
: >"$T/results"
for ((r = 1; r <= ROUNDS; r++)); do
    for i in "${!NAMES[@]}"; do
        port_var=PORT_$i
        [ "$r" = 1 ] && "$WRK" -t"$THREADS" -c"$CONNS" -d2s -s "$T/$i.lua" "http://127.0.0.1:${!port_var}" >/dev/null 2>&1
        "$WRK" -t"$THREADS" -c"$CONNS" -d"${DUR}s" --latency -s "$T/$i.lua" "http://127.0.0.1:${!port_var}" >"$T/wrk.$i.$r" 2>&1
        "$PY" - "$i" "$T/wrk.$i.$r" >>"$T/results" <<'PY'
import re, sys
i, t = sys.argv[1], open(sys.argv[2]).read()
ms = lambda v, u: float(v) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[u]
rps = re.search(r"Requests/sec:\s+([\d.]+)", t)
p = {q: re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s|m)\b" % q, t, re.M) for q in ("50", "99")}
non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", t)
sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", t)
err = (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, sock.groups())) if sock else 0)
if rps and all(p.values()):
    print(i, rps.group(1), "%.3f" % ms(*p["50"].groups()), "%.3f" % ms(*p["99"].groups()), err)
PY
    done
done
printf '%s\n' "${NAMES[@]}" >"$T/names"
"$PY" - "$T/results" "$T/names" <<'PY'
import statistics, sys
names = open(sys.argv[2]).read().splitlines()
res = {}
for line in open(sys.argv[1]):
    i, rps, p50, p99, err = line.split()
    res.setdefault(int(i), []).append((float(rps), float(p50), float(p99), int(err)))
med = lambda i, k: statistics.median(r[k] for r in res[i])
print("| %-18s | %10s | %15s | %8s | %8s | %6s | %9s |" % ("sluice with", "req/s", "rounds min-max", "p50 ms", "p99 ms", "errors", "vs bare"))
print("|%s|%s|%s|%s|%s|%s|%s|" % ("-" * 20, "-" * 12, "-" * 17, "-" * 10, "-" * 10, "-" * 8, "-" * 11))
base = med(0, 0) if 0 in res else None
for i, n in enumerate(names):
    if i not in res:
        print("| %-18s | %10s |" % (n, "no result"))
        continue
    rs = [r[0] for r in res[i]]
    print("| %-18s | %10.0f | %7.0f-%-7.0f | %8.2f | %8.2f | %6d | %9s |" % (n, med(i, 0), min(rs), max(rs), med(i, 1), med(i, 2),
          sum(r[3] for r in res[i]), "%.2f" % (med(i, 0) / base) if base else "-"))
PY
