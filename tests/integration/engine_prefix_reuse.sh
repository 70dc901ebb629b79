#!/usr/bin/env bash
# sluice-engine's prefix reuse over HTTP (CPU backend, demo model with random weights): two
# engines, --prefix-reuse off and on, get the same requests in the same order; every greedy
# answer must be the same, and the one with reuse reports cached prompt tokens where a kept
# cache starts the prompt. Prints TAP; time to first token with and without reuse is printed
# as information only.
source "$(dirname "$0")/engine_lib.sh"

make_model "$TMP/demo" || { not_ok "make the demo model"; finish; exit 1; }
# SL_ENGINE_BACKEND=cuda runs the same checks on a GPU host (bf16: near-ties may differ).
ARGS=(--model "$TMP/demo" --backend "${SL_ENGINE_BACKEND:-cpu}" --listen 127.0.0.1:0 --served-model-name demo
      --max-batch 2 --max-model-len 2048 --threads 1)
if ! start_engine "$TMP/off.log" "${ARGS[@]}" --prefix-reuse off; then
    not_ok "sluice-engine --prefix-reuse off starts" "$(tail -5 "$TMP/off.log")"
    finish; exit 1
fi
OFF=$ENGINE_URL
if ! start_engine "$TMP/on.log" "${ARGS[@]}"; then
    not_ok "sluice-engine (prefix reuse on by default) starts" "$(tail -5 "$TMP/on.log")"
    finish; exit 1
fi
ON=$ENGINE_URL
check "the engine says prefix reuse is on by default, off when asked" \
    bash -c "grep -q 'prefix reuse on' '$TMP/on.log' && grep -q 'prefix reuse off' '$TMP/off.log'"

# The scenarios print "ok NAME" or "not ok NAME: why" (and "# ..." for information).
python3 - "$OFF" "$ON" >"$TMP/results.txt" 2>"$TMP/py.err" <<'PY'
import json, os, socket, sys, threading, time, urllib.parse, urllib.request

OFF, ON = sys.argv[1], sys.argv[2]
seen_cached = 0

def post(base, path, body):
    req = urllib.request.Request(base + path, json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.load(r)

def answer(d):
    c = d["choices"][0]
    return (c["message"]["content"] if "message" in c else c["text"]), c["finish_reason"]

def cached(d):
    return d["usage"]["prompt_tokens_details"]["cached_tokens"]

def both(path, body):
    """The same request to the engine without reuse, then with it."""
    global seen_cached
    off, on = post(OFF, path, body), post(ON, path, body)
    seen_cached += cached(on)
    return off, on

def report(name, cond, why=""):
    print(("ok " if cond else "not ok ") + name + ("" if cond else ": " + why), flush=True)

def same(name, pairs, want_cached):
    """pairs: (off, on) responses; want_cached(i, n) says what the i-th on response's
    cached_tokens (n) may be."""
    bad = []
    for i, (off, on) in enumerate(pairs):
        if answer(off) != answer(on):
            bad.append("answer %d differs: %r vs %r" % (i, answer(off), answer(on)))
        if cached(off) != 0:
            bad.append("answer %d: cached_tokens %d without reuse" % (i, cached(off)))
        if off["usage"]["prompt_tokens"] != on["usage"]["prompt_tokens"]:
            bad.append("answer %d: prompt_tokens differ" % i)
        if not want_cached(i, cached(on), on["usage"]["prompt_tokens"]):
            bad.append("answer %d: cached_tokens %d of %d" % (i, cached(on), on["usage"]["prompt_tokens"]))
    report(name, not bad, "; ".join(bad))

def words(base, n):
    return " ".join("%s%d" % (base, i) for i in range(n))

CHAT = "/v1/chat/completions"
COMP = "/v1/completions"
SYSTEM = "You are a careful assistant. " + words("rule", 120)

# 1. multi-turn conversation: each turn repeats the previous turns and its answer
msgs = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "What is " + words("q", 10)}]
pairs = []
for turn in range(3):
    off, on = both(CHAT, {"model": "demo", "messages": msgs, "max_tokens": 8, "temperature": 0})
    pairs.append((off, on))
    msgs = msgs + [{"role": "assistant", "content": answer(on)[0]},
                   {"role": "user", "content": "And then " + words("t%d_" % turn, 6)}]
same("multi-turn chat: same answers; cached_tokens 0 on the first turn, most of the prompt later",
     pairs, lambda i, n, p: n == 0 if i == 0 else p // 2 < n < p)

# 2. two users' prompts sharing a long system prompt
pairs = [both(CHAT, {"model": "demo", "temperature": 0, "max_tokens": 8, "messages": [
    {"role": "system", "content": SYSTEM}, {"role": "user", "content": u}]})
    for u in ("Tell me about " + words("alpha", 5), "Write about " + words("beta", 9))]
same("shared system prompt: same answers; the second reuses the system prompt", pairs,
     lambda i, n, p: n > 100 and n < p)

# 3. a strict prefix of the kept prompt (shorter after longer), then a longer one again
long_p = words("doc", 200)
pairs = [both(COMP, {"model": "demo", "prompt": long_p, "max_tokens": 6, "temperature": 0})]
pairs.append(both(COMP, {"model": "demo", "prompt": words("doc", 100), "max_tokens": 6, "temperature": 0}))
pairs.append(both(COMP, {"model": "demo", "prompt": long_p, "max_tokens": 6, "temperature": 0}))
pairs.append(both(COMP, {"model": "demo", "prompt": long_p, "max_tokens": 6, "temperature": 0}))
same("strict prefix, shorter after longer, longer after shorter, the same prompt twice", pairs,
     lambda i, n, p: [n == 0, n == p - 1, 0 < n < p // 2 + 10, n == p - 1][i])

# 4. a prompt diverging in the middle (inside a 16-token block), then the first again:
#    the overwritten tail must be recomputed
div = long_p.split(" ")
div[77] = "changed"
div = " ".join(div)
pairs = [both(COMP, {"model": "demo", "prompt": p, "max_tokens": 6, "temperature": 0})
         for p in (words("doc", 150) + " tail", div, words("doc", 150) + " tail")]
same("a prompt diverging mid-block, then the first again", pairs,
     lambda i, n, p: [p - 3 <= n < p, 100 < n < p // 2, 100 < n < p // 2][i])

# 5. a stream cancelled after its first token: its cache stays reusable
def finished(base):
    with urllib.request.urlopen(base + "/metrics", timeout=60) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("sluice_engine_requests_finished_total"):
                return int(float(line.split()[-1]))
    return -1

def cancel_stream(base, prompt):
    before = finished(base)
    u = urllib.parse.urlparse(base)
    body = json.dumps({"model": "demo", "prompt": prompt, "max_tokens": 400,
                       "temperature": 0, "stream": True}).encode()
    s = socket.create_connection((u.hostname, u.port))
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n" % len(body) + body)
    got = b""
    while got.count(b"data: ") < 2:          # the role/empty event, then a token
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
    s.close()
    for _ in range(6000):                      # the engine notices and ends it
        if finished(base) > before:
            return True
        time.sleep(0.05)
    return False

stopped = [cancel_stream(b, words("story", 150)) for b in (OFF, ON)]
pairs = [both(COMP, {"model": "demo", "prompt": words("story", 150) + " " + words("more", 20),
                     "max_tokens": 6, "temperature": 0})]
report("cancelled streams end", all(stopped), "a cancelled stream was not finished")
same("after a cancelled stream its prompt is reused", pairs, lambda i, n, p: n >= 150)

# 6. more distinct prompts than slots (--max-batch 2): kept caches go least recently used first
prompts = [words("topic%d_" % k, 60) for k in range(4)]
pairs = [both(COMP, {"model": "demo", "prompt": p, "max_tokens": 5, "temperature": 0})
         for p in prompts + prompts[2:] + prompts[:2]]
same("more distinct prompts than slots, one at a time", pairs,
     lambda i, n, p: n == 0 if i < 4 or i >= 6 else n == p - 1)

def parallel(base, bodies):
    out = [None] * len(bodies)
    def run(i):
        out[i] = post(base, COMP, bodies[i])
    ts = [threading.Thread(target=run, args=(i,)) for i in range(len(bodies))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return out

bodies = [{"model": "demo", "prompt": p + " " + words("x", 3), "max_tokens": 7, "temperature": 0}
          for p in prompts] * 2
offs, ons = parallel(OFF, bodies), parallel(ON, bodies)
seen_cached += sum(cached(d) for d in ons)
same("more distinct prompts than slots, eight at once", list(zip(offs, ons)), lambda i, n, p: n < p)

# 7. streamed usage carries cached_tokens too
def stream_usage(base, body):
    req = urllib.request.Request(base + COMP, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        ev = [json.loads(l[6:]) for l in r.read().decode().splitlines()
              if l.startswith("data: {")]
    return ev[-1]["usage"]

sb = {"model": "demo", "prompt": words("doc", 150) + " streamed", "max_tokens": 4, "temperature": 0,
      "stream": True, "stream_options": {"include_usage": True}}
for _ in range(2):   # the second time its whole prompt but the last token is kept
    uo, un = stream_usage(OFF, sb), stream_usage(ON, sb)
    seen_cached += un["prompt_tokens_details"]["cached_tokens"]
report("a streamed usage chunk has prompt_tokens_details.cached_tokens",
       uo["prompt_tokens_details"]["cached_tokens"] == 0 and un["prompt_tokens_details"]["cached_tokens"] > 100,
       "off %r, on %r" % (uo, un))

# 8. the counter in /metrics
def metric(base, name):
    with urllib.request.urlopen(base + "/metrics", timeout=60) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + "{"):
                return int(float(line.split()[-1]))
    return None

report("/metrics: sluice_engine_prompt_tokens_cached_total is the sum of cached_tokens served",
       metric(OFF, "sluice_engine_prompt_tokens_cached_total") == 0 and
       metric(ON, "sluice_engine_prompt_tokens_cached_total") == seen_cached,
       "off %r, on %r, served %d" % (metric(OFF, "sluice_engine_prompt_tokens_cached_total"),
                                    metric(ON, "sluice_engine_prompt_tokens_cached_total"), seen_cached))

# Information: time to first token with a 1,000-token shared prefix (never asserted).
shared = words("ctx", 280)   # about 1,000 tokens
ms = {}
for name, base in (("off", OFF), ("on", ON)):
    post(base, COMP, {"model": "demo", "prompt": shared + " warm", "max_tokens": 1, "temperature": 0})
    t = time.monotonic()
    d = post(base, COMP, {"model": "demo", "prompt": shared + " question", "max_tokens": 1, "temperature": 0})
    ms[name] = (time.monotonic() - t) * 1000
print("# TTFT (%s backend, demo model) of a %d-token prompt whose first %d tokens the previous "
      "prompt had: prefix reuse off %.1f ms, on %.1f ms"
      % (os.environ.get("SL_ENGINE_BACKEND", "cpu"), d["usage"]["prompt_tokens"], cached(d),
         ms["off"], ms["on"]), flush=True)
PY
rc=$?
while IFS= read -r line; do
    case $line in
        "ok "*) ok "${line#ok }" ;;
        "not ok "*) not_ok "${line#not ok }" ;;
        "#"*) echo "$line" ;;
    esac
done <"$TMP/results.txt"
[ "$rc" -eq 0 ] || not_ok "the scenarios ran to the end" "$(tail -5 "$TMP/py.err")"
finish
