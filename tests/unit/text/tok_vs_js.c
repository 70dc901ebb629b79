/* Compares our encoder with the JavaScript one on a corpus written by tok_corpus.mjs:
 * identical ids for every string, decode(encode(s)) == NFC(s), count == encode length,
 * and the streaming detokenizer agrees with whole-sequence decoding. Prints TAP.
 * usage: tok_vs_js TOKENIZER_JSON CORPUS_JSONL */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tokenizer.h"

#define SHOW 5

static void show_ids(const char *label, const int32_t *ids, size_t n)
{
    printf("#   %s:", label);
    for (size_t i = 0; i < n && i < 40; i++)
        printf(" %d", ids[i]);
    printf(n > 40 ? " ...\n" : "\n");
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: tok_vs_js TOKENIZER_JSON CORPUS_JSONL\n");
        return 2;
    }
    printf("1..5\n");
    sl_err err = {0};
    sl_tokenizer *tok = sl_tokenizer_load(argv[1], &err);
    if (!tok) {
        printf("not ok 1 - load %s: %s\n", argv[1], err.msg);
        return 1;
    }
    printf("ok 1 - load tokenizer (%zu ids)\n", sl_tokenizer_vocab_size(tok));
    FILE *f = fopen(argv[2], "r");
    if (!f) {
        printf("not ok 2 - open corpus %s\n", argv[2]);
        return 1;
    }
    size_t total = 0, bad_ids = 0, bad_trip = 0, bad_count = 0, bad_stream = 0;
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    while ((got = getline(&line, &cap, f)) > 0) {
        json_error_t je;
        json_t *row = json_loadb(line, (size_t)got, 0, &je);
        json_t *jt = json_object_get(row, "t"), *jids = json_object_get(row, "ids");
        if (!json_is_string(jt) || !json_is_array(jids)) {
            printf("# bad corpus line %zu\n", total + 1);
            bad_ids++;
            json_decref(row);
            continue;
        }
        total++;
        const char *t = json_string_value(jt);
        size_t tlen = json_string_length(jt);
        int32_t *ids;
        size_t n;
        if (sl_tokenizer_encode(tok, t, tlen, true, &ids, &n)) {
            printf("# encode failed on line %zu\n", total);
            bad_ids++;
            json_decref(row);
            continue;
        }
        bool same = n == json_array_size(jids);
        for (size_t i = 0; same && i < n; i++)
            same = ids[i] == json_integer_value(json_array_get(jids, i));
        if (!same && bad_ids++ < SHOW) {
            char *shown = json_dumps(jt, JSON_ENCODE_ANY);
            printf("# mismatch on line %zu: %s\n", total, shown);
            free(shown);
            show_ids("ours", ids, n);
            int32_t *js = malloc((json_array_size(jids) + 1) * sizeof *js);
            for (size_t i = 0; i < json_array_size(jids); i++)
                js[i] = (int32_t)json_integer_value(json_array_get(jids, i));
            show_ids("js  ", js, json_array_size(jids));
            free(js);
        }

        char *text;
        size_t len;
        utf8proc_uint8_t *nfc = NULL;
        utf8proc_ssize_t nlen = utf8proc_map((const utf8proc_uint8_t *)t, (utf8proc_ssize_t)tlen, &nfc,
                                             UTF8PROC_STABLE | UTF8PROC_COMPOSE);
        sl_tokenizer_decode(tok, ids, n, false, &text, &len);
        bool nfc_same = nlen == (utf8proc_ssize_t)len && !memcmp(nfc, text, len);
        bool raw_same = len == tlen && !memcmp(t, text, len);
        if (!nfc_same && !raw_same && bad_trip++ < SHOW)
            printf("# round trip differs on line %zu\n", total);
        free(nfc);

        int32_t *plain;
        size_t n_plain;
        sl_tokenizer_encode(tok, t, tlen, false, &plain, &n_plain);
        size_t counted = sl_tokenizer_count(tok, t, tlen);
        if (counted != n_plain && bad_count++ < SHOW)
            printf("# count %zu != %zu tokens on line %zu\n", counted, n_plain, total);
        free(plain);

        char *stream = malloc(len * 3 + 4096), piece[256 + SL_TOKEN_MAX_BYTES];
        size_t slen = 0;
        sl_detok d;
        sl_detok_init(&d, tok, false);
        for (size_t i = 0; i < n; i++) {
            size_t k = sl_detok_push(&d, ids[i], piece, sizeof piece);
            memcpy(stream + slen, piece, k);
            slen += k;
        }
        slen += sl_detok_finish(&d, stream + slen, 256);
        if ((slen != len || memcmp(stream, text, len)) && bad_stream++ < SHOW)
            printf("# streaming decode differs on line %zu\n", total);
        free(stream);
        free(text);
        free(ids);
        json_decref(row);
    }
    free(line);
    fclose(f);
    printf("# %zu strings, %zu id mismatches\n", total, bad_ids);
    printf("%s 2 - %zu strings encode to the JavaScript encoder's ids (%zu mismatches)\n",
           bad_ids || total < 10000 ? "not ok" : "ok", total, bad_ids);
    printf("%s 3 - decode(encode(s)) == NFC(s) (%zu differ)\n", bad_trip ? "not ok" : "ok", bad_trip);
    printf("%s 4 - count == number of ids without special parsing (%zu differ)\n", bad_count ? "not ok" : "ok",
           bad_count);
    printf("%s 5 - streaming detokenizer == whole decode (%zu differ)\n", bad_stream ? "not ok" : "ok", bad_stream);
    sl_tokenizer_free(tok);
    return bad_ids || bad_trip || bad_count || bad_stream || total < 10000;
}
