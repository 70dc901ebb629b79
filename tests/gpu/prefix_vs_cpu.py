# Prefix reuse on a GPU host: the requests of tests/integration/engine_prefix_reuse.sh (and more),
# each sent to three engines on one model: CUDA with prefix reuse, CUDA without, and the f32 CPU
# backend as the reference. Prints per request whether the greedy answers agree, then totals.
# usage: python3 prefix_vs_cpu.py MODEL_DIR SLUICE_ENGINE
import json, re, subprocess, sys, time, urllib.request
model, engine = sys.argv[1], sys.argv[2]
def start(name, extra):
    log = open("/tmp/%s.log" % name, "w")
    p = subprocess.Popen([engine, "--model", model, "--listen", "127.0.0.1:0", "--served-model-name", "demo",
                          "--max-batch", "2", "--max-model-len", "2048", "--threads", "4"] + extra, stdout=log, stderr=log)
    for _ in range(600):
        m = re.search(r"listening on (\S+)", open("/tmp/%s.log" % name).read())
        if m:
            return p, m.group(1)
        time.sleep(0.1)
    sys.exit(name + " did not start: " + open("/tmp/%s.log" % name).read()[-500:])
E = {n: start(n, a) for n, a in [("on", ["--backend", "cuda"]), ("off", ["--backend", "cuda", "--prefix-reuse", "off"]),
                                  ("cpu", ["--backend", "cpu", "--prefix-reuse", "off"])]}
def post(url, path, body):
    r = urllib.request.Request(url + path, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(r, timeout=600) as f:
        return json.load(f)
def ans(d):
    c = d["choices"][0]
    return c["message"]["content"] if "message" in c else c["text"]
def words(b, n): return " ".join("%s%d" % (b, i) for i in range(n))
reqs = []
SYSTEM = "You are a careful assistant. " + words("rule", 120)
CH, CO = "/v1/chat/completions", "/v1/completions"
stats = {"on==off": 0, "off==cpu": 0, "on==cpu": 0, "n": 0}
def go(path, body, label):
    r = {n: post(u, path, body) for n, (p, u) in E.items()}
    a = {n: ans(d) for n, d in r.items()}
    c = r["on"]["usage"]["prompt_tokens_details"]["cached_tokens"]
    stats["n"] += 1
    for k, (x, y) in {"on==off": ("on", "off"), "off==cpu": ("off", "cpu"), "on==cpu": ("on", "cpu")}.items():
        stats[k] += a[x] == a[y]
    print("%-28s cached %4d/%4d  on==off %d  off==cpu %d  on==cpu %d" % (label, c, r["on"]["usage"]["prompt_tokens"],
          a["on"] == a["off"], a["off"] == a["cpu"], a["on"] == a["cpu"]), flush=True)
    return a["on"]
msgs = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "What is " + words("q", 10)}]
for t in range(3):
    o = go(CH, {"model": "demo", "messages": msgs, "max_tokens": 8, "temperature": 0}, "multi-turn %d" % t)
    msgs = msgs + [{"role": "assistant", "content": o}, {"role": "user", "content": "And then " + words("t%d_" % t, 6)}]
for u in ("Tell me about " + words("alpha", 5), "Write about " + words("beta", 9)):
    go(CH, {"model": "demo", "temperature": 0, "max_tokens": 8, "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": u}]}, "shared system")
long_p = words("doc", 200)
for i, p in enumerate([long_p, words("doc", 100), long_p, long_p]):
    go(CO, {"model": "demo", "prompt": p, "max_tokens": 6, "temperature": 0}, "prefix %d" % i)
div = long_p.split(" "); div[77] = "changed"; div = " ".join(div)
for i, p in enumerate([words("doc", 150) + " tail", div, words("doc", 150) + " tail"]):
    go(CO, {"model": "demo", "prompt": p, "max_tokens": 6, "temperature": 0}, "diverge %d" % i)
for k in range(8):
    p = words("w%d_" % k, 60 + 7 * k)
    go(CO, {"model": "demo", "prompt": p, "max_tokens": 6, "temperature": 0}, "distinct %d" % k)
    go(CO, {"model": "demo", "prompt": p + " more words here", "max_tokens": 6, "temperature": 0}, "distinct %d + 3 words" % k)
print("agreement over %d requests: on==off %d, off==cpu %d, on==cpu %d" % (stats["n"], stats["on==off"], stats["off==cpu"], stats["on==cpu"]))
for p, u in E.values():
    p.kill()
