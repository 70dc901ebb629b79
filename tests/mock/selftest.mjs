#!/usr/bin/env node
// The mock upstream on its own: every knob the gateway tests rely on behaves as documented.
// Starts mock_upstream.mjs on a free port, talks to it with node's http client, prints TAP.
import { spawn } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
const KEY = 'sk-selftest';
const child = spawn(process.execPath, [path.join(here, 'mock_upstream.mjs'), '--port', '0',
    '--set', `require_key="${KEY}"`, '--set', 'by_model={"m-500":{"status":500}}'],
    { stdio: ['ignore', 'pipe', 'inherit'] });
process.on('exit', () => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); });
process.on('SIGTERM', () => process.exit(130));
const port = await new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => { out += d; if (out.includes('\n')) resolve(Number(out.trim())); });
    child.on('exit', (c) => reject(new Error(`mock exited ${c}`)));
});

let n = 0, failed = 0;
function check(name, cond, diag) {
    n++;
    if (cond) console.log(`ok ${n} - ${name}`);
    else { failed++; console.log(`not ok ${n} - ${name}`); if (diag !== undefined) console.log(`# ${JSON.stringify(diag)}`); }
}

// One request; resolves {status, headers, body (string)}; rejects on a socket error.
function request(method, p, body, { key = KEY, agent, onResponse } = {}) {
    return new Promise((resolve, reject) => {
        const data = body === undefined ? undefined : (typeof body === 'string' ? body : JSON.stringify(body));
        const headers = { 'content-type': 'application/json' };
        if (key) headers.authorization = `Bearer ${key}`;
        const req = http.request({ host: '127.0.0.1', port, method, path: p, headers, agent }, (res) => {
            if (onResponse) return onResponse(res, resolve, reject);
            let b = '';
            res.setEncoding('utf8');
            res.on('data', (c) => { b += c; });
            res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: b }));
            res.on('error', reject);
        });
        req.on('error', reject);
        req.end(data);
    });
}
const json = (r) => { try { return JSON.parse(r.body); } catch { return null; } };
const events = (body) => body.split('\n\n').filter((e) => e.startsWith('data: ')).map((e) => e.slice(6));
const chat = (extra = {}) => ({ model: 'mock-model', messages: [{ role: 'user', content: 'one two three' }], ...extra });

try {
    let r = await request('GET', '/v1/models');
    check('models: OpenAI list', r.status === 200 && json(r).data[0].id === 'mock-model', r.body);

    r = await request('POST', '/v1/chat/completions', chat());
    let j = json(r);
    check('chat: completion with usage', r.status === 200 && j.choices[0].message.content === 'hellohellohellohellohello'
        && j.usage.prompt_tokens === 3 && j.usage.completion_tokens === 5, r.body);

    r = await request('POST', '/v1/chat/completions', chat(), { key: 'wrong' });
    check('require_key: wrong key is 401', r.status === 401 && json(r).error.code === 'invalid_api_key', r.body);

    r = await request('POST', '/v1/chat/completions', chat({ stream: true, mock: { texts: ['a', 'b'], chunks: 2 } }));
    let ev = events(r.body);
    check('stream: role, chunks, finish, [DONE]; no usage unasked', r.headers['content-type'] === 'text/event-stream'
        && ev.length === 5 && ev[4] === '[DONE]' && JSON.parse(ev[0]).choices[0].delta.role === 'assistant'
        && JSON.parse(ev[1]).choices[0].delta.content === 'a' && JSON.parse(ev[3]).choices[0].finish_reason === 'stop'
        && !r.body.includes('usage'), ev);

    r = await request('POST', '/v1/chat/completions', chat({ stream: true, stream_options: { include_usage: true }, mock: { chunks: 3 } }));
    ev = events(r.body);
    check('stream: include_usage adds a usage chunk before [DONE]', JSON.parse(ev[ev.length - 2]).usage?.completion_tokens === 3, ev);

    r = await request('POST', '/v1/completions', { model: 'x', prompt: 'p', stream: true, mock: { text: 'z', chunks: 2 } });
    ev = events(r.body);
    check('completions: streamed text chunks', ev.length === 4 && JSON.parse(ev[0]).choices[0].text === 'z', ev);

    r = await request('POST', '/v1/embeddings', { model: 'e', input: 'hi', encoding_format: 'base64' });
    j = json(r);
    check('embeddings: base64 float32 vector', r.status === 200 && Buffer.from(j.data[0].embedding, 'base64').length === 32, r.body);

    r = await request('POST', '/v1/chat/completions', chat({ mock: { status: 429, retry_after: 7 } }));
    check('status + Retry-After', r.status === 429 && r.headers['retry-after'] === '7'
        && json(r).error.type === 'rate_limit_error', [r.status, r.headers, r.body]);

    r = await request('POST', '/v1/chat/completions', { ...chat(), model: 'm-500' });
    check('by_model: a model answers 500', r.status === 500 && json(r).error.type === 'api_error', r.body);

    await request('POST', '/__mock/config', { next: [{ status: 503 }, { status: 502 }] });
    const s1 = (await request('POST', '/v1/chat/completions', chat())).status;
    const s2 = (await request('POST', '/v1/chat/completions', chat())).status;
    const s3 = (await request('POST', '/v1/chat/completions', chat())).status;
    check('next: one override per request, in order', `${s1} ${s2} ${s3}` === '503 502 200', [s1, s2, s3]);

    r = await request('POST', '/v1/chat/completions', '{"model":');
    check('malformed JSON is 400', r.status === 400 && json(r).error.code === 'invalid_request', r.body);

    // split_events: the pieces of one event arrive in separate reads.
    let reads = 0;
    r = await request('POST', '/v1/chat/completions', chat({ stream: true, mock: { chunks: 1, split_events: 3, split_delay_ms: 30 } }), {
        onResponse: (res, resolve) => { let b = ''; res.on('data', (c) => { reads++; b += c; }); res.on('end', () => resolve({ body: b })); } });
    check('split_events: events arrive in pieces and reassemble', reads >= 6 && events(r.body).length === 4, { reads, body: r.body });

    // raw_body: sent as is, with its content-type; byte_delay_ms: one byte per read.
    r = await request('POST', '/v1/chat/completions', chat({ mock: { raw_body: '{"cut', raw_content_type: 'text/event-stream' } }));
    check('raw_body: the body as is, with raw_content_type', r.status === 200 && r.body === '{"cut'
        && r.headers['content-type'] === 'text/event-stream', r.body);
    reads = 0;
    r = await request('POST', '/v1/chat/completions', chat({ mock: { raw_body: 'abcd', byte_delay_ms: 20 } }), {
        onResponse: (res, resolve) => { let b = ''; res.on('data', (c) => { reads++; b += c; }); res.on('end', () => resolve({ body: b })); } });
    check('byte_delay_ms: one byte at a time', r.body === 'abcd' && reads === 4, { reads, body: r.body });

    // reset_after_chunks: the client sees its chunks, then a connection error.
    let got = '', errored = false;
    try {
        await request('POST', '/v1/chat/completions', chat({ stream: true, mock: { chunks: 5, reset_after_chunks: 2 } }), {
            onResponse: (res, resolve, reject) => { res.on('data', (c) => { got += c; }); res.on('error', reject); res.on('aborted', () => reject(new Error('aborted'))); res.on('end', () => resolve()); } });
    } catch { errored = true; }
    check('reset_after_chunks: two chunks then a reset', errored && events(got).length === 3 && !got.includes('[DONE]'), got);

    // hang: no answer; when the client leaves, the mock counts the response as aborted.
    const before = json(await request('GET', '/__mock/stats'));
    const sock = net.connect(port, '127.0.0.1');
    const body = JSON.stringify(chat({ mock: { hang: true } }));
    sock.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    let hungAnswer = '';
    sock.on('data', (d) => { hungAnswer += d; });
    const stats = async () => json(await request('GET', '/__mock/stats'));
    const poll = async (cond) => { // up to 10 s
        for (let i = 0; i < 100; i++) { const s = await stats(); if (cond(s)) return s; await new Promise((r) => setTimeout(r, 100)); }
        return stats();
    };
    const during = await poll((s) => s.active_requests === 1);
    sock.destroy();
    const after = await poll((s) => s.aborted_responses > before.aborted_responses);
    check('hang: no answer, request active, api connection open', hungAnswer === '' && during.active_requests === 1
        && during.open_api_connections >= 1, during);
    const hungRec = json(await request('GET', '/__mock/requests')).find((x) => x.body?.mock?.hang);
    check('hang: client close is seen as an aborted response', after.aborted_responses === before.aborted_responses + 1
        && after.active_requests === 0 && hungRec?.outcome === 'aborted', { after, outcome: hungRec?.outcome });

    // total_bytes: a large stream, read slowly (backpressure), arrives whole and in order.
    const agent = new http.Agent({ keepAlive: false });
    const total = 8 * 1024 * 1024;
    r = await request('POST', '/v1/chat/completions', chat({ stream: true, mock: { total_bytes: total, event_bytes: 16384 } }), {
        agent, onResponse: (res, resolve) => {
            let tail = '', seq = 0, ok = true, bytes = 0;
            res.setEncoding('utf8');
            res.on('data', (c) => {
                bytes += c.length;
                tail += c;
                let i;
                while ((i = tail.indexOf('\n\n')) >= 0) {
                    const e = tail.slice(6, i); tail = tail.slice(i + 2);
                    if (e === '[DONE]') continue;
                    const ch = JSON.parse(e).choices[0];
                    const content = ch.delta?.content;
                    if (content && content.startsWith('#')) { if (!content.startsWith(`#${seq}:`)) ok = false; seq++; }
                }
                res.pause();
                setTimeout(() => res.resume(), 1);
            });
            res.on('end', () => resolve({ seq, ok, bytes }));
        } });
    const st = json(await request('GET', '/__mock/stats')).last_stream;
    check('total_bytes: big stream complete, in order, as counted by the mock', r.ok && r.bytes >= total
        && r.seq === st.events && st.completed && st.bytes === r.bytes, { r, st });

    r = await request('GET', '/__mock/requests');
    j = json(r);
    const last = j.filter((x) => x.path === '/v1/chat/completions').pop();
    check('requests log: method, path, headers, body', last.method === 'POST' && last.headers.authorization === `Bearer ${KEY}`
        && last.body.mock.total_bytes === total, last);
    await request('DELETE', '/__mock/requests');
    check('requests log: DELETE clears it', json(await request('GET', '/__mock/requests')).length === 0);

    await request('POST', '/__mock/config', { reset: true, chunks: 1 });
    r = await request('POST', '/v1/chat/completions', chat());
    check('config: POST /__mock/config sets run defaults', json(r).choices[0].message.content === 'hello', r.body);
} catch (e) {
    check(`selftest ran to the end (${e.message})`, false, e.stack);
}
child.kill('SIGTERM');
console.log(`1..${n}`);
process.exit(failed ? 1 : 0);
