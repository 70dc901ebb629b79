#!/bin/bash
# One device call's worth of a batch-1 decode change, from the repo root on a GPU host:
# correctness of the new build (sluice-cuda-check), batch-1 tokens/s of both builds side by
# side (SL_BENCH_QUICK, interleaved), the new build under each VARIANTS setting, both full
# tables, compare_hf at 1.5B, memcheck, and the in-graph split of both (step_split.sh; the
# base build needs SL_CUDA_SKIP too). Each step runs only while LIM seconds (default 520)
# are not spent; logs in $OUT.
#   ab_decode.sh BASE_BIN_DIR NEW_BIN_DIR
G=.gpu
A=$1
B=$2
M=/tmp/m1.5b
if ! ldd $B/sluice-cuda-check | grep -q 'libcublas.so.13 => /'; then
    lib=$(dirname "$(find / -name 'libcublasLt.so.13' 2>/dev/null | head -1)")
    export LD_LIBRARY_PATH=$lib:$LD_LIBRARY_PATH
fi
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/sluice-gpu}
mkdir -p "$OUT"
L=$OUT/log.txt
LIM=${LIM:-520}
t0=$(date +%s)
el() { echo $(($(date +%s) - t0)); }
left() { [ "$(el)" -lt "$1" ]; }
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,clocks.mem --format=csv,noheader 2>&1 | tee -a "$L"
[ -d $M ] || python3 $G/gpu/make_model.py $M 1.5b $G/tok > /tmp/make.txt 2>&1 || tail -5 /tmp/make.txt
echo "model ready $(el) s" | tee -a "$L"
timeout 150 $B/sluice-cuda-check tests/fixtures/tiny-qwen2 tests/fixtures/tiny-llama > "$OUT/check.txt" 2>&1
echo "check rc=$? $(grep -c '^ok' "$OUT/check.txt") ok, $(grep -c '^not ok' "$OUT/check.txt") not ok; $(el) s" | tee -a "$L"
grep '^not ok' "$OUT/check.txt" | head -5 | tee -a "$L"
q() { timeout 60 env SL_BENCH_QUICK=1 "$@" 2>&1 | awk -F'|' '$2+0 == 1 && $3+0 > 0 { print $3+0; exit }'; }
for r in 1 2 3; do
    left $((LIM - 300)) && echo "batch 1 tokens/s: base $(q $A/sluice-bench-cuda $M) new $(q $B/sluice-bench-cuda $M); $(el) s" | tee -a "$L"
done
for v in ${VARIANTS:-SL_CUDA_KS=0,0,0,8,0 SL_CUDA_KS=0,0,4,0,0 SL_CUDA_ATT_MIN=32 SL_CUDA_ATT_MIN=128 SL_CUDA_PDL=0}; do
    left $((LIM - 280)) && echo "new $v: $(q env $v $B/sluice-bench-cuda $M); $(el) s" | tee -a "$L"
done
if left $((LIM - 200)); then
    timeout 100 $A/sluice-bench-cuda $M > "$OUT/bench-base.txt" 2>&1
    timeout 100 $B/sluice-bench-cuda $M > "$OUT/bench-new.txt" 2>&1
    echo "== bench base $(el) s"; grep '^|' "$OUT/bench-base.txt"
    echo "== bench new"; grep '^|' "$OUT/bench-new.txt"
fi
if left $((LIM - 130)); then
    timeout 120 python3 $G/gpu/compare_hf.py $M $B/sluice-cuda-logits /tmp/cmp1.5b > "$OUT/compare1.5b.txt" 2>&1
    echo "== compare15 $(el) s"; tail -8 "$OUT/compare1.5b.txt"
fi
if left $((LIM - 80)); then
    timeout 90 compute-sanitizer --tool memcheck --leak-check full $B/sluice-cuda-check tests/fixtures/tiny-qwen2 > "$OUT/memcheck.txt" 2>&1
    echo "== memcheck rc=$? $(el) s"; tail -3 "$OUT/memcheck.txt"
fi
if left $((LIM - 50)); then
    REPS=1 timeout 45 bash $G/gpu/step_split.sh $A $M > "$OUT/split-base.txt" 2>&1
    REPS=1 timeout 45 bash $G/gpu/step_split.sh $B $M > "$OUT/split-new.txt" 2>&1
    echo "== split base $(el) s"; cat "$OUT/split-base.txt"
    echo "== split new"; cat "$OUT/split-new.txt"
fi
