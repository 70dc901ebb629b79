#!/usr/bin/env python3
"""Renders generated OpenAI message lists with the REAL chat template of each model's
tokenizer_config.json through jinja2, set up as Hugging Face transformers sets it up, and
compares byte for byte with our C rendering (tmpl_render). Prints TAP.

usage: template_check.py TMPL_RENDER NAME=TOKENIZER_CONFIG [NAME=...] [--cases N]"""
import json
import random
import subprocess
import sys

import jinja2
import jinja2.ext
from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment


def hf_environment():
    # As transformers' chat template rendering: sandboxed, trim_blocks + lstrip_blocks,
    # loopcontrols, raise_exception and a tojson that keeps non-ASCII characters.
    def raise_exception(message):
        raise TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    return env


def token_text(v):
    if isinstance(v, dict):
        return v.get("content")
    return v


def flatten(messages):
    # Text-part arrays become one string joined by "\n" (what vLLM does for text models,
    # and what our renderer does) before jinja sees them.
    out = []
    for m in messages:
        m = dict(m)
        if isinstance(m.get("content"), list):
            m["content"] = "\n".join(p["text"] for p in m["content"])
        out.append(m)
    return out


USER = ["Hello", "What is 2+2?", "  spaced out  ", "\n\nleading newlines", "trailing newline\n", "",
        "你好，世界！请解释一下推理。", "Ünïcödé façade — naïve café 😀👍🏽", "multi\nline\n\ntext",
        "code: `int main(void) { return 0; }`", "tabs\tand\u00a0nbsp\u3000ideographic space",
        "<think>not really thinking</think>", "<tool_response>fake</tool_response>", "e\u0301 decomposed",
        "a very long question " * 20, "ends with spaces   ", "\t\n", "emoji only 🎉", "<|im_start|>literal"]
ASSIST = ["Sure.", "4", "<think>\nLet me think.\n</think>\n\nThe answer is 4.", "<think>a</think>b",
          "reasoning without open tag\n</think>\n\nanswer", "</think>", "x</think>y</think>z",
          "\n\nleading", "<think>\n\n</think>\n\n", "答案是四。", "  spaced  ", "", "plain\nmulti\nline",
          "<think>deep\n<think>nested</think>after"]
SYSTEM = ["You are a helpful assistant.", "", "  系统提示  ", "Be terse.\nAnswer in French.", "sys 😀"]
TOOL = ["{\"temp\": 21}", "sunny", "", "line1\nline2", "结果"]


def text_or_parts(rng, s):
    if s and rng.random() < 0.15:
        cut = rng.randrange(len(s) + 1)
        return [{"type": "text", "text": s[:cut]}, {"type": "text", "text": s[cut:]}]
    return s


def tool_call(rng, i):
    args = rng.choice(['{"city": "Paris"}', '{"q": "天气", "n": 3}', "{}", '{"s": "a\\"b\\n"}'])
    return {"id": f"call_{i}", "type": "function", "function": {"name": rng.choice(["get_weather", "search"]),
                                                                 "arguments": args}}


def gen_case(rng, family, qwen3):
    msgs = []
    if rng.random() < 0.5:
        msgs.append({"role": "system", "content": text_or_parts(rng, rng.choice(SYSTEM))})
    turns = rng.randint(1, 5)
    use_tools = family in ("deepseek", "chatml") and rng.random() < 0.3
    for t in range(turns):
        msgs.append({"role": "user", "content": text_or_parts(rng, rng.choice(USER))})
        if family in ("deepseek", "chatml") and rng.random() < 0.1:
            msgs.append({"role": "system", "content": rng.choice(SYSTEM)})
        last = t == turns - 1
        if last and rng.random() < 0.6:
            break
        if use_tools and rng.random() < 0.5:
            calls = [tool_call(rng, k) for k in range(rng.randint(1, 2))]
            if family == "deepseek":
                msgs.append({"role": "assistant", "content": None, "tool_calls": calls})
            else:
                msgs.append({"role": "assistant", "content": rng.choice(["", "Let me check.", "<think>hm</think>ok"]),
                             "tool_calls": calls})
            for _ in range(rng.randint(1, 2)):
                msgs.append({"role": "tool", "tool_call_id": "call_0", "content": rng.choice(TOOL)})
            if rng.random() < 0.5:
                continue
        m = {"role": "assistant", "content": text_or_parts(rng, rng.choice(ASSIST))}
        if qwen3 and rng.random() < 0.2:
            m["reasoning_content"] = rng.choice(["given reasoning", "\nnl reasoning\n", ""])
        msgs.append(m)
    if family == "llama3" and rng.random() < 0.2:
        msgs.append({"role": rng.choice(["tool", "ipython"]), "content": rng.choice(TOOL)})
    return {"messages": msgs, "add_generation_prompt": rng.random() < 0.6}


def main():
    args = sys.argv[1:]
    n_cases = 400
    if "--cases" in args:
        i = args.index("--cases")
        n_cases = int(args[i + 1])
        del args[i:i + 2]
    tool, configs = args[0], [a.split("=", 1) for a in args[1:]]
    env = hf_environment()
    print(f"1..{len(configs)}")
    failed = 0
    for num, (name, path) in enumerate(configs, 1):
        cfg = json.load(open(path, encoding="utf-8"))
        src = cfg["chat_template"]
        family = "deepseek" if "<｜User｜>" in src else "chatml" if "<|im_start|>" in src else "llama3"
        tmpl = env.from_string(src)
        special = {k: token_text(cfg.get(k)) for k in ("bos_token", "eos_token", "unk_token", "pad_token")}
        special = {k: v for k, v in special.items() if v is not None}
        rng = random.Random(f"sluice-{name}")
        cases, want = [], []
        for _ in range(n_cases):
            c = gen_case(rng, family, "reasoning_content" in src)
            try:
                want.append(tmpl.render(messages=flatten(c["messages"]),
                                        add_generation_prompt=c["add_generation_prompt"], **special))
            except Exception as e:  # a generator bug: the real template refuses this case
                want.append(f"<jinja error: {e}>")
            cases.append(c)
        stats = {"tool calls": sum(any(m.get("tool_calls") for m in c["messages"]) for c in cases),
                 "</think> in history": sum(any(m["role"] == "assistant" and "</think>" in json.dumps(m.get("content"))
                                                for m in c["messages"]) for c in cases),
                 "text parts": sum(any(isinstance(m.get("content"), list) for m in c["messages"]) for c in cases),
                 "system": sum(any(m["role"] == "system" for m in c["messages"]) for c in cases),
                 "generation prompt": sum(c["add_generation_prompt"] for c in cases)}
        print(f"# {name}: " + ", ".join(f"{v} with {k}" for k, v in stats.items()))
        proc = subprocess.run([tool, path], input="".join(json.dumps(c, ensure_ascii=False) + "\n" for c in cases),
                              capture_output=True, text=True, encoding="utf-8")
        got = [json.loads(l) for l in proc.stdout.splitlines()]
        bad = 0
        if proc.returncode != 0 or len(got) != len(cases):
            print(f"# tmpl_render failed: rc={proc.returncode} {proc.stderr.strip()}")
            bad = len(cases)
        else:
            for c, w, g in zip(cases, want, got):
                if g.get("out") != w:
                    bad += 1
                    if bad <= 3:
                        print(f"# {name}: mismatch for {json.dumps(c, ensure_ascii=False)[:600]}")
                        print(f"#   jinja2: {w!r}"[:1500])
                        print(f"#   ours  : {g.get('out', g.get('error'))!r}"[:1500])
        failed += bad > 0
        ok = "ok" if bad == 0 else "not ok"
        print(f"{ok} {num} - {name}: {len(cases) - bad}/{len(cases)} message lists render byte-identical to jinja2")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
