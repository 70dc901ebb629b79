#include "demo_phrase.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* GPT-2 byte-level alphabet: printable bytes stand for themselves, the rest for U+0100.. */
static int byte_to_codepoint(unsigned char b)
{
    if ((b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || (b >= 0xae))
        return b;
    int n = 0;
    for (int x = 0; x < b; x++)
        if (!((x >= '!' && x <= '~') || (x >= 0xa1 && x <= 0xac) || (x >= 0xae)))
            n++;
    return 256 + n;
}

static size_t put_utf8(char *out, int cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    out[0] = (char)(0xc0 | cp >> 6);
    out[1] = (char)(0x80 | (cp & 0x3f));
    return 2;
}

/* The longest added (special) token that phrase starts with: its id and length, or -1. */
static int32_t added_at(json_t *added, const char *phrase, size_t *len)
{
    int32_t best = -1;
    size_t i;
    json_t *t;
    *len = 0;
    json_array_foreach(added, i, t) {
        const char *content = json_string_value(json_object_get(t, "content"));
        size_t n = content ? strlen(content) : 0;
        if (n > *len && !strncmp(phrase, content, n)) {
            best = (int32_t)json_integer_value(json_object_get(t, "id"));
            *len = n;
        }
    }
    return best;
}

int sl_demo_chain_build(sl_demo_chain *c, json_t *tokenizer, const char *phrase, int32_t eos,
                        int max_pairs, sl_err *err)
{
    json_t *vocab = json_object_get(json_object_get(tokenizer, "model"), "vocab");
    json_t *added = json_object_get(tokenizer, "added_tokens");
    char mapped[2048];
    size_t off[1024], n_bytes = strlen(phrase), len = 0;
    if (n_bytes == 0 || n_bytes >= sizeof off / sizeof off[0]) {
        sl_err_set(err, "the phrase must be 1 to %zu bytes", sizeof off / sizeof off[0] - 1);
        return -1;
    }
    for (size_t i = 0; i < n_bytes; i++) {         /* off[i]: where byte i starts in mapped */
        off[i] = len;
        len += put_utf8(mapped + len, byte_to_codepoint((unsigned char)phrase[i]));
    }
    off[n_bytes] = len;
    json_t *nl = json_object_get(vocab, "\xc4\x8a");           /* "Ċ", the byte 0x0a */
    if (!json_is_integer(nl)) {
        sl_err_set(err, "tokenizer.json has no newline token");
        return -1;
    }
    int32_t prev = (int32_t)json_integer_value(nl);
    c->n = 0;
    for (size_t i = 0; i < n_bytes;) {
        size_t j = n_bytes, special_len;
        int32_t tok = added_at(added, phrase + i, &special_len);
        json_t *id = NULL;
        if (tok >= 0) {
            j = i + special_len;
        } else {
            for (; j > i && !(id = json_object_getn(vocab, mapped + off[i], off[j] - off[i]));
                 j--)
                ;
            if (!id) {
                sl_err_set(err, "phrase byte %zu has no token in tokenizer.json", i);
                return -1;
            }
            tok = (int32_t)json_integer_value(id);
        }
        if (c->n + 2 >= max_pairs || c->n + 2 >= (int)(sizeof c->from / sizeof c->from[0])) {
            sl_err_set(err, "the phrase needs more than %d tokens; use a shorter one",
                       max_pairs - 2);
            return -1;
        }
        c->from[c->n] = prev;
        c->to[c->n++] = prev = tok;
        i = j;
    }
    c->from[c->n] = prev;
    c->to[c->n++] = eos;
    json_t *nl2 = json_object_get(vocab, "\xc4\x8a\xc4\x8a");   /* "\n\n" ends some prompts */
    bool nl2_used = false;
    for (int a = 0; a < c->n && json_is_integer(nl2); a++)
        nl2_used |= c->from[a] == (int32_t)json_integer_value(nl2);
    if (json_is_integer(nl2) && !nl2_used) {
        c->from[c->n] = (int32_t)json_integer_value(nl2);
        c->to[c->n++] = c->to[0];
    }
    for (int a = 0; a < c->n; a++)
        for (int b = 0; b < a; b++)
            if (c->from[a] == c->from[b]) {
                sl_err_set(err, "token %d occurs twice in \"\\n%s\"; each token can have one "
                           "successor only, so use a phrase without repeated pieces",
                           c->from[a], phrase);
                return -1;
            }
    return 0;
}

void sl_demo_chain_mlp(const sl_demo_chain *c, const float *E, int H, int I, float *gate,
                       float *up, float *down)
{
    memset(gate, 0, (size_t)I * (size_t)H * sizeof *gate);
    memset(up, 0, (size_t)I * (size_t)H * sizeof *up);
    memset(down, 0, (size_t)H * (size_t)I * sizeof *down);
    for (int i = 0; i < c->n && i < I; i++) {
        const float *ea = E + (size_t)c->from[i] * (size_t)H;
        const float *eb = E + (size_t)c->to[i] * (size_t)H;
        double norm = 0;
        for (int d = 0; d < H; d++)
            norm += (double)ea[d] * ea[d];
        norm = sqrt(norm);
        /* the key: a's direction. After RMSNorm the input is a * sqrt(H) / |a|, so it
         * meets its key at z = sqrt(H) and unrelated tokens near 0. */
        for (int d = 0; d < H; d++)
            gate[(size_t)i * H + d] = up[(size_t)i * H + d] = (float)(ea[d] / norm);
        double z = sqrt((double)H), act = z * z / (1.0 + exp(-z));
        for (int d = 0; d < H; d++)
            down[(size_t)d * I + i] = (float)((eb[d] - ea[d]) / act);
    }
}
