#!/usr/bin/env node
// A mock OpenAI-compatible upstream for sluice's tests: a real HTTP server (node:http) whose
// behaviour is set per run (CLI flags, --config FILE.json, POST /__mock/config) and per request
// (a `mock` object in the request body). It records every request it receives
// (GET /__mock/requests) and counts connections (GET /__mock/stats).
// Prints its port on stdout once listening. See tests/mock/README.md for every knob.
import http from 'node:http';
import fs from 'node:fs';

const DEFAULTS = {
    status: 200,            // HTTP status; anything but 200 answers an OpenAI-shaped error
    error_type: null,       // error.type in the error body (default derived from status)
    error_code: null,       // error.code in the error body
    error_message: null,
    error_body: null,       // raw body to send instead of the OpenAI error (string or object)
    retry_after: null,      // Retry-After header value (seconds)
    headers: {},            // extra response headers
    headers_delay_ms: 0,    // latency before the response headers
    chunk_delay_ms: 0,      // latency between streamed events
    stream: null,           // force streaming on/off; null = follow the request's `stream`
    chunks: 5,              // number of content chunks (one "token" each)
    text: 'hello',          // content of every chunk; or texts: [...] one per chunk
    texts: null,
    event_bytes: 0,         // pad each content chunk so its SSE event is about this many bytes
    total_bytes: 0,         // stream content chunks until this many bytes were sent (overrides chunks)
    split_events: 0,        // write each SSE event in this many pieces (separate TCP writes)
    split_delay_ms: 5,      // pause between the pieces of a split event
    usage: null,            // true/false: include usage; null = non-stream yes, stream per include_usage
    usage_on_finish: false, // streamed usage rides on the finish chunk (as DeepSeek's API sends it), not a chunk of its own
    prompt_tokens: null,    // usage.prompt_tokens (default: words in the prompt)
    completion_tokens: null,// usage.completion_tokens (default: number of chunks)
    finish_reason: 'stop',
    reset_after_chunks: -1, // >= 0: after that many content chunks, reset the connection (RST)
    hang_after_chunks: -1,  // >= 0: after that many content chunks, send nothing more
    hang: false,            // never answer
    close_before_headers: false, // close the connection without any response
    raw_body: null,         // send this body as is (malformed JSON or SSE), with `status`
    raw_content_type: 'application/json', // its content-type (text/event-stream for SSE)
    byte_delay_ms: 0,       // raw_body: write it one byte at a time, this far apart
    models: ['mock-model'], // what GET /v1/models lists
    dims: 8,                // embedding dimensions
    require_key: null,      // when set, 401 unless Authorization: Bearer <require_key>
    by_model: {},           // upstream model name -> overrides for requests naming it
    next: [],               // overrides for the next requests, one each, in order
};

function parseArgs(argv) {
    const opts = { port: 0, host: '127.0.0.1', conf: {} };
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        const val = () => {
            if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
            return argv[++i];
        };
        if (a === '--port') opts.port = Number(val());
        else if (a === '--host') opts.host = val();
        else if (a === '--config') Object.assign(opts.conf, JSON.parse(fs.readFileSync(val(), 'utf8')));
        else if (a === '--set') { // --set key=JSONVALUE (or a bare string)
            const kv = val(); const eq = kv.indexOf('=');
            if (eq < 0) throw new Error(`--set wants key=value, got ${kv}`);
            const k = kv.slice(0, eq), v = kv.slice(eq + 1);
            try { opts.conf[k] = JSON.parse(v); } catch { opts.conf[k] = v; }
        } else if (a.startsWith('--') && a.slice(2).replace(/-/g, '_') in DEFAULTS) {
            const k = a.slice(2).replace(/-/g, '_'); const v = val();
            try { opts.conf[k] = JSON.parse(v); } catch { opts.conf[k] = v; }
        } else if (a === '--help' || a === '-h') {
            process.stdout.write('usage: mock_upstream.mjs [--port N] [--host H] [--config FILE.json] ' +
                '[--set key=json]... [--KEY value]...\nkeys: ' + Object.keys(DEFAULTS).join(' ') + '\n');
            process.exit(0);
        } else throw new Error(`unknown argument ${a}`);
    }
    return opts;
}

let opts;
try { opts = parseArgs(process.argv.slice(2)); } catch (e) {
    process.stderr.write(`mock_upstream: ${e.message}\n`);
    process.exit(2);
}
const startConf = { ...DEFAULTS, ...opts.conf };
let runConf = structuredClone(startConf);

const requests = [];
const stats = {
    open_connections: 0,    // every connection, this stats query's own included
    open_api_connections: 0,// connections that carried at least one /v1 request
    total_connections: 0, requests: 0, active_requests: 0,
    completed_responses: 0, aborted_responses: 0, bytes_sent: 0,
    last_stream: null,      // {events, content_bytes, bytes, completed} of the latest stream
};
let nextId = 1;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function sendJSON(res, status, obj, extra = {}) {
    const body = JSON.stringify(obj);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...extra });
    res.end(body);
}

function errorType(status) {
    if (status === 401) return ['invalid_request_error', 'invalid_api_key'];
    if (status === 404) return ['invalid_request_error', 'model_not_found'];
    if (status === 429) return ['rate_limit_error', 'rate_limit_exceeded'];
    if (status >= 500) return ['api_error', 'server_error'];
    return ['invalid_request_error', 'invalid_request'];
}

function sendError(res, status, conf, message) {
    const [type, code] = errorType(status);
    const extra = { ...conf.headers };
    if (conf.retry_after != null) extra['retry-after'] = String(conf.retry_after);
    if (conf.error_body != null) {
        const body = typeof conf.error_body === 'string' ? conf.error_body : JSON.stringify(conf.error_body);
        res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...extra });
        return res.end(body);
    }
    sendJSON(res, status, { error: {
        message: conf.error_message ?? message ?? `mock upstream error ${status}`,
        type: conf.error_type ?? type, param: null, code: conf.error_code ?? code } }, extra);
}

function promptWords(body) {
    let text = '';
    if (Array.isArray(body.messages))
        for (const m of body.messages)
            text += ' ' + (typeof m.content === 'string' ? m.content : JSON.stringify(m.content ?? ''));
    if (body.prompt !== undefined) text += ' ' + (typeof body.prompt === 'string' ? body.prompt : JSON.stringify(body.prompt));
    if (body.input !== undefined) text += ' ' + (typeof body.input === 'string' ? body.input : JSON.stringify(body.input));
    return text.split(/\s+/).filter(Boolean).length;
}

function chunkText(conf, i) {
    let t = conf.texts ? String(conf.texts[i % conf.texts.length]) : String(conf.text);
    if (conf.total_bytes > 0) t = `#${i}:` + t;   // sequence number: readers check order
    return t;
}

// Resolve the behaviour of one request: run config, then by_model, then the `next` queue,
// then the body's own `mock` object.
function resolve(body) {
    const conf = { ...runConf };
    if (body && typeof body.model === 'string' && runConf.by_model && runConf.by_model[body.model])
        Object.assign(conf, runConf.by_model[body.model]);
    if (runConf.next && runConf.next.length) Object.assign(conf, runConf.next.shift());
    if (body && body.mock && typeof body.mock === 'object') Object.assign(conf, body.mock);
    return conf;
}

function usageOf(conf, body, nChunks) {
    const p = conf.prompt_tokens ?? promptWords(body);
    const c = conf.completion_tokens ?? nChunks;
    return { prompt_tokens: p, completion_tokens: c, total_tokens: p + c };
}

function write(res, data) {
    stats.bytes_sent += Buffer.byteLength(data);
    return res.write(data);
}

// Write one SSE event, honouring backpressure; split across TCP writes when asked.
async function writeEvent(res, conf, payload) {
    if (res.destroyed) return false;
    const ev = `data: ${payload}\n\n`;
    if (conf.split_events > 1) {
        const n = conf.split_events, step = Math.max(1, Math.ceil(ev.length / n));
        for (let off = 0; off < ev.length; off += step) {
            if (res.destroyed) return false;
            write(res, ev.slice(off, off + step));
            if (off + step < ev.length) await sleep(conf.split_delay_ms);
        }
        return !res.destroyed;
    }
    if (!write(res, ev)) {
        await new Promise((r) => {
            const done = () => { res.off('drain', done); res.off('close', done); r(); };
            res.on('drain', done);
            res.on('close', done);
        });
    }
    return !res.destroyed;
}

// An abrupt reset (RST), after what was written had time to reach the peer.
async function reset(res) {
    await sleep(50);
    res.socket?.resetAndDestroy();
}

async function stream(req, res, conf, body, kind) {
    const id = (kind === 'chat' ? 'chatcmpl-mock' : 'cmpl-mock') + conf.req_id;
    const created = Math.floor(Date.now() / 1000);
    const model = body.model ?? 'mock-model';
    const object = kind === 'chat' ? 'chat.completion.chunk' : 'text_completion';
    const choice = (content, finish) => kind === 'chat'
        ? { index: 0, delta: content === null ? {} : { content }, logprobs: null, finish_reason: finish }
        : { index: 0, text: content ?? '', logprobs: null, finish_reason: finish };
    const includeUsage = conf.usage ?? !!(body.stream_options && body.stream_options.include_usage);
    const st = { events: 0, content_bytes: 0, bytes: 0, completed: false };
    stats.last_stream = st;
    const sent0 = stats.bytes_sent;

    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', ...conf.headers });
    res.flushHeaders();
    const pad = conf.event_bytes > 0 ? 'x'.repeat(conf.event_bytes) : '';
    const send = async (obj) => {
        const ok = await writeEvent(res, conf, JSON.stringify(obj));
        st.bytes = stats.bytes_sent - sent0;
        return ok;
    };

    if (kind === 'chat') {
        if (!await send({ id, object, created, model, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }] })) return;
    }
    let i = 0;
    for (;; i++) {
        if (conf.total_bytes > 0 ? st.bytes >= conf.total_bytes : i >= conf.chunks) break;
        if (i === conf.reset_after_chunks) return reset(res);
        if (i === conf.hang_after_chunks) return;  // keep the connection open, send nothing
        if (conf.chunk_delay_ms > 0 && (i > 0 || kind !== 'chat')) await sleep(conf.chunk_delay_ms);
        let text = chunkText(conf, i);
        if (pad) {
            const room = conf.event_bytes - text.length - 160;  // roughly the JSON around it
            if (room > 0) text += pad.slice(0, room);
        }
        if (!await send({ id, object, created, model, choices: [choice(text, null)] })) return;
        st.events++;
        st.content_bytes += Buffer.byteLength(text);
    }
    if (i === conf.reset_after_chunks) return reset(res);
    if (i === conf.hang_after_chunks) return;
    if (conf.chunk_delay_ms > 0) await sleep(conf.chunk_delay_ms);
    const finish = { id, object, created, model, choices: [choice(null, conf.finish_reason)] };
    if (includeUsage && conf.usage_on_finish) finish.usage = usageOf(conf, body, i);
    if (!await send(finish)) return;
    if (includeUsage && !conf.usage_on_finish) {
        if (!await send({ id, object, created, model, choices: [], usage: usageOf(conf, body, i) })) return;
    }
    write(res, 'data: [DONE]\n\n');
    st.bytes = stats.bytes_sent - sent0;
    st.completed = true;
    res.end();
}

// A body the test wrote by hand, whole or one byte at a time (a trickling upstream).
async function sendRaw(res, conf) {
    const body = Buffer.from(typeof conf.raw_body === 'string' ? conf.raw_body : JSON.stringify(conf.raw_body));
    const head = { 'content-type': conf.raw_content_type, ...conf.headers };
    if (conf.byte_delay_ms <= 0) {
        res.writeHead(conf.status, { ...head, 'content-length': body.length });
        write(res, body);
        return res.end();
    }
    res.writeHead(conf.status, head);
    res.flushHeaders();
    for (let i = 0; i < body.length; i++) {
        if (res.destroyed) return;
        write(res, body.subarray(i, i + 1));
        await sleep(conf.byte_delay_ms);
    }
    res.end();
}

function complete(res, conf, body, kind) {
    const n = conf.chunks;
    let text = '';
    for (let i = 0; i < n; i++) text += chunkText(conf, i);
    const id = (kind === 'chat' ? 'chatcmpl-mock' : 'cmpl-mock') + conf.req_id;
    const created = Math.floor(Date.now() / 1000);
    const model = body.model ?? 'mock-model';
    const out = kind === 'chat'
        ? { id, object: 'chat.completion', created, model,
            choices: [{ index: 0, message: { role: 'assistant', content: text }, logprobs: null, finish_reason: conf.finish_reason }] }
        : { id, object: 'text_completion', created, model,
            choices: [{ index: 0, text, logprobs: null, finish_reason: conf.finish_reason }] };
    if (conf.usage !== false) out.usage = usageOf(conf, body, n);
    sendJSON(res, 200, out, conf.headers);
}

function embeddings(res, conf, body) {
    const inputs = Array.isArray(body.input) ? body.input : [body.input ?? ''];
    const data = inputs.map((inp, index) => {
        const s = typeof inp === 'string' ? inp : JSON.stringify(inp);
        const v = [];
        for (let d = 0; d < conf.dims; d++) v.push(((s.length * 31 + d * 7 + index) % 100) / 100);
        let embedding = v;
        if (body.encoding_format === 'base64')
            embedding = Buffer.from(new Float32Array(v).buffer).toString('base64');
        return { object: 'embedding', index, embedding };
    });
    const p = conf.prompt_tokens ?? promptWords(body);
    const out = { object: 'list', data, model: body.model ?? 'mock-model', usage: { prompt_tokens: p, total_tokens: p } };
    sendJSON(res, 200, out, conf.headers);
}

async function control(req, res, url, raw) {
    if (url.pathname === '/__mock/requests') {
        if (req.method === 'DELETE') { requests.length = 0; return sendJSON(res, 200, { ok: true }); }
        const since = Number(url.searchParams.get('since') ?? 0);
        return sendJSON(res, 200, requests.filter((r) => r.id > since));
    }
    if (url.pathname === '/__mock/stats') return sendJSON(res, 200, stats);
    if (url.pathname === '/__mock/config') {
        if (req.method === 'GET') return sendJSON(res, 200, runConf);
        let c;
        try { c = raw.length ? JSON.parse(raw) : {}; } catch (e) { return sendJSON(res, 400, { error: `bad JSON: ${e.message}` }); }
        if (c.reset) runConf = structuredClone(startConf);
        delete c.reset;
        Object.assign(runConf, c);
        return sendJSON(res, 200, runConf);
    }
    sendJSON(res, 404, { error: 'unknown control path' });
}

const server = http.createServer({ keepAliveTimeout: 60000, requestTimeout: 0, headersTimeout: 0 }, (req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
        handle(req, res, Buffer.concat(chunks).toString('utf8')).catch((e) => {
            process.stderr.write(`mock_upstream: ${e.stack}\n`);
            if (!res.headersSent) sendError(res, 500, DEFAULTS, `mock crashed: ${e.message}`);
            else res.destroy();
        });
    });
});

async function handle(req, res, raw) {
    const url = new URL(req.url, 'http://mock');
    if (url.pathname.startsWith('/__mock/')) return control(req, res, url, raw);

    stats.requests++;
    stats.active_requests++;

    let body = null, bad = null;
    if (raw.length) { try { body = JSON.parse(raw); } catch (e) { bad = e.message; } }
    const rec = { id: nextId++, time: Date.now(), method: req.method, path: url.pathname + url.search,
        conn: req.socket.mockConnId, headers: req.headers, body: body ?? (raw.length ? raw : null),
        text: raw.length <= 65536 ? raw.toString() : null };
    requests.push(rec);
    if (requests.length > 1000) requests.shift();
    // outcome: null while running, then 'completed' or 'aborted' (closed before the end).
    rec.outcome = null;
    let done = false;
    const finish = () => {
        if (done) return;
        done = true;
        stats.active_requests--;
        rec.outcome = res.writableFinished ? 'completed' : 'aborted';
        if (res.writableFinished) stats.completed_responses++; else stats.aborted_responses++;
    };
    res.on('finish', finish);
    res.on('close', finish);

    const conf = resolve(body);
    conf.req_id = rec.id;
    if (!req.socket.mockApi) { req.socket.mockApi = true; stats.open_api_connections++; }
    if (conf.hang) return;  // never answer; the connection stays open until the peer closes it
    if (conf.close_before_headers) return req.socket.resetAndDestroy();
    if (conf.headers_delay_ms > 0) {
        await sleep(conf.headers_delay_ms);
        if (res.destroyed) return;
    }
    if (conf.require_key && req.headers.authorization !== `Bearer ${conf.require_key}`)
        return sendError(res, 401, { ...DEFAULTS }, 'mock: wrong or missing API key');
    if (conf.raw_body != null) return sendRaw(res, conf);
    if (conf.status !== 200) return sendError(res, conf.status, conf);

    const p = url.pathname;
    if (req.method === 'GET' && p === '/v1/models') {
        return sendJSON(res, 200, { object: 'list', data: conf.models.map((id) => (
            { id, object: 'model', created: 1700000000, owned_by: 'mock' })) }, conf.headers);
    }
    const kind = p === '/v1/chat/completions' ? 'chat' : p === '/v1/completions' ? 'text'
        : p === '/v1/embeddings' ? 'embed' : null;
    if (!kind) return sendError(res, 404, { ...DEFAULTS, error_code: 'not_found' }, `mock: no route ${req.method} ${p}`);
    if (req.method !== 'POST') return sendError(res, 405, DEFAULTS, `mock: ${p} wants POST`);
    if (bad !== null || body === null || typeof body !== 'object')
        return sendError(res, 400, DEFAULTS, `mock: malformed JSON body: ${bad ?? 'empty'}`);
    if (kind === 'embed') return embeddings(res, conf, body);
    const streaming = conf.stream ?? !!body.stream;
    if (streaming) return stream(req, res, conf, body, kind);
    return complete(res, conf, body, kind);
}

let connSeq = 0;
server.on('connection', (sock) => {
    sock.mockConnId = ++connSeq;
    sock.setNoDelay(true);
    stats.open_connections++;
    stats.total_connections++;
    sock.on('close', () => {
        stats.open_connections--;
        if (sock.mockApi) stats.open_api_connections--;
    });
});

server.listen(opts.port, opts.host, () => {
    process.stdout.write(`${server.address().port}\n`);
});
// A test that died without cleaning up must not leave its mock running: exit when orphaned.
// (process.ppid is cached at start, so read the live value from /proc on Linux.)
const ppidNow = () => { try { return Number(fs.readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ')[1]); } catch { return process.ppid; } };
const parent = ppidNow();
setInterval(() => { if (ppidNow() !== parent) process.exit(0); }, 1000).unref();
const stop = () => { server.close(); server.closeAllConnections(); process.exit(0); };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
