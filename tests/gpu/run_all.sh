#!/bin/bash
# GPU-host checks and benchmark, run through the device tool from the repo root with the
# binaries and these scripts carried in .gpu/ (see README, engine section):
#   .gpu/bin/{sluice-engine,sluice-cuda-check,sluice-cuda-logits,sluice-bench-cuda}
#   .gpu/gpu/*.py, .gpu/tok/{tokenizer.json,tokenizer_config.json}
# Usage: run_all.sh [check] [sample] [sanitize] [sanitize-sample] [compare15] [bench15] [ours15] [variants15] [nograph15]
#                   [profile15] [serve] [preempt] [compare7] [bench7]
# sample: sluice-cuda-sample (GPU sampling vs sl_sample, sampled decode at 1.5B, which
# make a step before must have made); ours15: sluice-bench-cuda alone; variants15: it again with the fused path or the
# flash-decoding split off, and with the fused path up to 8 tokens.
# Logs go to $OUT (or /tmp/sluice-gpu).
OUT=${OUT:-/tmp/sluice-gpu}
G=.gpu
mkdir -p "$OUT"
if ! ldd $G/bin/sluice-cuda-check | grep -q 'libcublas.so.13 => /'; then
    lib=$(dirname "$(find / -name 'libcublasLt.so.13' 2>/dev/null | head -1)")
    export LD_LIBRARY_PATH=$lib:$LD_LIBRARY_PATH
fi
export PYTHONUNBUFFERED=1
steps=${*:-check compare15 sanitize bench15 serve}
rc=0
for s in $steps; do
    echo "=== $s"
    case $s in
    check) $G/bin/sluice-cuda-check tests/fixtures/tiny-qwen2 tests/fixtures/tiny-llama 2>&1 | tee "$OUT/check.txt"; rc=$((rc | PIPESTATUS[0])) ;;
    sample) $G/bin/sluice-cuda-sample tests/fixtures/tiny-qwen2 /tmp/m1.5b 2>&1 | tee "$OUT/sample.txt"; rc=$((rc | PIPESTATUS[0])) ;;
    sanitize-sample) SL_SAMPLE_DRAWS=50 compute-sanitizer --tool memcheck --leak-check full $G/bin/sluice-cuda-sample tests/fixtures/tiny-qwen2 > "$OUT/memcheck-sample.txt" 2>&1; r=$?; tail -4 "$OUT/memcheck-sample.txt"; rc=$((rc | r)) ;;
    sanitize) compute-sanitizer --tool memcheck --leak-check full $G/bin/sluice-cuda-check tests/fixtures/tiny-qwen2 > "$OUT/memcheck.txt" 2>&1; r=$?; tail -4 "$OUT/memcheck.txt"; rc=$((rc | r)) ;;
    compare15|compare7)
        sz=${s#compare}; sz=${sz/15/1.5}b; m=/tmp/m$sz
        [ -d $m ] || python3 $G/gpu/make_model.py $m $sz $G/tok
        python3 $G/gpu/compare_hf.py $m $G/bin/sluice-cuda-logits /tmp/cmp$sz 2>&1 | tee "$OUT/compare$sz.txt"; rc=$((rc | PIPESTATUS[0])) ;;
    bench15|bench7)
        sz=${s#bench}; sz=${sz/15/1.5}b; m=/tmp/m$sz
        [ -d $m ] || python3 $G/gpu/make_model.py $m $sz $G/tok
        $G/bin/sluice-bench-cuda $m "$OUT/bench$sz.json" 2>&1 | tee "$OUT/bench$sz.txt"
        python3 $G/gpu/bench_hf.py $m "$OUT/bench$sz.json" 2>&1 | tee -a "$OUT/bench$sz.txt" ;;
    ours15|ours7)
        sz=${s#ours}; sz=${sz/15/1.5}b; m=/tmp/m$sz
        [ -d $m ] || python3 $G/gpu/make_model.py $m $sz $G/tok
        $G/bin/sluice-bench-cuda $m "$OUT/bench$sz.json" 2>&1 | tee "$OUT/bench$sz.txt" ;;
    variants15)
        for v in ${VARIANTS:-"SL_CUDA_FUSED=0 SL_CUDA_SPLIT=0" "SL_CUDA_FUSED=0" "SL_CUDA_SPLIT=0" "SL_CUDA_PDL=0" "SL_CUDA_FUSED=8"}; do
            echo "--- $v"
            env $v $G/bin/sluice-bench-cuda /tmp/m1.5b 2>&1 | grep -E '^\| (1|8|32|128|1 after)'
        done 2>&1 | tee "$OUT/variants1.5b.txt" ;;
    nograph15)
        SL_CUDA_GRAPHS=0 $G/bin/sluice-bench-cuda /tmp/m1.5b 2>&1 | tee "$OUT/bench1.5b-nographs.txt" ;;
    profile15|profile7)
        sz=${s#profile}; sz=${sz/15/1.5}b
        SL_CUDA_PROFILE=1 $G/bin/sluice-bench-cuda /tmp/m$sz 2>&1 | tee "$OUT/profile$sz.txt" ;;
    preempt)
        # a KV cache of ~1200 tokens for 8 x (16 + 200): sequences are preempted and recomputed
        m=/tmp/m1.5b
        port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
        $G/bin/sluice-engine --model $m --backend cuda --listen 127.0.0.1:$port --max-batch 8 \
            --kv-cache-fraction 0.0005 > "$OUT/preempt-engine.txt" 2>&1 &
        pid=$!
        for i in $(seq 60); do curl -sf http://127.0.0.1:$port/health >/dev/null && break; sleep 1; done
        for i in $(seq 8); do
            curl -s http://127.0.0.1:$port/v1/completions -H 'content-type: application/json' \
                -d "{\"model\":\"m1.5b\",\"prompt\":\"Request number $i says hello\",\"max_tokens\":200,\"temperature\":0}" \
                -o /tmp/pre$i.json &
        done
        wait $(jobs -p | grep -v "^$pid$") 2>/dev/null
        for i in $(seq 8); do python3 -c "import json,sys;d=json.load(open('/tmp/pre$i.json'));print('request $i:',d['choices'][0]['finish_reason'],d['usage']['completion_tokens'])" || cat /tmp/pre$i.json; done | tee -a "$OUT/preempt.txt"
        kill $pid; wait $pid
        grep -c "preemptions so far" "$OUT/preempt-engine.txt" | sed 's/^/preemptions logged: /' | tee -a "$OUT/preempt.txt" ;;
    serve)
        m=/tmp/m1.5b
        port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
        $G/bin/sluice-engine --model $m --backend cuda --listen 127.0.0.1:$port --max-batch 4 > "$OUT/serve-engine.txt" 2>&1 &
        pid=$!
        for i in $(seq 60); do curl -sf http://127.0.0.1:$port/health >/dev/null && break; sleep 1; done
        curl -s http://127.0.0.1:$port/v1/completions -H 'content-type: application/json' \
            -d '{"model":"m1.5b","prompt":"Hello, world","max_tokens":16,"temperature":0}' | tee -a "$OUT/serve.txt"
        echo
        # sampled on the GPU: the same seed twice gives the same text, another seed another
        for seed in 7 7 8; do
            curl -s http://127.0.0.1:$port/v1/completions -H 'content-type: application/json' \
                -d "{\"model\":\"m1.5b\",\"prompt\":\"Hello, world\",\"max_tokens\":24,\"temperature\":0.9,\"top_p\":0.9,\"presence_penalty\":0.5,\"seed\":$seed}" \
                | python3 -c 'import json,sys;print(json.dumps(json.load(sys.stdin)["choices"][0]["text"]))'
        done | tee /tmp/seeds.txt | tee -a "$OUT/serve.txt"
        a=$(sed -n 1p /tmp/seeds.txt); b=$(sed -n 2p /tmp/seeds.txt); c=$(sed -n 3p /tmp/seeds.txt)
        v="not ok"
        [ -n "$a" ] && [ "$a" = "$b" ] && [ "$a" != "$c" ] && v=ok
        [ "$v" = ok ] || rc=1
        echo "$v - seeded sampling through the engine" | tee -a "$OUT/serve.txt"
        kill $pid; wait $pid
        tail -3 "$OUT/serve-engine.txt" ;;
    esac
done
exit $rc
