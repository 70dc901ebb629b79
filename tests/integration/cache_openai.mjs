#!/usr/bin/env node
// Cache hits as the official `openai` npm client sees them: a streamed hit parses as a normal
// stream (text, finish_reason, usage when asked), a non-streamed hit from a stored stream is a
// normal completion, and the upstream is asked once. TAP.
import OpenAI from 'openai';
import { check, notOk, done, bail, freePort, startMock, gatewayConfig, startGateway, mockGet } from './lib.mjs';

let mock, gw;
try {
    mock = await startMock();
    const port = await freePort();
    gw = await startGateway(gatewayConfig({ port, mockUrl: mock.url,
        extra: 'plugins:\n  - cache: { scope: global }' }), port);
} catch (e) {
    await bail('gateway starts and answers', e.message);
}

const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'sk-client-unused', maxRetries: 0, timeout: 30000 });
const upstreamCount = async () => (await mockGet(mock.url, '/__mock/requests')).filter((r) => r.path.startsWith('/v1/')).length;
const base = { model: 'demo', temperature: 0, messages: [{ role: 'user', content: 'cache me' }],
    mock: { texts: ['Hel', 'lo, ', 'wor', 'ld'], chunks: 4 } };

async function collect(stream) {
    let text = '', finish = null, usage = null, role = null, chunks = 0;
    for await (const chunk of stream) {
        chunks++;
        if (chunk.usage) usage = chunk.usage;
        for (const c of chunk.choices) {
            role = role ?? c.delta?.role ?? null;
            text += c.delta?.content ?? '';
            finish = c.finish_reason ?? finish;
        }
    }
    return { text, finish, usage, role, chunks };
}

async function t(name, fn) {
    try { await fn(); } catch (e) { notOk(name, `${e.constructor.name}: ${e.message}`); }
}

await t('streamed miss', async () => {
    const { data, response } = await client.chat.completions.create({ ...base, stream: true }).withResponse();
    const s = await collect(data);
    check('streamed miss: x-sluice-cache miss', response.headers.get('x-sluice-cache') === 'miss', [...response.headers]);
    check('streamed miss: text and finish', s.text === 'Hello, world' && s.finish === 'stop', s);
    check('streamed miss: no usage chunk when not asked', s.usage === null, s);
});

await t('streamed hit', async () => {
    const { data, response } = await client.chat.completions.create({ ...base, stream: true,
        stream_options: { include_usage: true } }).withResponse();
    const s = await collect(data);
    check('streamed hit: x-sluice-cache hit', response.headers.get('x-sluice-cache') === 'hit', [...response.headers]);
    check('streamed hit: same text, role, finish', s.text === 'Hello, world' && s.role === 'assistant' && s.finish === 'stop', s);
    check('streamed hit: usage when asked', s.usage?.completion_tokens === 4, s);
});

await t('non-streamed hit from the stored stream', async () => {
    const { data, response } = await client.chat.completions.create(base).withResponse();
    check('non-streamed hit: x-sluice-cache hit', response.headers.get('x-sluice-cache') === 'hit', [...response.headers]);
    check('non-streamed hit: a chat.completion with the whole text',
        data.object === 'chat.completion' && data.choices[0].message.content === 'Hello, world'
        && data.choices[0].message.role === 'assistant' && data.choices[0].finish_reason === 'stop', data);
    check('non-streamed hit: usage', data.usage?.completion_tokens === 4, data.usage);
});

await t('upstream asked once', async () => {
    check('the upstream saw one request for three answers', await upstreamCount() === 1, await upstreamCount());
});

await done();
