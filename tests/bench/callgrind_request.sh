#!/usr/bin/env bash
# callgrind_request.sh — what one request costs sluice's worker thread, in instructions:
# the gateway benchmark's sluice target (full chain, a new prompt each request, 3 s of wrk,
# 64 connections) under valgrind's callgrind; prints the worker thread's instructions a
# request and the top functions (inclusive, a request). Steady to about 1% between runs of
# one build (wall-clock figures on a shared 2-core machine are not), so it compares builds;
# crypto is overstated (valgrind hides SHA-NI). Not a test.
#
# usage: tests/bench/callgrind_request.sh BUILD_DIR OUT_PREFIX [STREAM(0|1)]   (TOP=60 lines)
set -u
B=$(cd "$1" && pwd); OUT=$2; S=${3:-0}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
command -v valgrind >/dev/null || { echo "callgrind_request: valgrind not found (apt-get install valgrind)" >&2; exit 2; }
rm -f "$OUT".*
(cd "$ROOT" && SLUICE_WRAP="valgrind --tool=callgrind --callgrind-out-file=$OUT.%p" NO_PORTKEY=1 BENCH_TARGETS=sluice \
  BENCH_STREAMS=$S BENCH_ROUNDS=1 BENCH_DURATION=3 BENCH_TTFB_N=0 RATE_LOAD=/nonexist tests/bench/gateway_bench.sh "$B" >/dev/null 2>&1)
F=$(ls -t "$OUT".* | head -1)
callgrind_annotate --auto=no --threshold=100 --inclusive=yes "$F" 2>/dev/null > "$F.incl.txt"
callgrind_annotate --auto=no --tree=calling "$F" 2>/dev/null > "$F.calling.txt"
W=$(grep "[:]worker_main " "$F.incl.txt" | head -1 | awk '{gsub(",","",$1); print $1}')
N=$(grep -E "> .*[:]sl_access_log_head " "$F.calling.txt" | grep -o "([0-9,]*x)" | tr -d '(),x' | awk '{s+=$1} END {print s}')
echo "file $F  requests $N  worker instr/request $((W / N))"
awk -v n="$N" '/^ *[0-9,]+ \(/ { v=$1; gsub(",","",v); sub(/^[^%]*%\) +/, ""); sub(/ \[.*$/, ""); sub(/^.*build\/\.\.\//, ""); if (!seen[$0]++) printf "%9.0f  %s\n", v/n, $0 }' "$F.incl.txt" | head -${TOP:-60}
