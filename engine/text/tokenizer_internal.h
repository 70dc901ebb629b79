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

    pcre2_code *split[SL_TOK_MAX_SPLITS];
    size_t n_split;
    bool nfc;
    bool ignore_merges;
    uint32_t load_id;      /* tells per-thread caches of different tokenizers apart */
};

uint64_t sl_tok_hash(const void *data, size_t len);
/* Model-vocabulary id of raw bytes, or -1. */
int32_t sl_tok_vocab_find(const sl_tokenizer *tok, const char *s, size_t len);
/* Merge of the pair (a, b): fills rank and merged id and returns 1, or returns 0. */
int sl_tok_merge_find(const sl_tokenizer *tok, int32_t a, int32_t b, int32_t *rank, int32_t *id);

#endif
