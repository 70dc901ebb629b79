#!/bin/bash
# Per-kernel GPU times of one batch-1 decode step (graph nodes profiled one by one, no cache
# flush, clocks as found) and the whole graph's time, with Nsight Compute:
#   ncu_decode.sh MODEL_DIR   (the fused path; SL_CUDA_FUSED=0 in the environment: the other;
#   BIN=DIR: another build's sluice-bench-cuda, TAG=NAME: the log names)
G=.gpu
B=${BIN:-$G/bin}
OUT=${OUT:-/tmp/sluice-gpu}
m=$1
tag=${SL_CUDA_FUSED:+unfused}
tag=${tag:-fused}${TAG:+-$TAG}
per=$([ -z "$SL_CUDA_FUSED" ] && echo 142 || echo 256)
export SL_BENCH_QUICK=1
ncu --graph-profiling node --cache-control none --clock-control none --csv \
    --metrics gpu__time_duration.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed \
    --launch-skip $((per * 20)) --launch-count $per \
    $B/sluice-bench-cuda $m > "$OUT/ncu-$tag.csv" 2> "$OUT/ncu-$tag.err"
ncu --graph-profiling graph --cache-control none --clock-control none --csv \
    --metrics gpu__time_duration.sum --launch-skip 400 --launch-count 4 \
    $B/sluice-bench-cuda $m > "$OUT/ncu-graph-$tag.csv" 2>> "$OUT/ncu-$tag.err"
python3 - "$OUT/ncu-$tag.csv" "$OUT/ncu-graph-$tag.csv" <<'PY'
import csv, sys, collections
def rows(p):
    lines = open(p).read().splitlines()
    start = next((i for i, l in enumerate(lines) if l.startswith('"ID"')), None)
    return [] if start is None else list(csv.DictReader(lines[start:]))
agg = collections.OrderedDict()
for r in rows(sys.argv[1]):
    name = r["Kernel Name"].split("(")[0][:60] + " " + r.get("Grid Size", "")
    v = float(r["Metric Value"].replace(",", ""))
    a = agg.setdefault(name, {"n": 0, "ns": 0.0, "dram": []})
    if r["Metric Name"] == "gpu__time_duration.sum":
        a["n"] += 1; a["ns"] += v
    else:
        a["dram"].append(v)
tot = sum(a["ns"] for a in agg.values())
print(f"kernels of one step: {sum(a['n'] for a in agg.values())}, sum of their times {tot/1e3:.1f} us")
print("| kernel | grid | count | us each | us per step | dram % of peak |")
for k, a in agg.items():
    if a["n"]:
        d = sum(a["dram"]) / len(a["dram"]) if a["dram"] else 0
        print(f"| {k} | {a['n']} | {a['ns']/a['n']/1e3:.2f} | {a['ns']/1e3:.1f} | {d:.0f} |")
g = [float(r["Metric Value"].replace(",", "")) for r in rows(sys.argv[2]) if r["Metric Name"] == "gpu__time_duration.sum"]
print("whole graph / workloads (us):", [round(x / 1e3, 1) for x in g])
PY
