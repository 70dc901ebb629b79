#!/usr/bin/env bash
# sluice-engine over HTTP with curl: health, models, chat and completions (whole and
# streamed), stop strings, errors, metrics. Prints TAP.
source "$(dirname "$0")/engine_lib.sh"

make_model "$TMP/demo" || { not_ok "make the demo model"; finish; exit 1; }
if ! start_engine "$TMP/engine.log" --model "$TMP/demo" --backend cpu --listen 127.0.0.1:0 \
        --served-model-name demo --max-batch 4 --max-model-len 256 --threads 1; then
    not_ok "sluice-engine starts" "$(tail -5 "$TMP/engine.log")"
    finish; exit 1
fi
ok "sluice-engine starts and listens on $ENGINE_URL"
U=$ENGINE_URL

# post PATH BODY OUT: POST JSON, write the body to OUT, print the status code.
post() { curl -s -o "$3" -w '%{http_code}' -H 'Content-Type: application/json' "$U$1" -d "$2"; }
# sse_json OUT: the JSON events of an SSE body, one per line (without "data: [DONE]").
sse_json() { sed -n 's/^data: //p' "$1" | grep -v '^\[DONE\]$'; }

code=$(curl -s -o "$TMP/h.json" -w '%{http_code}' "$U/health")
check "GET /health is 200 {status: ok}" test "$code" = 200 -a "$(py "$TMP/h.json" 'd["status"]')" = ok

curl -s "$U/v1/models" >"$TMP/m.json"
check "GET /v1/models lists the served name" py "$TMP/m.json" 'd["object"]=="list" and d["data"][0]["id"]=="demo" and d["data"][0]["object"]=="model"'

CHAT='"model":"demo","messages":[{"role":"user","content":"Say hello."}],"temperature":0'
code=$(post /v1/chat/completions "{$CHAT,\"max_tokens\":12}" "$TMP/c.json")
check "chat: 200, chat.completion shape" py "$TMP/c.json" \
    'd["object"]=="chat.completion" and d["id"].startswith("chatcmpl-") and d["model"]=="demo" and d["choices"][0]["index"]==0 and d["choices"][0]["message"]["role"]=="assistant" and isinstance(d["choices"][0]["message"]["content"],str)'
check "chat: max_tokens 12 ends with finish_reason length (or stop at EOS)" py "$TMP/c.json" \
    '(d["choices"][0]["finish_reason"]=="length" and d["usage"]["completion_tokens"]==12) or (d["choices"][0]["finish_reason"]=="stop" and d["usage"]["completion_tokens"]<=12)'
check "chat: usage adds up" py "$TMP/c.json" \
    'd["usage"]["prompt_tokens"]>5 and d["usage"]["total_tokens"]==d["usage"]["prompt_tokens"]+d["usage"]["completion_tokens"]'
post /v1/chat/completions "{$CHAT,\"max_tokens\":12,\"stream\":true,\"stream_options\":{\"include_usage\":true}}" "$TMP/s.txt" >/dev/null
sse_json "$TMP/s.txt" >"$TMP/s.jsonl"
check "chat stream: role first, one finish, usage chunk, same text as non-stream (greedy)" python3 - "$TMP/s.jsonl" "$TMP/c.json" <<'PY'
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
whole = json.load(open(sys.argv[2]))
assert all(e["object"] == "chat.completion.chunk" and e["id"] == ev[0]["id"] for e in ev), "object/id"
assert ev[0]["choices"][0]["delta"].get("role") == "assistant", "first delta has the role"
fin = [e for e in ev if e["choices"] and e["choices"][0]["finish_reason"]]
assert len(fin) == 1 and fin[0]["choices"][0]["finish_reason"] == whole["choices"][0]["finish_reason"], "one finish"
assert ev[-1]["choices"] == [] and ev[-1]["usage"] == whole["usage"], "usage chunk last, same usage"
text = "".join(e["choices"][0]["delta"].get("content", "") for e in ev if e["choices"])
assert text == whole["choices"][0]["message"]["content"], "stream text %r != %r" % (text, whole["choices"][0]["message"]["content"])
PY
check "chat stream ends with data: [DONE]" test "$(grep -v '^$' "$TMP/s.txt" | tail -1)" = "data: [DONE]"

post /v1/chat/completions "{$CHAT,\"max_tokens\":3,\"stream\":true}" "$TMP/s2.txt" >/dev/null
check "chat stream without include_usage has no usage chunk" bash -c "! grep -q '\"usage\"' '$TMP/s2.txt' && grep -q '^data: \[DONE\]' '$TMP/s2.txt'"

# Stop string: cut the greedy text at a piece of itself; the reply must stop right before it.
python3 - "$TMP/c.json" >"$TMP/stop.json" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))["choices"][0]["message"]["content"]
cut = max(1, len(t) // 2)
stop = t[cut:cut + 2] if len(t) >= cut + 2 else t[cut:]
print(json.dumps({"stop": stop, "want": t[:t.find(stop)] if stop else t}))
PY
STOP=$(py "$TMP/stop.json" 'json.dumps(d["stop"])')
post /v1/chat/completions "{$CHAT,\"max_tokens\":12,\"stop\":[$STOP]}" "$TMP/st.json" >/dev/null
check "chat with a stop string: text up to it, finish_reason stop" python3 -c '
import json,sys
d=json.load(open(sys.argv[1])); want=json.load(open(sys.argv[2]))["want"]
assert d["choices"][0]["message"]["content"]==want, (d["choices"][0]["message"]["content"], want)
assert d["choices"][0]["finish_reason"]=="stop"' "$TMP/st.json" "$TMP/stop.json"
post /v1/chat/completions "{$CHAT,\"max_tokens\":12,\"stop\":[$STOP],\"stream\":true}" "$TMP/sst.txt" >/dev/null
sse_json "$TMP/sst.txt" >"$TMP/sst.jsonl"
check "streamed stop string: same text, never the stop string" python3 -c '
import json,sys
ev=[json.loads(l) for l in open(sys.argv[1])]
want=json.load(open(sys.argv[2]))["want"]
text="".join(e["choices"][0]["delta"].get("content","") for e in ev if e["choices"])
assert text==want, (text, want)
assert ev[-1]["choices"][0]["finish_reason"]=="stop"' "$TMP/sst.jsonl" "$TMP/stop.json"

code=$(post /v1/completions '{"model":"demo","prompt":"The capital of France is","max_tokens":6,"temperature":0}' "$TMP/p.json")
check "completions: 200, text_completion shape, 6 tokens" py "$TMP/p.json" \
    'd["object"]=="text_completion" and d["id"].startswith("cmpl-") and isinstance(d["choices"][0]["text"],str) and d["usage"]["completion_tokens"]<=6 and d["usage"]["prompt_tokens"]==5'
post /v1/completions '{"model":"demo","prompt":"The capital of France is","max_tokens":6,"temperature":0,"stream":true}' "$TMP/ps.txt" >/dev/null
sse_json "$TMP/ps.txt" >"$TMP/ps.jsonl"
check "completions stream: same text as non-stream" python3 -c '
import json,sys
ev=[json.loads(l) for l in open(sys.argv[1])]
whole=json.load(open(sys.argv[2]))
assert all(e["object"]=="text_completion" for e in ev)
assert "".join(e["choices"][0]["text"] for e in ev)==whole["choices"][0]["text"]
assert ev[-1]["choices"][0]["finish_reason"]==whole["choices"][0]["finish_reason"]' "$TMP/ps.jsonl" "$TMP/p.json"

post /v1/completions '{"prompt":"Once upon a time","max_tokens":8,"temperature":0.8,"top_p":0.9,"top_k":50,"seed":7,"presence_penalty":0.5,"frequency_penalty":0.5}' "$TMP/r1.json" >/dev/null
post /v1/completions '{"prompt":"Once upon a time","max_tokens":8,"temperature":0.8,"top_p":0.9,"top_k":50,"seed":7,"presence_penalty":0.5,"frequency_penalty":0.5}' "$TMP/r2.json" >/dev/null
check "sampling with a seed is reproducible" test "$(py "$TMP/r1.json" 'd["choices"][0]["text"]')" = "$(py "$TMP/r2.json" 'd["choices"][0]["text"]')"

# errors
err_is() { # err_is NAME STATUS TYPE CODE PARAM FILE GOTSTATUS
    check "$1" py "$6" "$7==$2 and d['error']['type']=='$3' and d['error']['code']=='$4' and d['error']['param']==$5 and len(d['error']['message'])>0"
}
code=$(post /v1/chat/completions '{"model":"demo","messages":[' "$TMP/e1.json")
err_is "bad JSON: 400 invalid_request" 400 invalid_request_error invalid_request None "$TMP/e1.json" "$code"
code=$(post /v1/chat/completions '{"model":"demo"}' "$TMP/e2.json")
err_is "missing messages: 400, param messages" 400 invalid_request_error invalid_request "'messages'" "$TMP/e2.json" "$code"
code=$(post /v1/chat/completions '{"model":"gpt-9","messages":[{"role":"user","content":"hi"}]}' "$TMP/e3.json")
err_is "unknown model: 404 model_not_found" 404 invalid_request_error model_not_found "'model'" "$TMP/e3.json" "$code"
LONG=$(python3 -c 'print(" ".join(["word"] * 400))')
code=$(post /v1/completions "{\"prompt\":\"$LONG\"}" "$TMP/e4.json")
err_is "prompt longer than --max-model-len: 400 context_length_exceeded" 400 invalid_request_error context_length_exceeded "'prompt'" "$TMP/e4.json" "$code"
code=$(post /v1/chat/completions '{"messages":[{"role":"user","content":"hi"}],"n":2}' "$TMP/e5.json")
err_is "n=2: 400 on param n" 400 invalid_request_error invalid_request "'n'" "$TMP/e5.json" "$code"
code=$(post /v1/chat/completions '{"messages":[{"role":"user","content":"hi"}],"temperature":"warm"}' "$TMP/e6.json")
err_is "temperature of the wrong type: 400 on param temperature" 400 invalid_request_error invalid_request "'temperature'" "$TMP/e6.json" "$code"
code=$(curl -s -o "$TMP/e7.json" -w '%{http_code}' "$U/v1/nothing")
check "unknown path: 404 OpenAI-shaped" py "$TMP/e7.json" "$code==404 and 'error' in d"
code=$(curl -s -o "$TMP/e8.json" -w '%{http_code}' "$U/v1/chat/completions")
check "GET on a POST endpoint: 405 OpenAI-shaped" py "$TMP/e8.json" "$code==405 and 'error' in d"

# A long generation cut by a client that goes away frees its slot.
curl -s -N --max-time 1 -o /dev/null "$U/v1/completions" -d '{"prompt":"go","max_tokens":240,"stream":true}'
for _ in $(seq 1 100); do
    curl -s "$U/metrics" >"$TMP/metrics.txt"
    grep -q '^sluice_engine_running_sequences{model="demo"} 0$' "$TMP/metrics.txt" && break
    sleep 0.1
done
check "a client that hangs up mid-stream frees its sequence" grep -q '^sluice_engine_running_sequences{model="demo"} 0$' "$TMP/metrics.txt"

check "metrics: queue, running, tokens, tokens/s, KV use" bash -c "for m in queue_length running_sequences prompt_tokens_total generation_tokens_total tokens_per_second kv_cache_usage_ratio; do grep -q \"^sluice_engine_\$m{model=\\\"demo\\\"} \" '$TMP/metrics.txt' || { echo missing \$m; exit 1; }; done"
check "metrics: generated tokens counted" bash -c "awk '/^sluice_engine_generation_tokens_total/ { exit !(\$2 > 40) }' '$TMP/metrics.txt'"

kill "$ENGINE_PID" && wait "$ENGINE_PID"
check "SIGTERM stops the engine cleanly (exit 0)" test $? -eq 0
finish
