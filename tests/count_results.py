#!/usr/bin/env python3
"""Count test results from meson's testlog.json: every TAP 'ok'/'not ok' line is one
result; a test without TAP output counts once by its status. Prints failures, then
'N passed, N failed' last. Exit 1 if anything failed."""
import json, re, sys

passed = failed = 0
failures = []
try:
    lines = open(sys.argv[1], encoding="utf-8", errors="replace").read().splitlines()
except OSError as e:
    print(f"no test log: {e}")
    print("0 passed, 1 failed")
    sys.exit(1)
tap = re.compile(r"^(not ok|ok)\b\s*\d*\s*-?\s*(.*)$")
for line in lines:
    t = json.loads(line)
    name, result, out = t.get("name"), t.get("result"), t.get("stdout") or ""
    n_ok = n_bad = 0
    for l in out.splitlines():
        m = tap.match(l.strip())
        if not m:
            continue
        desc = m.group(2)
        if "# SKIP" in desc.upper():
            failures.append(f"{name}: skipped: {desc}")
            n_bad += 1
        elif m.group(1) == "ok":
            n_ok += 1
        else:
            n_bad += 1
            failures.append(f"{name}: {desc}")
    if n_ok + n_bad == 0 or (result not in ("OK", "EXPECTEDFAIL") and n_bad == 0):
        # no TAP, or the program failed (crash, timeout, bad exit) beyond its TAP lines
        if result in ("OK", "EXPECTEDFAIL"):
            n_ok += 1
        else:
            n_bad += 1
            failures.append(f"{name}: {result}")
    passed += n_ok
    failed += n_bad
for f in failures:
    print("FAILED", f)
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
