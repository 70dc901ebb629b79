#!/usr/bin/env bash
# gateway_cuda_workers.sh KIT_DIR [BACKEND] — on the GPU host: the whole gateway in front of
# two sluice-engine workers (BACKEND, default cuda) serving the demo model, driven by the
# official openai npm client (chat, streamed chat, models.list, an error case) and curl.
# KIT_DIR comes from tests/gpu/make_gateway_kit.sh. Prints TAP; logs under $OUT if set.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
KIT=$(cd "$1" && pwd)
BACKEND=${2:-cuda}
W=$(mktemp -d /tmp/sluice-gpu.XXXXXX)
LOGS=${OUT:-$W}
n=0; fails=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); fails=$((fails + 1)); echo "not ok $n - $1"; }
check() { local name=$1; shift; if "$@"; then ok "$name"; else not_ok "$name"; fi; }

mkdir -p "$W/node/bin" "$W/tok"
xz -dc "$KIT/node.xz" >"$W/node/bin/node" && chmod +x "$W/node/bin/node"
tar -C "$W" -xJf "$KIT/openai.tar.xz"
tar -C "$W" -xJf "$KIT/lib.tar.xz"
tar -C "$W/tok" -xJf "$KIT/tok.tar.xz"
# only our binaries see the carried libraries (the host's own curl must keep its libcurl)
kit() { LD_LIBRARY_PATH=$W/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} "$@"; }
export PATH=$W/node/bin:$PATH SLUICE_ENGINE=$KIT/bin/sluice-engine
PHRASE="Hello! I am the demo model of sluice, served by its own engine."
kit "$KIT/bin/sluice-make-demo-model" --tokenizer "$W/tok" --phrase "$PHRASE" "$W/demo" >"$LOGS/make.log" 2>&1
check "demo model made" test -f "$W/demo/model.safetensors"

export SLUICE_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n') SLUICE_ADMIN_TOKEN=gpu-admin
cat >"$W/sluice.yaml" <<YAML
listen: [ { address: 127.0.0.1:18080 } ]
admin: { listen: 127.0.0.1:19090, token_env: SLUICE_ADMIN_TOKEN }
store: { backend: memory, path: $W/sluice.journal, secret_env: SLUICE_SECRET }
log: { access_log: $LOGS/access.log }
upstreams:
  local:
    type: engine
    model: $W/demo
    served_model_name: demo
    workers: 2
    gpus: [[0], [0]]
    backend: $BACKEND
models:
  demo: { targets: [ { upstream: local, model: demo } ] }
consumers:
  team: { models: [demo] }
plugins: [ auth, route ]
YAML
kit "$KIT/bin/sluice" check -c "$W/sluice.yaml" >"$LOGS/check.log" 2>&1
check "sluice check accepts the config" test $? = 0
LD_LIBRARY_PATH=$W/lib "$KIT/bin/sluice" serve -c "$W/sluice.yaml" >"$LOGS/gateway.log" 2>&1 &
GW=$!
trap 'kill -TERM $GW 2>/dev/null; wait $GW 2>/dev/null; cp -r /tmp/sluice-*/local-*.log "$LOGS/" 2>/dev/null; rm -rf "$W"' EXIT
ready() {
    curl -s -H "Authorization: Bearer $SLUICE_ADMIN_TOKEN" http://127.0.0.1:19090/admin/v1/upstreams \
        | grep -o '"state":"ready"' | wc -l | grep -qx 2
}
for _ in $(seq 1 1200); do ready && break; kill -0 $GW 2>/dev/null || break; sleep 0.1; done
check "two engine workers ready (backend $BACKEND)" ready
curl -s -H "Authorization: Bearer $SLUICE_ADMIN_TOKEN" http://127.0.0.1:19090/admin/v1/upstreams >"$LOGS/upstreams.json"
pids=$(grep -o '"pid":[0-9]*' "$LOGS/upstreams.json" | cut -d: -f2 | tr '\n' ' ')
for p in $pids; do tr '\0' ' ' </proc/$p/cmdline; echo; done >"$LOGS/workers.txt"
check "both workers run with --backend $BACKEND" test "$(grep -c -- "--backend $BACKEND" "$LOGS/workers.txt")" = 2
command -v nvidia-smi >/dev/null && nvidia-smi --query-compute-apps=pid,used_memory --format=csv >"$LOGS/nvidia-smi.txt" 2>&1
KEY=$(kit "$KIT/bin/sluice" key -c "$W/sluice.yaml" issue --consumer team --name gpu 2>>"$LOGS/check.log")
check "a key is issued" test -n "$KEY"

cat >"$W/client.mjs" <<'JS'
import OpenAI from 'openai';
const [key, phrase] = process.argv.slice(2);
const client = new OpenAI({ apiKey: key, baseURL: 'http://127.0.0.1:18080/v1' });
let n = 0, fails = 0;
const ok = (c, name) => { n++; if (!c) fails++; console.log(`${c ? 'ok' : 'not ok'} ${n} - openai client: ${name}`); };
const models = await client.models.list();
ok(models.data.map(m => m.id).includes('demo'), 'models.list has demo');
const chat = await client.chat.completions.create({ model: 'demo', messages: [{ role: 'user', content: 'hi' }], max_tokens: 64 });
ok(chat.choices[0].message.content === phrase, `chat: ${JSON.stringify(chat.choices[0].message.content)}`);
let text = '', chunks = 0;
const stream = await client.chat.completions.create({ model: 'demo', stream: true, messages: [{ role: 'user', content: 'hi' }], max_tokens: 64 });
for await (const c of stream) { chunks++; text += c.choices[0]?.delta?.content ?? ''; }
ok(text === phrase && chunks > 3, `streamed chat in ${chunks} chunks`);
const many = await Promise.all(Array.from({ length: 16 }, () => client.chat.completions.create({ model: 'demo', messages: [{ role: 'user', content: 'hi' }], max_tokens: 64 })));
ok(many.every(r => r.choices[0].message.content === phrase), '16 concurrent chats');
try { await client.chat.completions.create({ model: 'nope', messages: [{ role: 'user', content: 'hi' }] }); ok(false, 'unknown model refused'); }
catch (e) { ok(e.status === 404, `unknown model: ${e.status} ${e.code}`); }
process.exit(fails ? 1 : 0);
JS
(cd "$W" && node client.mjs "$KEY" "$PHRASE") | while read -r l; do n=$((n + 1)); echo "$l"; done
rc=${PIPESTATUS[0]}
check "openai client run exits 0" test "$rc" = 0
grep -h -i -E 'backend|cuda|gpu' /tmp/sluice-*/local-*.log 2>/dev/null | head -6 | sed 's/^/# engine: /'
echo "# $n checks here; see the client's lines above"
[ "$fails" = 0 ] && [ "$rc" = 0 ]
