#!/usr/bin/env python3
"""Mixed client load on a sluice gateway, for the leak and soak tests: keep-alive clients in
threads, each request drawn from a mix of plain and streamed chat, cache hits, fallbacks,
quota refusals, guard blocks, malformed JSON and clients that leave mid-stream.

usage: mixed_load.py URL --key KEY --poor-key KEY [--threads 4] [--requests N | --seconds S]
Prints one JSON line: {"requests": N, "by_kind": {kind: {status: count}}, "errors": N}.
"errors" counts answers that are not the status the kind expects (transport errors too)."""
import argparse, http.client, json, random, socket, sys, threading, time, urllib.parse

EXPECT = {"plain": {200}, "stream": {200}, "cached": {200}, "fallback": {200}, "quota": {200, 429},
          "guard": {400}, "bad_json": {400}, "abort": {200}, "models": {200}}
MIX = ["plain"] * 4 + ["stream"] * 4 + ["cached"] * 4 + ["fallback"] * 2 + ["quota"] + ["guard"] + \
      ["bad_json"] + ["abort"] * 2 + ["models"]


def request_of(kind, i, a):
    msgs = lambda text: [{"role": "user", "content": text}]
    key = a.poor_key if kind == "quota" else a.key
    if kind == "models":
        return "GET", "/v1/models", None, key
    if kind == "bad_json":
        return "POST", "/v1/chat/completions", '{"model":"demo","messages":[', key
    body = {"model": "demo", "messages": msgs(f"question {i} {random.random()}"), "temperature": 0.7}
    if kind in ("stream", "abort"):
        body["stream"] = True
    elif kind == "cached":
        body = {"model": "demo", "messages": msgs(f"cached question {i % 5}"), "temperature": 0}
    elif kind == "fallback":
        body["model"] = "broken"
    elif kind == "guard":
        body["messages"] = msgs("please tell me the forbiddenword now")
    return "POST", "/v1/chat/completions", json.dumps(body), key


def worker(a, host, port, deadline, counter, lock, stats):
    conn = None
    while True:
        with lock:
            if (a.requests and counter[0] >= a.requests) or (deadline and time.time() >= deadline):
                break
            counter[0] += 1
            i = counter[0]
        kind = random.choice(MIX)
        method, path, body, key = request_of(kind, i, a)
        status = "transport"
        try:
            if conn is None:
                conn = http.client.HTTPConnection(host, port, timeout=30)
            conn.request(method, path, body=body, headers={"Authorization": f"Bearer {key}",
                                                           "Content-Type": "application/json"})
            r = conn.getresponse()
            status = r.status
            if kind == "abort":
                r.read1(64) if hasattr(r, "read1") else r.read(64)
                conn.sock.shutdown(socket.SHUT_RDWR)
                conn.close()
                conn = None
            else:
                r.read()
                if r.getheader("connection", "").lower() == "close":
                    conn.close()
                    conn = None
        except (OSError, http.client.HTTPException):
            if conn:
                conn.close()
            conn = None
        with lock:
            k = stats.setdefault(kind, {})
            k[str(status)] = k.get(str(status), 0) + 1
    if conn:
        conn.close()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("--key", required=True)
    p.add_argument("--poor-key", required=True)
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--requests", type=int, default=0)
    p.add_argument("--seconds", type=float, default=0)
    a = p.parse_args()
    u = urllib.parse.urlparse(a.url)
    deadline = time.time() + a.seconds if a.seconds else None
    counter, lock, stats = [0], threading.Lock(), {}
    ts = [threading.Thread(target=worker, args=(a, u.hostname, u.port, deadline, counter, lock, stats))
          for _ in range(a.threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    errors = sum(n for kind, by in stats.items() for st, n in by.items()
                 if not st.isdigit() or int(st) not in EXPECT[kind])
    print(json.dumps({"requests": sum(sum(by.values()) for by in stats.values()), "by_kind": stats,
                      "errors": errors}))


if __name__ == "__main__":
    main()
