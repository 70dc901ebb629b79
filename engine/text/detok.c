/* Decoding ids back to text: whole sequences, and incrementally for streaming, never
 * emitting half a UTF-8 character. Invalid bytes become U+FFFD, as Hugging Face's
 * decode(errors="replace") does. */
#include "tokenizer_internal.h"

#include <stdlib.h>
#include <string.h>

const char *sl_tokenizer_token_bytes(const sl_tokenizer *tok, int32_t id, size_t *len)
{
    if (id < 0 || (size_t)id >= tok->n_vocab || !(tok->tok_flags[id] & TOK_PRESENT)) {
        *len = 0;
        return NULL;
    }
    *len = tok->tok_len[id];
    return tok->arena + tok->tok_off[id];
}

static size_t seq_len(unsigned char c)
{
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) return 2;
    if (c >= 0xE0 && c <= 0xEF) return 3;
    if (c >= 0xF0 && c <= 0xF4) return 4;
    return 0;
}

/* Is byte j (1-based) of the sequence led by c acceptable? Tight ranges after E0, ED,
 * F0, F4 keep out overlong forms, surrogates and code points past U+10FFFF. */
static bool cont_ok(unsigned char lead, size_t j, unsigned char c)
{
    if (j == 1) {
        if (lead == 0xE0) return c >= 0xA0 && c <= 0xBF;
        if (lead == 0xED) return c >= 0x80 && c <= 0x9F;
        if (lead == 0xF0) return c >= 0x90 && c <= 0xBF;
        if (lead == 0xF4) return c >= 0x80 && c <= 0x8F;
    }
    return (c & 0xC0) == 0x80;
}

static size_t put(char *out, size_t cap, size_t o, const void *s, size_t n)
{
    if (o + n <= cap)
        memcpy(out + o, s, n);
    return o + n <= cap ? o + n : o;
}

/* Copies the complete characters of s to out; returns bytes written and sets *used to
 * the bytes consumed. An unfinished character at the end is left unused unless final. */
static size_t drain(const unsigned char *s, size_t n, bool final, char *out, size_t cap, size_t *used)
{
    static const char fffd[] = "\xEF\xBF\xBD";
    size_t i = 0, o = 0;
    while (i < n) {
        size_t k = seq_len(s[i]), j = 1;
        if (!k) {
            o = put(out, cap, o, fffd, 3);
            i++;
            continue;
        }
        while (j < k && i + j < n && cont_ok(s[i], j, s[i + j]))
            j++;
        if (j == k) {
            o = put(out, cap, o, s + i, k);
            i += k;
        } else if (i + j == n && !final) {
            break; /* waits for the rest of the character */
        } else {
            o = put(out, cap, o, fffd, 3);
            i += j;
        }
    }
    *used = i;
    return o;
}

void sl_detok_init(sl_detok *d, const sl_tokenizer *tok, bool skip_special)
{
    memset(d, 0, sizeof *d);
    d->tok = tok;
    d->skip_special = skip_special;
}

size_t sl_detok_push(sl_detok *d, int32_t id, char *out, size_t cap)
{
    size_t len;
    const char *bytes = sl_tokenizer_token_bytes(d->tok, id, &len);
    if (!bytes || (d->skip_special && sl_tokenizer_is_special(d->tok, id)))
        return 0;
    unsigned char buf[sizeof d->pending + SL_TOKEN_MAX_BYTES];
    if (len > SL_TOKEN_MAX_BYTES)
        len = SL_TOKEN_MAX_BYTES;
    memcpy(buf, d->pending, d->n_pending);
    memcpy(buf + d->n_pending, bytes, len);
    size_t n = d->n_pending + len, used;
    size_t o = drain(buf, n, false, out, cap, &used);
    d->n_pending = n - used; /* at most 3 bytes of one character */
    memcpy(d->pending, buf + used, d->n_pending);
    return o;
}

size_t sl_detok_finish(sl_detok *d, char *out, size_t cap)
{
    size_t used;
    size_t o = drain(d->pending, d->n_pending, true, out, cap, &used);
    d->n_pending = 0;
    return o;
}

int sl_tokenizer_decode(const sl_tokenizer *tok, const int32_t *ids, size_t n_ids, bool skip_special,
                        char **text, size_t *len)
{
    size_t cap = 64, o = 0;
    char *buf = malloc(cap);
    sl_detok d;
    sl_detok_init(&d, tok, skip_special);
    for (size_t i = 0; buf && i <= n_ids; i++) {
        size_t need = o + 3 * SL_TOKEN_MAX_BYTES + 16;
        if (need > cap) {
            while (cap < need)
                cap *= 2;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
        }
        o += i < n_ids ? sl_detok_push(&d, ids[i], buf + o, cap - o - 1) : sl_detok_finish(&d, buf + o, cap - o - 1);
    }
    if (!buf)
        return -1;
    buf[o] = 0;
    *text = buf;
    *len = o;
    return 0;
}
