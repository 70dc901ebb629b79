#!/usr/bin/env node
// The official `openai` npm client (tests/node_modules) with its baseURL at the gateway, in
// front of the mock upstream: what a user's existing code does must keep working. TAP.
import OpenAI from 'openai';
import { check, notOk, done, bail, freePort, startMock, gatewayConfig, startGateway, mockGet, MOCK_KEY } from './lib.mjs';

let mock, gw;
try {
    mock = await startMock(['--set', `require_key="${MOCK_KEY}"`]);
    const port = await freePort();
    gw = await startGateway(gatewayConfig({ port, mockUrl: mock.url }), port);
} catch (e) {
    await bail('gateway starts and answers', e.message);
}

const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'sk-client-unused', maxRetries: 0, timeout: 30000 });
const lastUpstream = async () => (await mockGet(mock.url, '/__mock/requests')).pop();
const messages = [{ role: 'user', content: 'Say hello' }];

async function t(name, fn) {
    try { await fn(); } catch (e) { notOk(name, `${e.constructor.name}: ${e.message}`); }
}

await t('chat.completions.create', async () => {
    const { data, response } = await client.chat.completions.create({ model: 'demo', messages }).withResponse();
    check('chat.completions.create: content from the upstream', data.choices[0].message.content === 'hellohellohellohellohello', data);
    check('chat.completions.create: usage', data.usage?.total_tokens === 7, data.usage);
    check('chat: x-sluice-request-id header', !!response.headers.get('x-sluice-request-id'), [...response.headers]);
    const up = await lastUpstream();
    check('chat: upstream saw the rewritten model and its own key',
        up.body.model === 'mock-model' && up.headers.authorization === `Bearer ${MOCK_KEY}`, up);
});

await t('streamed chat', async () => {
    const stream = await client.chat.completions.create({ model: 'demo', messages, stream: true,
        mock: { texts: ['Hel', 'lo, ', 'wor', 'ld'], chunks: 4, chunk_delay_ms: 10 } });
    let text = '', n = 0, finish = null;
    for await (const chunk of stream) {
        n++;
        const c = chunk.choices[0];
        if (c?.delta?.content) text += c.delta.content;
        if (c?.finish_reason) finish = c.finish_reason;
    }
    check('streamed chat: chunks joined in order', text === 'Hello, world', text);
    check('streamed chat: finish_reason stop', finish === 'stop' && n >= 5, { n, finish });
});

await t('streamed chat with include_usage', async () => {
    const stream = await client.chat.completions.create({ model: 'demo', messages, stream: true,
        stream_options: { include_usage: true }, mock: { chunks: 3 } });
    let usage = null;
    for await (const chunk of stream) if (chunk.usage) usage = chunk.usage;
    check('streamed chat: usage chunk when asked (include_usage)', usage?.completion_tokens === 3, usage);
});

await t('stream via .stream() helper', async () => {
    const runner = client.chat.completions.stream({ model: 'demo', messages, mock: { texts: ['x', 'y', 'z'], chunks: 3 } });
    const final = await runner.finalChatCompletion();
    check('chat.completions.stream(): final message assembled', final.choices[0].message.content === 'xyz', final);
});

await t('completions.create', async () => {
    const c = await client.completions.create({ model: 'demo', prompt: 'Once upon a time', mock: { text: 'ab', chunks: 2 } });
    check('completions.create: text', c.choices[0].text === 'abab', c);
});

await t('embeddings.create', async () => {
    // The client asks for base64 by default and decodes it: the gateway must pass that through.
    const e = await client.embeddings.create({ model: 'demo', input: ['first', 'second'] });
    check('embeddings.create: two float vectors', e.data.length === 2 && e.data[0].embedding.length === 8
        && typeof e.data[0].embedding[0] === 'number', e.data);
});

await t('models.list', async () => {
    const ids = [];
    for await (const m of client.models.list()) ids.push(m.id);
    check('models.list: the client-facing model', ids.includes('demo'), ids);
});

await t('unknown model', async () => {
    try {
        await client.chat.completions.create({ model: 'no-such-model', messages });
        notOk('unknown model: NotFoundError', 'the call succeeded');
    } catch (e) {
        check('unknown model: openai.NotFoundError with code model_not_found',
            e instanceof OpenAI.NotFoundError && e.status === 404 && e.code === 'model_not_found', { name: e.constructor.name, status: e.status, code: e.code, message: e.message });
    }
});

await t('upstream 400', async () => {
    try {
        await client.chat.completions.create({ model: 'demo', messages, mock: { status: 400, error_code: 'context_length_exceeded' } });
        notOk('upstream 400: BadRequestError', 'the call succeeded');
    } catch (e) {
        check('upstream 400: openai.BadRequestError with the upstream code',
            e instanceof OpenAI.BadRequestError && e.code === 'context_length_exceeded', { name: e.constructor.name, status: e.status, code: e.code });
    }
});

await t('stream failing mid-way', async () => {
    // An upstream reset after two chunks must reach the client as an error, not a clean end.
    const stream = await client.chat.completions.create({ model: 'demo', messages, stream: true,
        mock: { texts: ['a', 'b'], chunks: 10, reset_after_chunks: 2 } });
    let text = '', error = null;
    try {
        for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
    } catch (e) { error = e; }
    check('upstream failure mid-stream: chunks so far, then an APIError in the client',
        text === 'ab' && error instanceof OpenAI.APIError, { text, error: error && `${error.constructor.name}: ${error.message}` });
});

await t('abort mid-stream', async () => {
    const ac = new AbortController();
    const stream = await client.chat.completions.create({ model: 'demo', messages, stream: true,
        mock: { chunks: 500, chunk_delay_ms: 50, tag: 'abort-me' } }, { signal: ac.signal });
    let n = 0;
    try {
        for await (const chunk of stream) { if (++n === 3) ac.abort(); }
    } catch { /* the abort */ }
    let rec;
    for (let i = 0; i < 100; i++) {
        rec = (await mockGet(mock.url, '/__mock/requests')).find((r) => r.body?.mock?.tag === 'abort-me');
        if (rec?.outcome) break;
        await new Promise((r) => setTimeout(r, 100));
    }
    check('client abort mid-stream cancels the upstream request', rec?.outcome === 'aborted', rec && { outcome: rec.outcome });
});

await t('gateway still serves', async () => {
    const c = await client.chat.completions.create({ model: 'demo', messages, mock: { chunks: 1 } });
    check('after errors the gateway still serves', c.choices[0].message.content === 'hello', c);
});

await done();
