#!/usr/bin/env python3
"""quota_stress.py URLS KEY MOCK_URL ACCESS_LOGS N SEED — N requests at once at one consumer's
quota, spread over the gateways in URLS (comma-separated): streamed and not, random caps,
the mock told per request how many chunks to send, whether to report usage, and (for some
streams) to reset the connection midway. Prints one JSON line with what the clients saw
and what each request should have been charged:

  expected charge of a request = prompt part + completion part, where
    completion = the " hello" tokens that reached the client (each chunk is one token),
    prompt     = the upstream's prompt_tokens when the client was told a usage, else the
                 gateway's own prompt estimate (its access-log field prompt_tokens_estimate).
The caller compares the sum with the store's usage and checks every refusal's shape."""
import concurrent.futures as cf
import http.client
import json
import random
import sys
import time
import urllib.parse

urls, key, mock_url, logs, n, seed = sys.argv[1].split(","), sys.argv[2], sys.argv[3], sys.argv[4].split(","), int(sys.argv[5]), int(sys.argv[6])
rng = random.Random(seed)


def plan(i):
    stream = rng.random() < 0.5
    p = {"i": i, "url": urls[i % len(urls)], "stream": stream, "cap": rng.randint(3, 40),
         "mock": {"chunks": rng.randint(1, 50), "text": " hello", "usage": rng.random() < 0.5,
                  "headers_delay_ms": rng.randint(0, 150), "chunk_delay_ms": rng.randint(0, 3)}}
    if stream and rng.random() < 0.25:
        p["mock"]["reset_after_chunks"] = rng.randint(1, 10)
    p["words"] = " ".join(rng.choice(["alpha", "beta", "gamma", "delta", "river", "sluice"]) for _ in range(rng.randint(1, 30)))
    return p


def send(p):
    u = urllib.parse.urlparse(p["url"])
    body = {"model": "demo", "max_tokens": p["cap"], "messages": [{"role": "user", "content": p["words"]}], "mock": p["mock"]}
    if p["stream"]:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    try:
        c.request("POST", "/v1/chat/completions", json.dumps(body),
                  {"Authorization": "Bearer " + key, "Content-Type": "application/json"})
        r = c.getresponse()
        raw = r.read().decode("utf-8", "replace")
        out = {"i": p["i"], "status": r.status, "id": r.getheader("x-sluice-request-id"), "stream": p["stream"],
               "usage_upstream": p["mock"]["usage"], "reset": "reset_after_chunks" in p["mock"]}
    except Exception as e:  # a transport failure is a finding: report it
        return {"i": p["i"], "status": 0, "error": repr(e)}
    finally:
        c.close()
    if r.status != 200:
        try:
            out["error"] = json.loads(raw).get("error")
        except ValueError:
            out["error"] = {"unparsed": raw[:200]}
        out["retry_after"] = r.getheader("retry-after")
        return out
    text, usage, errors, done = "", None, 0, False
    if p["stream"]:
        for line in raw.split("\n"):
            if not line.startswith("data: "):
                continue
            d = line[6:].strip()
            if d == "[DONE]":
                done = True
                continue
            ev = json.loads(d)
            if "error" in ev:
                errors += 1
                continue
            for ch in ev.get("choices") or []:
                text += (ch.get("delta") or {}).get("content") or ""
            if ev.get("usage"):
                usage = ev["usage"]
    else:
        d = json.loads(raw)
        text = d["choices"][0]["message"]["content"] or ""
        usage = d.get("usage")
    out.update(text_tokens=text.count(" hello"), usage=usage, errors=errors, done=done)
    return out


plans = [plan(i) for i in range(n)]
with cf.ThreadPoolExecutor(max_workers=n) as pool:
    results = list(pool.map(send, plans))

# the gateways' own records, by request id (access logs are written in batches)
want = {r["id"] for r in results if r["status"] == 200}
est = {}
for _ in range(100):
    est = {}
    for path in logs:
        for line in open(path):
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            est[rec.get("request_id")] = rec
    if want <= est.keys():
        break
    time.sleep(0.1)
expected = 0
problems = []
for r in results:
    if r["status"] != 200:
        continue
    rec = est.get(r["id"])
    if rec is None:
        problems.append(f"request {r['i']}: no access-log line for {r['id']}")
        continue
    if r["usage"] is not None:
        prompt = r["usage"]["prompt_tokens"]
        if r["usage"]["completion_tokens"] != r["text_tokens"]:
            problems.append(f"request {r['i']}: told {r['usage']['completion_tokens']} completion tokens, got {r['text_tokens']}")
    else:
        prompt = rec.get("prompt_tokens_estimate")
    expected += prompt + r["text_tokens"]
    if rec.get("quota_charged") != prompt + r["text_tokens"]:
        problems.append(f"request {r['i']}: access log says charged {rec.get('quota_charged')}, expected {prompt + r['text_tokens']}")

print(json.dumps({
    "sent": n,
    "served": sum(r["status"] == 200 for r in results),
    "refused": [r for r in results if r["status"] not in (200,)],
    "streams_cut_by_reset": sum(1 for r in results if r["status"] == 200 and r.get("reset") and r["errors"] > 0),
    "streams_without_done": sum(1 for r in results if r["status"] == 200 and r["stream"] and not r["done"]),
    "served_no_upstream_usage": sum(1 for r in results if r["status"] == 200 and not r["usage_upstream"]),
    "expected_charge": expected,
    "problems": problems[:20],
}))
