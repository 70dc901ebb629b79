/* Inside of sl_tokenizer, shared by its load, encode and decode files. Not for other modules. */
#ifndef SL_TOKENIZER_INTERNAL_H
#define SL_TOKENIZER_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdint.h>

#include "tokenizer.h"

#define SL_TOK_MAX_SPLITS 4

enum { TOK_PRESENT = 1, TOK_ADDED = 2, TOK_SPECIAL = 4 };

typedef struct sl_tok_added {
    const char *text; /* points into the arena */
    uint32_t len;
    int32_t id;
    bool special;
} sl_tok_added;

typedef struct sl_tok_merge {
    uint64_t key;  /* (left id << 32 | right id) + 1; 0 = empty slot */
    int32_t rank;
    int32_t id;
} sl_tok_merge;

struct sl_tokenizer {
    size_t n_vocab;        /* max id + 1 */
    uint32_t *tok_off;     /* raw bytes of each id in arena */
    uint32_t *tok_len;
    uint8_t *tok_flags;
    char *arena;
    size_t arena_len, arena_cap;

    uint32_t *vmap;        /* raw bytes -> id + 1, open addressing over model vocab */
    size_t vmap_mask;
    sl_tok_merge *mmap;    /* (left, right) -> rank, merged id */
    size_t mmap_mask;
    int32_t byte_id[256];

    sl_tok_added *added;   /* sorted by length, longest first */
    size_t n_added;
    uint8_t added_first[256];
    uint8_t added_pair[65536 / 8]; /* first two bytes of added tokens two bytes or longer */
    uint8_t added_single[256];     /* one-byte added tokens */

    pcre2_code *split[SL_TOK_MAX_SPLITS];
    bool split_jit[SL_TOK_MAX_SPLITS]; /* JIT-compiled: call pcre2_jit_match directly */
    int split_scan[SL_TOK_MAX_SPLITS]; /* SL_TOK_SCAN_*: a hand-written scanner serves */
    size_t n_split;
    bool nfc;
    bool ignore_merges;
    uint32_t load_id;      /* tells per-thread caches of different tokenizers apart */
};

enum { SL_TOK_SCAN_NONE, SL_TOK_SCAN_QWEN2, SL_TOK_SCAN_LLAMA3 };
/* Which hand-written scanner implements this pre-tokenizer regex, if any. */
int sl_tok_scan_kind(const char *pattern);
/* End of the piece that starts at pos (pos < n, text valid UTF-8). */
size_t sl_tok_scan_next(int kind, const char *text, size_t n, size_t pos);
/* Level-0 pieces of text: their end offsets into ends (up to cap); returns how many.
 * With use_scanner false, PCRE2 cuts them even where a scanner exists (for tests). */
size_t sl_tok_pieces(const sl_tokenizer *tok, bool use_scanner, const char *text, size_t n, size_t *ends,
                     size_t cap);

uint64_t sl_tok_hash(const void *data, size_t len);
/* Model-vocabulary id of raw bytes, or -1. */
int32_t sl_tok_vocab_find(const sl_tokenizer *tok, const char *s, size_t len);
/* Merge of the pair (a, b): fills rank and merged id and returns 1, or returns 0. */
int sl_tok_merge_find(const sl_tokenizer *tok, int32_t a, int32_t b, int32_t *rank, int32_t *id);

#endif
