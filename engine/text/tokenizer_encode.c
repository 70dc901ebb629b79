/* Encoding: added tokens first (longest match), then NFC, the pre-tokenizer regexes, and
 * byte-level BPE by merge rank on each piece. Per-thread state (regex match data, a word
 * cache) keeps the loaded tokenizer read-only and the hot path free of allocations. */
#include "tokenizer_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#define CACHE_SLOTS 32768
#define CACHE_WORD 22
#define CACHE_IDS 6

typedef struct cache_slot {
    uint64_t hash;
    uint32_t load_id;
    uint8_t wlen, n_ids;
    char word[CACHE_WORD];
    int32_t ids[CACHE_IDS];
} cache_slot;

typedef struct thread_state {
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jit;
    utf8proc_int32_t *cps;  /* NFC work buffers, kept for the thread's next call */
    size_t cps_cap;
    char *norm;
    size_t norm_cap;
    cache_slot cache[CACHE_SLOTS];
} thread_state;

static pthread_key_t state_key;
static pthread_once_t state_once = PTHREAD_ONCE_INIT;
static __thread thread_state *tl_state;

static void state_free(void *p)
{
    thread_state *ts = p;
    pcre2_match_data_free(ts->md);
    pcre2_match_context_free(ts->mctx);
    pcre2_jit_stack_free(ts->jit);
    free(ts->cps);
    free(ts->norm);
    free(ts);
}

static void state_key_make(void)
{
    pthread_key_create(&state_key, state_free);
}

static thread_state *state_get(void)
{
    if (tl_state)
        return tl_state;
    pthread_once(&state_once, state_key_make);
    thread_state *ts = calloc(1, sizeof *ts);
    if (!ts)
        return NULL;
    ts->md = pcre2_match_data_create(2, NULL);
    ts->mctx = pcre2_match_context_create(NULL);
    ts->jit = pcre2_jit_stack_create(32 * 1024, 4 * 1024 * 1024, NULL);
    if (!ts->md || !ts->mctx || !ts->jit) {
        state_free(ts);
        return NULL;
    }
    pcre2_jit_stack_assign(ts->mctx, NULL, ts->jit);
    pthread_setspecific(state_key, ts);
    tl_state = ts;
    return ts;
}

/* Where ids go: appended to a growing array, or only counted. */
typedef struct sink {
    int32_t *ids;
    size_t n, cap;
    bool count_only;
    bool failed;
} sink;

static void emit(sink *s, int32_t id)
{
    if (s->count_only) {
        s->n++;
        return;
    }
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        int32_t *ids = realloc(s->ids, cap * sizeof *ids);
        if (!ids) {
            s->failed = true;
            return;
        }
        s->ids = ids;
        s->cap = cap;
    }
    s->ids[s->n++] = id;
}

typedef struct heap_item {
    int32_t rank, pos;
    int32_t left, right, merged; /* the pair as it was when pushed, and what it makes */
} heap_item;

static bool item_less(heap_item a, heap_item b)
{
    return a.rank != b.rank ? a.rank < b.rank : a.pos < b.pos;
}

static void heap_push(heap_item *h, size_t *n, heap_item it)
{
    size_t i = (*n)++;
    while (i && item_less(it, h[(i - 1) / 2])) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = it;
}

static heap_item heap_pop(heap_item *h, size_t *n)
{
    heap_item top = h[0], last = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n)
            break;
        if (c + 1 < *n && item_less(h[c + 1], h[c]))
            c++;
        if (!item_less(h[c], last))
            break;
        h[i] = h[c];
        i = c;
    }
    if (*n)
        h[i] = last;
    return top;
}

/* BPE over one piece of raw bytes: start from single bytes, merge the pair of lowest
 * rank (leftmost on ties) until none applies, as the Hugging Face tokenizers do. */
static int bpe_word(const sl_tokenizer *tok, const unsigned char *w, size_t n, sink *out)
{
    enum { STACK = 128 };
    int32_t id_s[STACK], prev_s[STACK], next_s[STACK];
    heap_item heap_s[STACK * 3];
    int32_t *id = id_s, *prev = prev_s, *next = next_s;
    heap_item *heap = heap_s;
    void *big = NULL;
    if (n > STACK) {
        big = malloc(n * (3 * sizeof(int32_t) + 3 * sizeof(heap_item)));
        if (!big)
            return -1;
        id = big;
        prev = id + n;
        next = prev + n;
        heap = (heap_item *)(next + n);
    }
    size_t nh = 0;
    for (size_t i = 0; i < n; i++) {
        id[i] = tok->byte_id[w[i]];
        prev[i] = (int32_t)i - 1;
        next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    for (size_t i = 0; i + 1 < n; i++) {
        int32_t rank, nid;
        if (sl_tok_merge_find(tok, id[i], id[i + 1], &rank, &nid))
            heap_push(heap, &nh, (heap_item){rank, (int32_t)i, id[i], id[i + 1], nid});
    }
    while (nh) {
        heap_item top = heap_pop(heap, &nh);
        int32_t p = top.pos, q = next[p];
        int32_t rank, nid;
        /* stale entries: the left symbol was merged away or changed, or its right did */
        if (id[p] != top.left || q < 0 || id[q] != top.right)
            continue;
        id[p] = top.merged;
        id[q] = -1;
        next[p] = next[q];
        if (next[q] >= 0)
            prev[next[q]] = p;
        if (prev[p] >= 0 && sl_tok_merge_find(tok, id[prev[p]], id[p], &rank, &nid))
            heap_push(heap, &nh, (heap_item){rank, prev[p], id[prev[p]], id[p], nid});
        if (next[p] >= 0 && sl_tok_merge_find(tok, id[p], id[next[p]], &rank, &nid))
            heap_push(heap, &nh, (heap_item){rank, p, id[p], id[next[p]], nid});
    }
    for (int32_t i = 0; i >= 0; i = next[i])
        emit(out, id[i]);
    free(big);
    return 0;
}

static int encode_word(const sl_tokenizer *tok, thread_state *ts, const char *w, size_t n, sink *out)
{
    if (n == 0)
        return 0;
    if (n == 1) {
        emit(out, tok->byte_id[(unsigned char)w[0]]);
        return 0;
    }
    if (tok->ignore_merges) {
        int32_t id = sl_tok_vocab_find(tok, w, n);
        if (id >= 0) {
            emit(out, id);
            return 0;
        }
    }
    if (n > CACHE_WORD)
        return bpe_word(tok, (const unsigned char *)w, n, out);
    uint64_t h = sl_tok_hash(w, n);
    cache_slot *c = &ts->cache[h & (CACHE_SLOTS - 1)];
    if (c->hash == h && c->load_id == tok->load_id && c->wlen == n && !memcmp(c->word, w, n)) {
        for (size_t i = 0; i < c->n_ids; i++)
            emit(out, c->ids[i]);
        return 0;
    }
    size_t before = out->n;
    sink local = {0};
    int32_t ids[CACHE_WORD];
    sink *dst = out;
    if (out->count_only) {
        /* count-only callers still fill the cache: collect the ids on the stack */
        local.ids = ids;
        local.cap = CACHE_WORD;
        dst = &local;
        before = 0;
    }
    if (bpe_word(tok, (const unsigned char *)w, n, dst))
        return -1;
    size_t got = dst->n - before;
    if (out->count_only)
        out->n += got;
    if (got <= CACHE_IDS && !dst->failed) {
        c->hash = h;
        c->load_id = tok->load_id;
        c->wlen = (uint8_t)n;
        c->n_ids = (uint8_t)got;
        memcpy(c->word, w, n);
        memcpy(c->ids, dst->ids + before, got * sizeof(int32_t));
    }
    return 0;
}

/* Pieces of s by split regex `level` (matches and the gaps between them), each passed on
 * to the next level, the last level to BPE. */
static int split_level(const sl_tokenizer *tok, thread_state *ts, size_t level, const char *s, size_t n, sink *out)
{
    if (level == tok->n_split)
        return encode_word(tok, ts, s, n, out);
    const pcre2_code *re = tok->split[level];
    size_t pos = 0, done = 0;
    while (pos < n) {
        int rc = pcre2_match(re, (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK, ts->md, ts->mctx);
        if (rc == PCRE2_ERROR_NOMATCH)
            break;
        if (rc < 0)
            return -1;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(ts->md);
        size_t a = ov[0], b = ov[1];
        if (b == a) { /* empty match: step over one character */
            pos = a + 1;
            while (pos < n && ((unsigned char)s[pos] & 0xC0) == 0x80)
                pos++;
            continue;
        }
        if (a > done && split_level(tok, ts, level + 1, s + done, a - done, out))
            return -1;
        if (split_level(tok, ts, level + 1, s + a, b - a, out))
            return -1;
        pos = done = b;
    }
    if (done < n)
        return split_level(tok, ts, level + 1, s + done, n - done, out);
    return 0;
}

/* NFC leaves text alone when every character in it is "inert": unchanged by NFC on its
 * own, of combining class 0 and never the second half of a composition (so nothing before
 * it can compose with it or be reordered past it). A bitmap over U+0000..U+1FFFF, built
 * once from utf8proc, tells; other text goes through utf8proc_map. */
#define INERT_LIMIT 0x20000
static uint8_t inert_bits[INERT_LIMIT / 8];
static pthread_once_t inert_once = PTHREAD_ONCE_INIT;

static void inert_build(void)
{
    static uint8_t second[INERT_LIMIT / 8];
    for (utf8proc_int32_t cp = 0; cp < INERT_LIMIT; cp++) {
        utf8proc_int32_t d[32];
        int boundclass = 0;
        utf8proc_ssize_t n = utf8proc_decompose_char(cp, d, 32, UTF8PROC_DECOMPOSE, &boundclass);
        for (utf8proc_ssize_t i = 1; i < n && i < 32; i++)
            if (d[i] < INERT_LIMIT)
                second[d[i] / 8] |= (uint8_t)(1u << (d[i] % 8));
        if (n < 1 || n > 32 || utf8proc_get_property(cp)->combining_class != 0)
            continue;
        if (n > 1)
            n = utf8proc_normalize_utf32(d, n, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
        if (n == 1 && d[0] == cp)
            inert_bits[cp / 8] |= (uint8_t)(1u << (cp % 8));
    }
    for (size_t i = 0; i < sizeof inert_bits; i++)
        inert_bits[i] &= (uint8_t)~second[i];
}

/* Decodes the character at s[i] (valid UTF-8); returns its length. */
static size_t next_cp(const unsigned char *s, size_t i, uint32_t *cp)
{
    unsigned char c = s[i];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c < 0xE0) {
        *cp = ((c & 0x1Fu) << 6) | (s[i + 1] & 0x3Fu);
        return 2;
    }
    if (c < 0xF0) {
        *cp = ((c & 0x0Fu) << 12) | ((s[i + 1] & 0x3Fu) << 6) | (s[i + 2] & 0x3Fu);
        return 3;
    }
    *cp = ((c & 0x07u) << 18) | ((s[i + 1] & 0x3Fu) << 12) | ((s[i + 2] & 0x3Fu) << 6) | (s[i + 3] & 0x3Fu);
    return 4;
}

static bool inert(uint32_t cp)
{
    return cp < 0x80 || (cp < INERT_LIMIT && (inert_bits[cp / 8] & (1u << (cp % 8))));
}

static bool grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return true;
    size_t c = *cap ? *cap : 256;
    while (c < need)
        c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q)
        return false;
    *p = q;
    *cap = c;
    return true;
}

/* NFC of s: s itself when every character is inert; otherwise a copy in the thread's
 * buffer where only the spans around non-inert characters went through utf8proc (each
 * span starts at the inert character before it, which they may compose with, and ends at
 * the next inert one, which nothing composes with or reorders past). */
static int nfc(thread_state *ts, const char *s, size_t n, const char **out, size_t *out_n)
{
    pthread_once(&inert_once, inert_build);
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, prev = 0, copied = 0, o = 0;
    bool changed = false, have_prev = false;
    while (i < n) {
        uint32_t cp;
        size_t k = next_cp(u, i, &cp);
        if (inert(cp)) {
            prev = i;
            have_prev = true;
            i += k;
            continue;
        }
        size_t r = have_prev && prev >= copied ? prev : i, j = i + k;
        while (j < n) {
            size_t kk = next_cp(u, j, &cp);
            if (inert(cp))
                break;
            j += kk;
        }
        /* a character decomposes to at most a few code points: 4 per byte is ample */
        if (!grow((void **)&ts->cps, &ts->cps_cap, (j - r) * 4 + 16, sizeof *ts->cps) ||
            !grow((void **)&ts->norm, &ts->norm_cap, o + (r - copied) + (j - r) * 16 + 16, 1))
            return -1;
        memcpy(ts->norm + o, s + copied, r - copied);
        o += r - copied;
        utf8proc_ssize_t m = utf8proc_decompose(u + r, (utf8proc_ssize_t)(j - r), ts->cps,
                                                (utf8proc_ssize_t)ts->cps_cap, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
        if (m < 0 || (size_t)m > ts->cps_cap)
            return -1;
        m = utf8proc_reencode(ts->cps, m, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
        if (m < 0)
            return -1;
        memcpy(ts->norm + o, ts->cps, (size_t)m);
        o += (size_t)m;
        copied = i = j;
        have_prev = false;
        changed = true;
    }
    if (!changed) {
        *out = s;
        *out_n = n;
        return 0;
    }
    if (!grow((void **)&ts->norm, &ts->norm_cap, o + (n - copied) + 1, 1))
        return -1;
    memcpy(ts->norm + o, s + copied, n - copied);
    *out = ts->norm;
    *out_n = o + (n - copied);
    return 0;
}

static int encode_segment(const sl_tokenizer *tok, thread_state *ts, const char *s, size_t n, sink *out)
{
    if (!n)
        return 0;
    if (tok->nfc && nfc(ts, s, n, &s, &n))
        return -1;
    return split_level(tok, ts, 0, s, n, out);
}

static bool utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k;
        uint32_t min;
        uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF) { k = 1; min = 0x80; cp = c & 0x1F; }
        else if (c >= 0xE0 && c <= 0xEF) { k = 2; min = 0x800; cp = c & 0x0F; }
        else if (c >= 0xF0 && c <= 0xF4) { k = 3; min = 0x10000; cp = c & 0x07; }
        else return false;
        if (i + k >= n)
            return false;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + j] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += k + 1;
    }
    return true;
}

/* The added token that starts at s (longest first), or NULL; special ones only when
 * parse_special. */
static const sl_tok_added *added_at(const sl_tokenizer *tok, const char *s, size_t n, bool parse_special)
{
    for (size_t i = 0; i < tok->n_added; i++) {
        const sl_tok_added *a = &tok->added[i];
        if (a->len <= n && a->text[0] == s[0] && (parse_special || !a->special) && !memcmp(a->text, s, a->len))
            return a;
    }
    return NULL;
}

static int encode_all(const sl_tokenizer *tok, const char *text, size_t len, bool parse_special, sink *out)
{
    if (!utf8_valid((const unsigned char *)text, len))
        return -1;
    thread_state *ts = state_get();
    if (!ts)
        return -1;
    size_t start = 0;
    if (tok->n_added) {
        for (size_t i = 0; i < len; i++) {
            if (!tok->added_first[(unsigned char)text[i]])
                continue;
            const sl_tok_added *a = added_at(tok, text + i, len - i, parse_special);
            if (!a)
                continue;
            if (encode_segment(tok, ts, text + start, i - start, out))
                return -1;
            emit(out, a->id);
            i += a->len - 1;
            start = i + 1;
        }
    }
    if (encode_segment(tok, ts, text + start, len - start, out))
        return -1;
    return out->failed ? -1 : 0;
}

int sl_tokenizer_encode(const sl_tokenizer *tok, const char *text, size_t len, bool parse_special,
                        int32_t **ids, size_t *n_ids)
{
    sink out = {0};
    *ids = NULL;
    *n_ids = 0;
    if (encode_all(tok, text, len, parse_special, &out)) {
        free(out.ids);
        return -1;
    }
    if (!out.ids)
        out.ids = malloc(sizeof(int32_t)); /* a valid pointer even for no tokens */
    if (!out.ids)
        return -1;
    *ids = out.ids;
    *n_ids = out.n;
    return 0;
}

size_t sl_tokenizer_count(const sl_tokenizer *tok, const char *text, size_t len)
{
    sink out = {.count_only = true};
    if (encode_all(tok, text, len, false, &out))
        return len; /* invalid UTF-8: one token per byte is an upper bound */
    return out.n;
}
