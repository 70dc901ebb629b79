#!/usr/bin/env bash
# Fault injection, client side: 10k request headers (431), a 1 GB body with a
# Content-Length and one streamed chunked from /dev/zero (413 early, never buffered: the
# gateway's RSS stays small), and slowloris (head and body trickled a byte at a time:
# 408 and closed at the head/body deadline, while other clients are served). TAP.
. "$(dirname "$0")/lib.sh"

sl_start_mock || sl_bail "mock upstream starts"
GW_PORT=$(sl_free_port)
SL_CONF_SERVER="{ workers: 2, max_body_size: 1MiB, header_timeout: 2s, body_timeout: 2s }"
sl_gw_up
BODY='{"model":"demo","messages":[{"role":"user","content":"hi"}]}'
served() { sl_http POST /v1/chat/completions "$BODY"; [ "$HTTP_CODE" = 200 ]; }
rss0=$(sl_rss_kib "$GW_PID")

# ---- 10k headers ----
out=$("$SL_PY" - "$GW_PORT" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(10000)) + b"\r\n"
try:
    for i in range(0, len(head), 4096):
        s.sendall(head[i:i + 4096])
except OSError:
    pass  # the gateway answered and closed while we were still sending
data = b""
try:
    while True:
        b = s.recv(65536)
        if not b:
            break
        data += b
except OSError:
    pass
print(data.split(b"\r\n", 1)[0].decode(errors="replace") + " " + ("json" if b'"invalid_request"' in data else "-"))
PY
)
sl_like "10k headers: 431 with an OpenAI error" "$out" '^HTTP/1.1 431 .* json$'
sl_check "10k headers: a normal request is served after" served

# ---- long header lines, sent at once: up to 8 KiB served, past 12 KiB refused (431),
# however the gateway's reads fall; then three pipelined requests answered in order ----
out=$("$SL_PY" - "$GW_PORT" <<'PY'
import re, socket, sys
def ask(data, n=1):
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
    s.sendall(data)
    got = b""
    try:
        while got.count(b"HTTP/1.1 ") < n or not got.endswith(b"}"):
            b = s.recv(65536)
            if not b:
                break
            got += b
    except OSError:
        pass
    s.close()
    return " ".join(m.decode() for m in re.findall(rb"HTTP/1\.1 (\d\d\d) ", got))
body = b'{"model":"demo","messages":[{"role":"user","content":"hi"}]}'
def req(extra=b"", close=False):
    return (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + extra +
            (b"Connection: close\r\n" if close else b"") + b"Content-Length: %d\r\n\r\n" % len(body) + body)
print(ask(req(b"X-Long: " + b"a" * 8000 + b"\r\n", True)), ask(req(b"X-Long: " + b"a" * 16000 + b"\r\n", True)),
      ask(req() + req() + req(close=True), 3))
PY
)
sl_is "8 KB header line: 200; 16 KB: 431; three pipelined: 200 200 200" "$out" "200 431 200 200 200"

# ---- 1 GB body ----
truncate -s 1G "$SL_TMP/big"
code=$(curl -sS -o "$SL_TMP/big.out" -w '%{http_code}' -X POST -H 'content-type: application/json' \
       -T "$SL_TMP/big" --max-time 60 "$GW_URL/v1/chat/completions" 2>"$SL_TMP/curl.err")
sl_is "1 GB body with Content-Length: 413" "$code" 413
sl_is "1 GB body: invalid_request error" "$(sl_json 'd["error"]["code"]' <"$SL_TMP/big.out")" invalid_request
code=$(head -c 1073741824 /dev/zero | curl -sS -o "$SL_TMP/big2.out" -w '%{http_code}' -X POST \
       -H 'content-type: application/json' -T - --max-time 60 "$GW_URL/v1/chat/completions" 2>"$SL_TMP/curl2.err")
sl_is "1 GB chunked body from /dev/zero: 413" "$code" 413
rss1=$(sl_rss_kib "$GW_PID")
sl_check "1 GB bodies were never buffered (RSS grew $(( (rss1 - rss0) / 1024 )) MiB, < 32)" [ $((rss1 - rss0)) -lt 32768 ]
sl_check "1 GB bodies: a normal request is served after" served

# ---- slowloris ----
"$SL_PY" - "$GW_PORT" >"$SL_TMP/loris" <<'PY' &
import socket, sys, time
port = int(sys.argv[1])
conns = []
trickle = {}
for i in range(100):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    if i % 2:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")     # head trickled
        trickle[s] = b"X-Slow: " + b"a" * 100
    else:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 200\r\n\r\n")
        trickle[s] = b"{" * 200                                              # body trickled
    s.setblocking(False)
    conns.append(s)
status = {}
start = time.time()
sent = 0
while len(status) < len(conns) and time.time() - start < 60:
    for s in conns:
        if s in status:
            continue
        try:
            d = s.recv(4096)
            status[s] = d.split(b"\r\n", 1)[0].decode(errors="replace") if d else "closed"
            continue
        except BlockingIOError:
            pass
        except OSError as e:
            status[s] = "reset"
            continue
        if sent < len(trickle[s]):
            try:
                s.send(trickle[s][sent:sent + 1])
            except OSError:
                pass
    sent += 1
    time.sleep(0.25)
print(sum(1 for v in status.values() if " 408 " in v + " "), len(status), len(conns))
PY
LORIS=$!
sleep 1
sl_check "slowloris: a normal request is served during the attack" served
wait "$LORIS"
read -r n408 ended total <"$SL_TMP/loris"
sl_is "slowloris: every trickling connection was ended by the gateway" "$ended/$total" 100/100
sl_is "slowloris: each got 408" "$n408" 100
sl_gw_alive "gateway still running"
sl_check "a normal request is served after" served

# ---- many idle keep-alive clients: each answered once, then left open ----
# a connection waiting for its next request holds no buffer (they go back to the worker
# between requests): 800 of them cost the gateway well under 4 KiB each
read -r n rss_before rss_after < <("$SL_PY" - "$GW_PORT" "$GW_PID" <<'PY'
import socket, sys, time
port, pid, n = int(sys.argv[1]), sys.argv[2], 800
rss = lambda: int(next(l for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS:")).split()[1])
before, socks = rss(), []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n")
    got = b""
    while b"\r\n\r\n" not in got:
        got += s.recv(65536)
    socks.append(s)
time.sleep(0.5)
print(len(socks), before, rss())
PY
)
sl_is "idle clients: all $n answered and held open" "$n" 800
if sl_sanitized; then # ASan's quarantine holds the requests' freed memory: RSS is not the gateway's
    sl_diag "idle clients: RSS is checked in the plain build only ($(( (rss_after - rss_before) * 1024 / 800 )) bytes each here)"
else
    sl_check "idle clients: $(( (rss_after - rss_before) * 1024 / 800 )) bytes of RSS each (under 4 KiB)" \
        test $(( (rss_after - rss_before) * 1024 / 800 )) -lt 4096
fi
sl_check "a normal request is served after they leave" served
sl_done
