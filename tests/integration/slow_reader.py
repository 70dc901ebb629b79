#!/usr/bin/env python3
"""A deliberately slow streaming client: POST a streamed chat completion, then read READ bytes,
sleep PAUSE seconds, repeat. Decodes HTTP/1.1 (chunked, content-length or until close),
splits SSE events and checks the mock's sequence numbers (#0:, #1:, ...) arrive in order.
Prints one JSON summary line: status, events, content_bytes, body_bytes, in_order, done,
finish. Exit 0 when the stream arrived whole (in order, finish chunk, [DONE]).

usage: slow_reader.py HOST PORT BODY_JSON [READ_BYTES [PAUSE_S]]"""
import json
import socket
import sys
import time


def main():
    host, port, body = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
    read = int(sys.argv[4]) if len(sys.argv) > 4 else 65536
    pause = float(sys.argv[5]) if len(sys.argv) > 5 else 0.002
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, read)  # small window: backpressure bites
    s.connect((host, port))
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
              b"Accept: text/event-stream\r\nContent-Length: %d\r\n\r\n%s" % (host.encode(), port, len(body), body))

    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(read)
        if not d:
            break
        buf += d
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and len(lines[0].split()) > 1 else 0
    hdrs = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
    chunked = "chunked" in hdrs.get("transfer-encoding", "").lower()
    left = int(hdrs["content-length"]) if "content-length" in hdrs and not chunked else None

    st = dict(status=status, events=0, content_bytes=0, body_bytes=0, in_order=True, done=False,
              finish=None, error=None)
    sse = bytearray()
    seq = 0

    def feed(data):
        nonlocal seq
        st["body_bytes"] += len(data)
        sse.extend(data)
        start = 0
        while True:
            i = sse.find(b"\n\n", start)
            if i < 0:
                break
            ev = bytes(sse[start:i]).replace(b"\r", b"")
            start = i + 2
            if not ev.startswith(b"data:"):
                continue
            payload = ev[5:].strip()
            if payload == b"[DONE]":
                st["done"] = True
                continue
            try:
                obj = json.loads(payload)
            except ValueError:
                st["in_order"] = False
                continue
            if "error" in obj:
                st["error"] = obj["error"]
            for ch in obj.get("choices") or []:
                c = (ch.get("delta") or {}).get("content") or ""
                if ch.get("finish_reason"):
                    st["finish"] = ch["finish_reason"]
                if c.startswith("#"):
                    if not c.startswith("#%d:" % seq):
                        st["in_order"] = False
                    seq += 1
                    st["events"] += 1
                    st["content_bytes"] += len(c.encode())
        del sse[:start]

    # De-chunk incrementally; `pending` holds bytes not yet decoded.
    pending = rest
    chunk_left = 0
    eof = False
    while True:
        if chunked:
            progressed = True
            while progressed:
                progressed = False
                if chunk_left > 0 and pending:
                    take = pending[:chunk_left]
                    feed(take)
                    chunk_left -= len(take)
                    pending = pending[len(take):]
                    progressed = True
                if chunk_left == 0:
                    j = pending.find(b"\r\n")
                    if j == 0:          # the CRLF after a chunk's data
                        pending = pending[2:]
                        progressed = True
                    elif j > 0:
                        size = int(pending[:j].split(b";")[0], 16)
                        pending = pending[j + 2:]
                        if size == 0:
                            eof = True
                            break
                        chunk_left = size
                        progressed = True
        else:
            if pending:
                if left is not None:
                    pending = pending[:left]
                    left -= len(pending)
                feed(pending)
                pending = b""
            if left == 0:
                eof = True
        if eof:
            break
        time.sleep(pause)
        try:
            d = s.recv(read)
        except OSError as e:
            st["error"] = str(e)
            break
        if not d:
            break
        pending += d
    s.close()
    print(json.dumps(st))
    whole = st["status"] == 200 and st["in_order"] and st["done"] and st["finish"] == "stop" and not st["error"]
    sys.exit(0 if whole else 1)


if __name__ == "__main__":
    main()
