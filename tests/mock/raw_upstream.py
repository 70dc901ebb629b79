#!/usr/bin/env python3
"""raw_upstream.py PORT — an HTTP/1.1 upstream written at the byte level, for the wire
cases a framework server never produces. Each request's JSON body carries
"scenario": NAME (the gateway passes unknown fields through); the answer is a chat
completion whose content is "ok NAME", framed as the scenario says:

  length        Content-Length, keep-alive
  chunked       chunked, with chunk extensions and a trailer, keep-alive
  trickle       chunked, written one byte at a time
  http10        HTTP/1.0, no length: the body ends when the connection closes
  continue      a 100 Continue head first, then the answer
  close_idle    Content-Length, then the connection is closed 100 ms later (idle in the pool)
  drop_next     answered; the NEXT request on this connection is read and the
                connection closed without an answer (a stale pooled connection)
  two_lengths   two Content-Length headers that disagree (malformed)
  short         Content-Length larger than the body, then close (truncated)
  huge_head     70 KiB of headers (too large)
  bad_chunk     a chunk size that is not hex (malformed)

GET /stats answers {"connections": N, "requests": N}: the connections that carried a POST,
and the POSTs read (the stats requests themselves are not counted).
"""
import json
import socket
import sys
import threading
import time

stats = {"connections": 0, "requests": 0}
lock = threading.Lock()


def answer_body(name):
    return json.dumps({
        "id": "chatcmpl-raw", "object": "chat.completion", "created": 1700000000, "model": "raw-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok " + name}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}).encode()


def read_request(conn, buf):
    """One request (head and Content-Length body) from conn; None at EOF."""
    while b"\r\n\r\n" not in buf[0]:
        d = conn.recv(65536)
        if not d:
            return None
        buf[0] += d
    head, _, rest = buf[0].partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = 0
    for l in lines[1:]:
        k, _, v = l.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v.strip())
    while len(rest) < length:
        d = conn.recv(65536)
        if not d:
            return None
        rest += d
    buf[0] = rest[length:]
    return lines[0].decode(), rest[:length]


def serve(conn):
    counted = False
    buf = [b""]
    drop_next = False
    try:
        while True:
            req = read_request(conn, buf)
            if req is None:
                return
            line, body = req
            if line.startswith("POST"):
                with lock:
                    stats["requests"] += 1
                    stats["connections"] += 0 if counted else 1
                counted = True
            if line.startswith("GET /stats"):
                b = json.dumps(stats).encode()
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(b) + b)
                continue
            if drop_next:
                return  # read it, answer nothing, close
            try:
                name = json.loads(body).get("scenario", "length")
            except ValueError:
                name = "length"
            b = answer_body(name)
            ct = b"Content-Type: application/json\r\n"
            if name in ("length", "close_idle", "drop_next"):
                conn.sendall(b"HTTP/1.1 200 OK\r\n" + ct + b"Content-Length: %d\r\n\r\n" % len(b) + b)
                if name == "close_idle":
                    time.sleep(0.1)
                    return
                drop_next = name == "drop_next"
            elif name in ("chunked", "trickle"):
                half = len(b) // 2
                wire = (b"HTTP/1.1 200 OK\r\n" + ct + b"Transfer-Encoding: chunked\r\n\r\n" +
                        b"%x;ext=1\r\n" % half + b[:half] + b"\r\n" + b"%X\r\n" % (len(b) - half) + b[half:] +
                        b"\r\n0\r\nX-Trailer: yes\r\n\r\n")
                if name == "chunked":
                    conn.sendall(wire)
                else:
                    for i in range(len(wire)):
                        conn.sendall(wire[i:i + 1])
                        time.sleep(0.001)
            elif name == "http10":
                conn.sendall(b"HTTP/1.0 200 OK\r\n" + ct + b"\r\n" + b)
                return
            elif name == "continue":
                conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n" + ct +
                             b"Content-Length: %d\r\n\r\n" % len(b) + b)
            elif name == "two_lengths":
                conn.sendall(b"HTTP/1.1 200 OK\r\n" + ct + b"Content-Length: %d\r\nContent-Length: %d\r\n\r\n"
                             % (len(b), len(b) + 1) + b)
                return
            elif name == "short":
                conn.sendall(b"HTTP/1.1 200 OK\r\n" + ct + b"Content-Length: %d\r\n\r\n" % (len(b) + 50) + b)
                return
            elif name == "huge_head":
                conn.sendall(b"HTTP/1.1 200 OK\r\n" + ct + b"".join(b"X-Pad-%d: %s\r\n" % (i, b"a" * 1000)
                                                                     for i in range(70)) +
                             b"Content-Length: %d\r\n\r\n" % len(b) + b)
                return
            elif name == "bad_chunk":
                conn.sendall(b"HTTP/1.1 200 OK\r\n" + ct + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n" + b + b"\r\n0\r\n\r\n")
                return
    except OSError:
        pass
    finally:
        conn.close()


def main():
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", int(sys.argv[1])))
    s.listen(128)
    while True:
        c, _ = s.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()


if __name__ == "__main__":
    main()
