#!/usr/bin/env node
// The guard as the official `openai` npm client sees it: a blocked request is a
// BadRequestError with code content_filter; a stream cut by the guard parses as a normal
// stream ending with finish_reason content_filter; a stream of many one-character chunks
// never shows the denied word; masking reaches the upstream; the guard and the cache
// together never cache a filtered answer. TAP.
import OpenAI from 'openai';
import { check, notOk, done, bail, freePort, startMock, gatewayConfig, startGateway, mockGet } from './lib.mjs';

let mock, gw;
try {
    mock = await startMock();
    const port = await freePort();
    gw = await startGateway(gatewayConfig({ port, mockUrl: mock.url,
        extra: 'plugins:\n  - guard: { deny: [forbidden, "\u673a\u5bc6"], mask: [email] }\n  - cache: { scope: global }' }),
        port);
} catch (e) {
    await bail('gateway starts and answers', e.message);
}

const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'sk-client-unused', maxRetries: 0, timeout: 30000 });
const chat = (content, mockOpts, extra = {}) => ({ model: 'demo', messages: [{ role: 'user', content }],
    mock: mockOpts, ...extra });

async function collect(stream) {
    let text = '', finish = null, chunks = 0;
    for await (const chunk of stream) {
        chunks++;
        for (const c of chunk.choices) {
            text += c.delta?.content ?? '';
            finish = c.finish_reason ?? finish;
        }
    }
    return { text, finish, chunks };
}

async function t(name, fn) {
    try { await fn(); } catch (e) { notOk(name, `${e.constructor.name}: ${e.message}`); }
}

await t('blocked request: BadRequestError, code content_filter', async () => {
    try {
        await client.chat.completions.create(chat('something FORBIDDEN'));
        notOk('blocked request: BadRequestError, code content_filter', 'no error');
    } catch (e) {
        check('blocked request: BadRequestError, code content_filter',
            e instanceof OpenAI.BadRequestError && e.status === 400 && e.code === 'content_filter', `${e.status} ${e.code}`);
    }
});

await t('stream cut: normal stream ending content_filter', async () => {
    const r = await collect(await client.chat.completions.create(
        chat('hi', { texts: ['It is for', 'bid', 'den to say'], chunks: 3 }, { stream: true })));
    check('stream cut: normal stream ending content_filter', r.text === 'It is ' && r.finish === 'content_filter',
        JSON.stringify(r));
});

await t('one character per chunk: the word never shows', async () => {
    const word = 'xx \u8fd9\u662f\u673a\u5bc6\u4fe1\u606f';   // 这是机密信息
    const texts = [...word];
    const r = await collect(await client.chat.completions.create(
        chat('hi', { texts, chunks: texts.length }, { stream: true })));
    check('one character per chunk: the word never shows',
        r.text === 'xx \u8fd9\u662f' && r.finish === 'content_filter', JSON.stringify(r));
});

await t('clean stream of single characters arrives whole', async () => {
    const texts = [...'nothing to see here'];
    const r = await collect(await client.chat.completions.create(
        chat('hi', { texts, chunks: texts.length }, { stream: true })));
    check('clean stream of single characters arrives whole', r.text === 'nothing to see here' && r.finish === 'stop',
        JSON.stringify(r));
});

await t('masking reaches the upstream', async () => {
    await client.chat.completions.create(chat('reply to bob@example.org please', { texts: ['ok'], chunks: 1 }));
    const reqs = await mockGet(mock.url, '/__mock/requests');
    const last = reqs.filter((r) => r.path === '/v1/chat/completions').at(-1);
    check('masking reaches the upstream', last?.body?.messages?.[0]?.content === 'reply to [EMAIL] please',
        JSON.stringify(last?.body?.messages));
});

await t('filtered answers are never cached', async () => {
    const req = chat('cache this', { texts: ['a forb', 'idden thing'], chunks: 2 }, { temperature: 0 });
    const a = await client.chat.completions.create(req);
    const b = await client.chat.completions.create(req);
    const count = (await mockGet(mock.url, '/__mock/requests')).filter((r) => r.body?.messages?.[0]?.content === 'cache this').length;
    check('filtered answers are never cached',
        a.choices[0].finish_reason === 'content_filter' && b.choices[0].finish_reason === 'content_filter' &&
        a.choices[0].message.content === 'a ' && count === 2, `${JSON.stringify([a.choices[0], b.choices[0]])} upstream ${count}`);
});

await done();
