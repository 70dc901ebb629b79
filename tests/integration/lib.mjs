// tests/integration/lib.mjs — the helpers of lib.sh for node tests: TAP, free ports, the mock
// upstream, a gateway config, `sluice serve`, cleanup of every process started.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
// the system python, as lib.sh picks it (SL_PY)
const PY = process.env.SL_PY ?? (fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3');
export const SOURCE_ROOT = process.env.SL_SOURCE_ROOT ?? path.resolve(here, '../..');
export const BUILD_ROOT = process.env.SL_BUILD_ROOT ?? path.join(SOURCE_ROOT, 'build');
export const SLUICE = process.env.SLUICE ?? path.join(BUILD_ROOT, 'gateway', 'sluice');
export const MOCK_KEY = process.env.MOCK_KEY ?? 'sk-mock-upstream-key';
// The server secret the store keys its HMACs under (the gateway refuses to start without one).
export const SLUICE_SECRET = process.env.SLUICE_SECRET ?? 'sluice-test-secret-0123456789abcdef';
export const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-test-'));

const children = [];
let n = 0, failed = 0;

export function ok(name) { console.log(`ok ${++n} - ${name}`); }
export function notOk(name, diag) {
    failed++;
    console.log(`not ok ${++n} - ${name}`);
    if (diag !== undefined) for (const l of String(typeof diag === 'string' ? diag : JSON.stringify(diag)).split('\n')) console.log(`# ${l}`);
}
export function check(name, cond, diag) { if (cond) ok(name); else notOk(name, diag); }

// Stop everything started, print the plan, exit 0 when every test passed.
export async function done() {
    await cleanup();
    console.log(`1..${n}`);
    process.exit(failed ? 1 : 0);
}
export async function bail(name, diag) { notOk(name, diag); await done(); }

async function cleanup() {
    for (const c of children.reverse()) {
        if (c.exitCode !== null || c.signalCode !== null) continue;
        c.kill('SIGTERM');
        const t = setTimeout(() => c.kill('SIGKILL'), 3000);
        await new Promise((r) => c.once('exit', r));
        clearTimeout(t);
    }
    if (process.env.SL_KEEP_TMP !== '1') fs.rmSync(tmp, { recursive: true, force: true });
}
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => { cleanup().then(() => process.exit(130)); });
// However this process ends, leave no child running (node knows its children: no PID reuse).
process.on('exit', () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

// A free port on 127.0.0.1 from the one picker all tests share (free_port.py), so that no
// two picks, in this test or another, hand out the same port before it is bound.
export function freePort() {
    const out = execFileSync(PY, [path.join(SOURCE_ROOT, 'tests/integration/free_port.py')], { encoding: 'utf8' });
    return Promise.resolve(Number(out.trim()));
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Start the mock upstream; resolves {url (no /v1), port, proc}.
export async function startMock(args = []) {
    const log = fs.openSync(path.join(tmp, `mock${children.length}.log`), 'w');
    const proc = spawn(process.execPath, [path.join(SOURCE_ROOT, 'tests/mock/mock_upstream.mjs'), '--port', '0', ...args],
        { stdio: ['ignore', 'pipe', log] });
    children.push(proc);
    const port = await new Promise((resolve, reject) => {
        let out = '';
        proc.stdout.on('data', (d) => { out += d; if (out.includes('\n')) resolve(Number(out.trim())); });
        proc.once('exit', (c) => reject(new Error(`mock upstream exited with ${c}`)));
    });
    return { url: `http://127.0.0.1:${port}`, port, proc };
}

// The default gateway config in front of the mock (same shape as lib.sh's sl_gateway_config).
export function gatewayConfig({ port, mockUrl, server = '{ workers: 2 }', listen, upstreams, models, extra = '' }) {
    return `listen:
${listen ?? `  - address: 127.0.0.1:${port}`}
server: ${server}
log: { access_log: ${path.join(tmp, 'access.log')} }
store: { backend: memory, path: ${path.join(tmp, 'sluice.journal')} }
upstreams:
${upstreams ?? `  mock:
    type: openai
    base_url: ${mockUrl}/v1
    api_key_env: MOCK_KEY
    timeouts: { connect: 2s, first_byte: 5s, total: 30s }`}
models:
${models ?? '  demo: { targets: [ { upstream: mock, model: mock-model } ] }'}
${extra}
`;
}

// Write conf, start `sluice serve -c conf`, wait (15 s at most) until probeUrl answers.
// Resolves {url, proc}; throws with the gateway's log when it does not come up.
export async function startGateway(conf, port, probeUrl = `http://127.0.0.1:${port}/v1/models`) {
    const file = path.join(tmp, `sluice${children.length}.yaml`);
    fs.writeFileSync(file, conf);
    if (!fs.existsSync(SLUICE)) throw new Error(`no gateway binary at ${SLUICE}`);
    const logFile = path.join(tmp, `gateway${children.length}.log`);
    const log = fs.openSync(logFile, 'w');
    const proc = spawn(SLUICE, ['serve', '-c', file], { stdio: ['ignore', log, log], env: { ...process.env, MOCK_KEY, SLUICE_SECRET } });
    children.push(proc);
    for (let i = 0; i < 150; i++) {
        if (proc.exitCode !== null || proc.signalCode !== null) break;
        try {
            await fetch(probeUrl, { signal: AbortSignal.timeout(2000) });
            return { url: `http://127.0.0.1:${port}`, proc };
        } catch { await sleep(100); }
    }
    const tail = fs.readFileSync(logFile, 'utf8').split('\n').slice(-30).join('\n');
    throw new Error(`sluice serve did not answer ${probeUrl} (exit ${proc.exitCode ?? proc.signalCode ?? 'none'}); its log:\n${tail}`);
}

// JSON of a mock control endpoint.
export async function mockGet(mockUrl, p) { return (await fetch(mockUrl + p)).json(); }
