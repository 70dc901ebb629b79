#!/bin/bash
# Where a batch-1 decode step goes inside the replayed graph (ncu profiles nodes one by one,
# without the overlap programmatic dependent launch gives): the step time with one kind of
# launch of the fused path left out (SL_CUDA_SKIP; the tokens are wrong, the timing is not)
# against the whole step, each the median of REPS runs of sluice-bench-cuda with
# SL_BENCH_QUICK=1. Run from the repo root on a GPU host:
#   step_split.sh BIN_DIR MODEL_DIR [VAR=VALUE...]    (REPS, default 3)
B=$1
m=$2
shift 2
reps=${REPS:-3}
step_us() {
    local v=()
    for r in $(seq "$reps"); do
        v+=("$(env SL_BENCH_QUICK=1 "$@" "$B/sluice-bench-cuda" "$m" 2>&1 |
            awk -F'|' '$2+0 == 1 && $3+0 > 0 { printf "%.1f", 1e6 / $3; exit }')")
    done
    printf '%s\n' "${v[@]}" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'
}
full=$(step_us "$@")
echo "| launch left out | step us | its share us |"
echo "| none | $full | |"
for k in "qkv 1" "attention 2" "o_proj 4" "gate_up 8" "down 16"; do
    set -- $k "$@"
    name=$1 bit=$2
    shift 2
    t=$(step_us SL_CUDA_SKIP=$bit "$@")
    echo "| $name | $t | $(awk -v a="$full" -v b="$t" 'BEGIN { printf "%.1f", a - b }') |"
done
