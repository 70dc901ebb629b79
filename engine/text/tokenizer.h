/* Byte-level BPE tokenizer read from a Hugging Face tokenizer.json (Qwen2 / Llama 3 style):
 * pre-tokenizer regex, NFC normalisation, added/special tokens, merges by rank.
 * The gateway links this too, to count tokens. A loaded sl_tokenizer is immutable and
 * safe to use from many threads at once. */
#ifndef SL_TOKENIZER_H
#define SL_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

typedef struct sl_tokenizer sl_tokenizer;

/* Load from a tokenizer.json path. Returns NULL and fills err on failure. Caller frees
 * with sl_tokenizer_free. */
sl_tokenizer *sl_tokenizer_load(const char *tokenizer_json_path, sl_err *err);
void sl_tokenizer_free(sl_tokenizer *tok);

/* Encode len bytes of UTF-8. With parse_special, special tokens written in the text
 * (e.g. "<|im_start|>") become their ids; without, they are encoded as plain text.
 * Added tokens not marked special (Qwen3's <think>) are matched either way, as Hugging
 * Face's encode(split_special_tokens=True) does.
 * *ids is malloc'd, caller frees. Returns 0, or -1 on invalid input/allocation failure. */
int sl_tokenizer_encode(const sl_tokenizer *tok, const char *text, size_t len,
                        bool parse_special, int32_t **ids, size_t *n_ids);

/* Number of tokens text encodes to (parse_special = false); no allocation kept. */
size_t sl_tokenizer_count(const sl_tokenizer *tok, const char *text, size_t len);

/* Id of a token by its exact vocabulary/added-token string, or -1. */
int32_t sl_tokenizer_token_id(const sl_tokenizer *tok, const char *token);
/* Vocabulary size including added tokens (max id + 1). */
size_t sl_tokenizer_vocab_size(const sl_tokenizer *tok);
/* True for added tokens marked special (never shown in decoded text by default). */
bool sl_tokenizer_is_special(const sl_tokenizer *tok, int32_t id);

/* Raw bytes of one token (added tokens: their text), not NUL-terminated; NULL for an
 * unknown id. Points into tok, valid while tok lives. */
const char *sl_tokenizer_token_bytes(const sl_tokenizer *tok, int32_t id, size_t *len);

/* Decode ids to UTF-8 text (invalid byte sequences become U+FFFD). *text is malloc'd and
 * NUL-terminated, caller frees. Returns 0, or -1 on allocation failure. */
int sl_tokenizer_decode(const sl_tokenizer *tok, const int32_t *ids, size_t n_ids, bool skip_special,
                        char **text, size_t *len);

/* Incremental decoder: push ids one at a time, get the UTF-8 bytes that are complete.
 * Never emits half a UTF-8 character; bytes of an incomplete character wait for the
 * next token. Special tokens are skipped when skip_special is set. */
typedef struct sl_detok {
    const sl_tokenizer *tok;
    bool skip_special;
    unsigned char pending[8];
    size_t n_pending;
} sl_detok;

void sl_detok_init(sl_detok *d, const sl_tokenizer *tok, bool skip_special);
/* Appends decoded bytes for id to out (capacity cap); returns the number written.
 * cap >= 256 + SL_TOKEN_MAX_BYTES is always enough. */
#define SL_TOKEN_MAX_BYTES 1024
size_t sl_detok_push(sl_detok *d, int32_t id, char *out, size_t cap);
/* Flush whatever is pending at end of stream (invalid bytes become U+FFFD). */
size_t sl_detok_finish(sl_detok *d, char *out, size_t cap);

#endif
