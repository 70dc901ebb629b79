#!/usr/bin/env python3
"""transformers' own numbers beside sluice-bench-cuda's, same GPU, same run, same shapes.

    bench_hf.py MODEL_DIR OURS.json

Decode tokens/s at batch 1, 8, 32, 128: generate() (greedy, bf16, sdpa, dynamic cache) with
128-token prompts, timed as generate(129 new) minus generate(1 new), so that only the 128
decode steps count. Time to first token: one forward over a 128/1024/4096-token prompt
(median of 5). Prints one table with ours, transformers' and the ratio."""
import json
import statistics
import sys
import time

import torch
from transformers import AutoModelForCausalLM

PROMPT, GEN = 128, 128


def timed(fn):
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    return time.perf_counter() - t0


def main():
    mdir, ours = sys.argv[1], json.load(open(sys.argv[2]))
    model = AutoModelForCausalLM.from_pretrained(mdir, dtype=torch.bfloat16).cuda().eval()
    V = model.config.vocab_size
    g = torch.Generator(device="cuda").manual_seed(0)
    dec, ttft = {}, {}
    with torch.no_grad():
        for B in (1, 8, 32, 128):
            ids = torch.randint(0, 151643, (B, PROMPT), device="cuda", generator=g)
            kw = dict(do_sample=False, pad_token_id=0, eos_token_id=None)

            def gen(n):
                return model.generate(ids, max_new_tokens=n, min_new_tokens=n, **kw)
            gen(4)
            t1 = statistics.median(timed(lambda: gen(1)) for _ in range(3))
            tn = timed(lambda: gen(GEN + 1))
            dec[B] = B * GEN / (tn - t1)
        for n in (128, 1024, 4096):
            ids = torch.randint(0, 151643, (1, n), device="cuda", generator=g)
            model(ids)
            ttft[n] = statistics.median(timed(lambda: model(ids)) for _ in range(5)) * 1e3
    print(f"memory-bandwidth roofline (batch 1): {ours['roofline_tps']:.0f} tokens/s "
          f"({ours['step_gb']:.2f} GB per step over {ours['bandwidth_gbs']:.0f} GB/s copy rate)")
    print("| decode batch | sluice tokens/s | transformers tokens/s | ratio | sluice % of roofline x batch |")
    print("|---|---|---|---|---|")
    for B in (1, 8, 32, 128):
        o = ours["decode"][str(B)]
        print(f"| {B} | {o:.0f} | {dec[B]:.0f} | {o / dec[B]:.2f}x | "
              f"{100 * o / B / ours['roofline_tps']:.0f}% |")
    print("| prompt tokens | sluice TTFT ms | transformers TTFT ms | ratio |")
    print("|---|---|---|---|")
    for n in (128, 1024, 4096):
        o = ours["ttft_ms"][str(n)]
        print(f"| {n} | {o:.2f} | {ttft[n]:.2f} | {ttft[n] / o:.2f}x faster |")


main()
