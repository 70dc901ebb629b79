#!/usr/bin/env python3
"""transformers' own numbers beside sluice-bench-cuda's, same GPU, same run, same shapes.

    bench_hf.py MODEL_DIR OURS.json

Decode tokens/s at batch 1, 8, 32, 128: generate() (greedy, bf16, sdpa) with 128-token
prompts, timed as generate(129 new) minus generate(1 new), so that only the 128 decode steps
count, in up to three ways (HF_MODES, comma-separated; default all three):
  dynamic         the default dynamic cache, no compile;
  static          cache_implementation="static", compile disabled;
  static-compile  cache_implementation="static" with torch.compile (transformers compiles the
                  forward itself for a static cache), at batch 1 only (HF_COMPILE_BATCHES), in
                  a child process given HF_COMPILE_TIMEOUT seconds (default 300) for the
                  compile and the timing; "timeout" in the table if it did not finish.
Time to first token: one forward over a 128/1024/4096-token prompt (median of 5). Prints one
table with ours, transformers' and the ratios."""
import json
import os
import statistics
import subprocess
import sys
import time

import torch
from transformers import AutoModelForCausalLM

PROMPT, GEN = 128, 128
BATCHES = (1, 8, 32, 128)


def timed(fn):
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    return time.perf_counter() - t0


def load(mdir):
    return AutoModelForCausalLM.from_pretrained(mdir, dtype=torch.bfloat16).cuda().eval()


def decode_tps(model, mode, B, g):
    ids = torch.randint(0, 151643, (B, PROMPT), device="cuda", generator=g)
    kw = dict(do_sample=False, pad_token_id=0, eos_token_id=None)
    if mode != "dynamic":
        kw["cache_implementation"] = "static"
    if mode == "static":
        kw["disable_compile"] = True

    def gen(n):
        return model.generate(ids, max_new_tokens=n, min_new_tokens=n, **kw)
    # warm-up at the longest length first: a static cache is kept for shorter runs after it,
    # so the compiled graphs are made once
    gen(GEN + 1 if mode == "static-compile" else 4)
    t1 = statistics.median(timed(lambda: gen(1)) for _ in range(3))
    tn = timed(lambda: gen(GEN + 1))
    return B * GEN / (tn - t1)


def child(mdir, batches):
    """One mode in a child process: prints {"B": tokens/s} as JSON."""
    model = load(mdir)
    g = torch.Generator(device="cuda").manual_seed(0)
    out = {}
    with torch.no_grad():
        for B in batches:
            t0 = time.perf_counter()
            out[B] = decode_tps(model, "static-compile", B, g)
            print(f"# static-compile batch {B}: {out[B]:.0f} tokens/s, "
                  f"{time.perf_counter() - t0:.0f} s with the compile", file=sys.stderr)
    print(json.dumps(out))


def main():
    if sys.argv[1] == "--child":
        child(sys.argv[2], [int(b) for b in sys.argv[3].split(",")])
        return
    mdir, ours = sys.argv[1], json.load(open(sys.argv[2]))
    modes = os.environ.get("HF_MODES", "dynamic,static,static-compile").split(",")
    dec = {m: {} for m in modes}
    ttft = {}
    model = load(mdir)
    g = torch.Generator(device="cuda").manual_seed(0)
    with torch.no_grad():
        for mode in modes:
            if mode == "static-compile":
                continue
            for B in BATCHES:
                dec[mode][B] = decode_tps(model, mode, B, g)
                print(f"# {mode} batch {B}: {dec[mode][B]:.0f} tokens/s", file=sys.stderr)
        for n in (128, 1024, 4096):
            ids = torch.randint(0, 151643, (1, n), device="cuda", generator=g)
            model(ids)
            ttft[n] = statistics.median(timed(lambda: model(ids)) for _ in range(5)) * 1e3
    if "static-compile" in modes:
        del model
        torch.cuda.empty_cache()
        batches = os.environ.get("HF_COMPILE_BATCHES", "1")
        try:
            r = subprocess.run([sys.executable, __file__, "--child", mdir, batches],
                               capture_output=True, text=True,
                               timeout=float(os.environ.get("HF_COMPILE_TIMEOUT", "300")))
            sys.stderr.write(r.stderr[-3000:])
            lines = [l for l in r.stdout.splitlines() if l.startswith("{")]
            dec["static-compile"] = {int(k): v for k, v in json.loads(lines[-1]).items()} if lines else {}
        except subprocess.TimeoutExpired:
            print("# static-compile: timeout", file=sys.stderr)
    print(f"memory-bandwidth roofline (batch 1): {ours['roofline_tps']:.0f} tokens/s "
          f"({ours['step_gb']:.2f} GB per step over {ours['bandwidth_gbs']:.0f} GB/s copy rate)")
    print("| decode batch | sluice tokens/s | " + " | ".join(f"transformers {m}" for m in modes) +
          " | sluice / best transformers | sluice % of roofline x batch |")
    print("|---|---|" + "---|" * len(modes) + "---|---|")
    for B in BATCHES:
        o = ours["decode"][str(B)]
        cells = [f"{dec[m][B]:.0f}" if B in dec[m] else "-" for m in modes]
        best = max([dec[m][B] for m in modes if B in dec[m]] or [0])
        ratio = f"{o / best:.2f}x" if best else "-"
        print(f"| {B} | {o:.0f} | " + " | ".join(cells) +
              f" | {ratio} | {100 * o / B / ours['roofline_tps']:.0f}% |")
    print("| prompt tokens | sluice TTFT ms | transformers TTFT ms | ratio |")
    print("|---|---|---|---|")
    for n in (128, 1024, 4096):
        o = ours["ttft_ms"][str(n)]
        print(f"| {n} | {o:.2f} | {ttft[n]:.2f} | {ttft[n] / o:.2f}x faster |")


main()
