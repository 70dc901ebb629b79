#!/usr/bin/env python3
"""tests/integration/free_port.py — print a free 127.0.0.1 TCP port no other test was handed lately.

Two picks of bind(("127.0.0.1", 0)) can return the same port when the first is not yet bound
by the server it was meant for (seen: a gateway given one port for both its listen and admin
addresses). Every pick goes through one registry file under a lock, and a port handed out in
the last ten minutes is not handed out again, within one test or across tests run in parallel.
"""
import fcntl
import os
import socket
import sys
import tempfile
import time

KEEP_S = 600


def pick(taken):
    for _ in range(200):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port not in taken:
            return port
    sys.exit("free_port.py: no free port found that was not handed out lately")


def main():
    registry = os.path.join(tempfile.gettempdir(), f"sluice-test-ports.{os.getuid()}")
    now = time.time()
    with open(registry, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        kept = []
        for line in f:
            try:
                port, when = line.split()
                if now - float(when) < KEEP_S:
                    kept.append((int(port), float(when)))
            except ValueError:
                continue
        port = pick({p for p, _ in kept})
        kept.append((port, now))
        f.seek(0)
        f.truncate()
        f.write("".join(f"{p} {w:.0f}\n" for p, w in kept))
    print(port)


if __name__ == "__main__":
    main()
