#!/usr/bin/env python3
"""Random-weight bf16 model at a real DeepSeek-R1-Distill-Qwen shape, made with transformers
(on the GPU host; never committed).   make_model.py OUTDIR 1.5b|7b [TOKENIZER_DIR]

Shapes from the published model cards' config.json. Weights: transformers' own init
(normal, std = initializer_range 0.02) under torch.manual_seed(0); biases and norm
weights are randomised too, so that a bug in applying them would show."""
import os
import shutil
import sys

import torch
from transformers import AutoModelForCausalLM, Qwen2Config

SHAPES = {
    "1.5b": dict(hidden_size=1536, num_hidden_layers=28, num_attention_heads=12,
                 num_key_value_heads=2, intermediate_size=8960, vocab_size=151936),
    "7b": dict(hidden_size=3584, num_hidden_layers=28, num_attention_heads=28,
               num_key_value_heads=4, intermediate_size=18944, vocab_size=152064),
}


def main():
    out, shape = sys.argv[1], sys.argv[2]
    kw = dict(SHAPES[shape], max_position_embeddings=131072, rms_norm_eps=1e-6,
              tie_word_embeddings=False, bos_token_id=151646, eos_token_id=151643,
              hidden_act="silu", use_sliding_window=False, sliding_window=None,
              max_window_layers=21, torch_dtype="bfloat16")
    try:
        cfg = Qwen2Config(rope_parameters={"rope_theta": 10000.0, "rope_type": "default"}, **kw)
    except TypeError:
        cfg = Qwen2Config(rope_theta=10000.0, **kw)
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
    g = torch.Generator(device="cuda").manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g, device="cuda"))
            elif name.endswith(".bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g, device="cuda"))
    model.save_pretrained(out)
    if len(sys.argv) > 3:
        for f in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy(os.path.join(sys.argv[3], f), os.path.join(out, f))
    print(f"saved {shape} to {out}: {sum(p.numel() for p in model.parameters()) / 1e9:.3f}B params")


main()
