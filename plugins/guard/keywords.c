/* Aho-Corasick: every deny keyword in one pass over the text. Built as a trie of
 * sibling lists, then frozen into sorted edge arrays with failure links. Where it fits in
 * DFA_BUDGET, the automaton is also made a full DFA over byte classes (bytes that occur in
 * no keyword share one class): one table load per byte of text instead of a walk along
 * failure links (about 10x faster on 10,000 keywords). */
#include "guard_int.h"

#include <stdlib.h>
#include <string.h>

typedef struct build_node {
    int32_t child, sibling;
    uint8_t byte;
} build_node;

struct sl_guard_ac {
    /* build phase */
    build_node *bn;
    size_t n_nodes, cap_nodes;
    int32_t *own;               /* keyword id ending at each node, -1 */
    uint32_t *own_len;
    size_t n_words;
    size_t max_len;             /* the longest keyword's bytes */
    bool built;
    /* frozen */
    int32_t root[256];
    uint32_t *edge_off;         /* edges of node s: [edge_off[s], edge_off[s + 1]) */
    uint8_t *edge_byte;
    int32_t *edge_to;
    int32_t *fail;
    int32_t *out;               /* longest keyword ending at s or at a suffix of s, -1 */
    uint32_t *out_len;
    /* DFA: states are kept as row offsets (state * n_classes, which takes the multiply off
     * the chain of loads); the next of row r on byte b is dfa[r + cls[b]], with OUT_BIT set
     * when that state has an output (saves a second load per byte); NULL when too big */
    uint8_t cls[256];
    uint32_t n_classes;
    int32_t *dfa;               /* states renumbered in BFS order: the shallow, hot rows sit together */
    int32_t *dfa_out;
    uint32_t *dfa_out_len;
};

#define DFA_BUDGET (64u << 20)
#define OUT_BIT 0x40000000

static int32_t new_node(sl_guard_ac *ac, uint8_t byte)
{
    if (ac->n_nodes == ac->cap_nodes) {
        size_t cap = ac->cap_nodes ? ac->cap_nodes * 2 : 1024;
        build_node *bn = realloc(ac->bn, cap * sizeof *bn);
        if (!bn)
            return -1;
        ac->bn = bn;
        int32_t *own = realloc(ac->own, cap * sizeof *own);
        if (!own)
            return -1;
        ac->own = own;
        uint32_t *own_len = realloc(ac->own_len, cap * sizeof *own_len);
        if (!own_len)
            return -1;
        ac->own_len = own_len;
        ac->cap_nodes = cap;
    }
    int32_t id = (int32_t)ac->n_nodes++;
    ac->bn[id] = (build_node){.child = -1, .sibling = -1, .byte = byte};
    ac->own[id] = -1;
    ac->own_len[id] = 0;
    return id;
}

sl_guard_ac *sl_guard_ac_new(void)
{
    sl_guard_ac *ac = calloc(1, sizeof *ac);
    if (!ac || new_node(ac, 0) < 0) {
        sl_guard_ac_free(ac);
        return NULL;
    }
    return ac;
}

static int32_t build_child(const sl_guard_ac *ac, int32_t s, uint8_t c)
{
    for (int32_t k = ac->bn[s].child; k >= 0; k = ac->bn[k].sibling)
        if (ac->bn[k].byte == c)
            return k;
    return -1;
}

int sl_guard_ac_add(sl_guard_ac *ac, const char *kw, size_t len, uint32_t id)
{
    if (ac->built || len == 0 || len > UINT32_MAX)
        return -1;
    if (len > ac->max_len)
        ac->max_len = len;
    int32_t s = 0;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = (uint8_t)kw[i];
        int32_t k = build_child(ac, s, c);
        if (k < 0) {
            if ((k = new_node(ac, c)) < 0)
                return -1;
            ac->bn[k].sibling = ac->bn[s].child;
            ac->bn[s].child = k;
        }
        s = k;
    }
    if (ac->own[s] < 0) {
        ac->own[s] = (int32_t)id;
        ac->own_len[s] = (uint32_t)len;
    }
    ac->n_words++;
    return 0;
}

static int cmp_byte(const void *a, const void *b)
{
    return (int)((const uint8_t *)a)[0] - (int)((const uint8_t *)b)[0];
}

/* The frozen transition of s on c, or -1. */
static inline int32_t edge(const sl_guard_ac *ac, int32_t s, uint8_t c)
{
    uint32_t lo = ac->edge_off[s], hi = ac->edge_off[s + 1];
    if (hi - lo <= 8) {
        for (uint32_t k = lo; k < hi; k++)
            if (ac->edge_byte[k] == c)
                return ac->edge_to[k];
        return -1;
    }
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (ac->edge_byte[mid] < c)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < ac->edge_off[s + 1] && ac->edge_byte[lo] == c ? ac->edge_to[lo] : -1;
}

static inline int32_t step(const sl_guard_ac *ac, int32_t s, uint8_t c)
{
    for (;;) {
        if (s == 0)
            return ac->root[c];
        int32_t t = edge(ac, s, c);
        if (t >= 0)
            return t;
        s = ac->fail[s];
    }
}

/* The DFA, rows filled in BFS order so that a state's failure row is ready before it. */
static void build_dfa(sl_guard_ac *ac, const int32_t *bfs, size_t n)
{
    bool used[256] = {false};
    for (size_t k = 0; k < ac->edge_off[n]; k++)
        used[ac->edge_byte[k]] = true;
    uint32_t nc = 1;
    for (int b = 0; b < 256; b++)
        ac->cls[b] = used[b] ? (uint8_t)nc++ : 0;
    if ((double)n * nc * sizeof(int32_t) > DFA_BUDGET || (double)n * nc >= OUT_BIT)
        return;
    int32_t *dfa = malloc(n * nc * sizeof *dfa), *renum = malloc(n * sizeof *renum);
    ac->dfa_out = malloc(n * sizeof *ac->dfa_out);
    ac->dfa_out_len = malloc(n * sizeof *ac->dfa_out_len);
    if (!dfa || !renum || !ac->dfa_out || !ac->dfa_out_len) { /* the edge arrays still serve */
        free(dfa);
        free(renum);
        free(ac->dfa_out);
        free(ac->dfa_out_len);
        ac->dfa_out = NULL;
        ac->dfa_out_len = NULL;
        return;
    }
    ac->n_classes = nc;
    for (size_t i = 0; i < n; i++)
        renum[bfs[i]] = (int32_t)i;
    for (size_t i = 0; i < n; i++) {
        int32_t s = bfs[i];
        int32_t *row = dfa + i * nc;
        ac->dfa_out[i] = ac->out[s];
        ac->dfa_out_len[i] = ac->out_len[s];
        if (s == 0)
            memset(row, 0, nc * sizeof *row);
        else
            memcpy(row, dfa + (size_t)renum[ac->fail[s]] * nc, nc * sizeof *row);
        for (uint32_t k = ac->edge_off[s]; k < ac->edge_off[s + 1]; k++) {
            int32_t t = ac->edge_to[k];
            int32_t to = renum[t] * (int32_t)nc;
            row[ac->cls[ac->edge_byte[k]]] = ac->out[t] >= 0 ? to | OUT_BIT : to;
        }
    }
    free(renum);
    ac->dfa = dfa;
}

int sl_guard_ac_build(sl_guard_ac *ac)
{
    size_t n = ac->n_nodes;
    int32_t *queue = malloc(n * sizeof *queue);
    ac->edge_off = calloc(n + 1, sizeof *ac->edge_off);
    ac->edge_byte = malloc(n);
    ac->edge_to = malloc(n * sizeof *ac->edge_to);
    ac->fail = calloc(n, sizeof *ac->fail);
    ac->out = malloc(n * sizeof *ac->out);
    ac->out_len = calloc(n, sizeof *ac->out_len);
    if (!queue || !ac->edge_off || !ac->edge_byte || !ac->edge_to || !ac->fail || !ac->out || !ac->out_len)
        goto fail;
    /* the edges of each node, contiguous and sorted by byte */
    struct pair { uint8_t byte; int32_t to; } *tmp = malloc(256 * sizeof *tmp);
    if (!tmp)
        goto fail;
    size_t head = 0, tail = 0;
    queue[tail++] = 0;
    uint32_t *cnt = calloc(n + 1, sizeof *cnt);
    if (!cnt) {
        free(tmp);
        goto fail;
    }
    for (size_t s = 0; s < n; s++)
        for (int32_t k = ac->bn[s].child; k >= 0; k = ac->bn[k].sibling)
            cnt[s]++;
    for (size_t s = 0; s < n; s++)
        ac->edge_off[s + 1] = ac->edge_off[s] + cnt[s];
    for (size_t s = 0; s < n; s++) {
        size_t m = 0;
        for (int32_t k = ac->bn[s].child; k >= 0; k = ac->bn[k].sibling)
            tmp[m++] = (struct pair){ac->bn[k].byte, k};
        qsort(tmp, m, sizeof *tmp, cmp_byte);
        for (size_t j = 0; j < m; j++) {
            ac->edge_byte[ac->edge_off[s] + j] = tmp[j].byte;
            ac->edge_to[ac->edge_off[s] + j] = tmp[j].to;
        }
    }
    free(cnt);
    free(tmp);
    memset(ac->root, 0, sizeof ac->root);
    for (uint32_t k = ac->edge_off[0]; k < ac->edge_off[1]; k++)
        ac->root[ac->edge_byte[k]] = ac->edge_to[k];
    ac->out[0] = -1;
    /* BFS: fail links and outputs */
    while (head < tail) {
        int32_t s = queue[head++];
        for (uint32_t k = ac->edge_off[s]; k < ac->edge_off[s + 1]; k++) {
            int32_t t = ac->edge_to[k];
            uint8_t c = ac->edge_byte[k];
            ac->fail[t] = s == 0 ? 0 : step(ac, ac->fail[s], c);
            if (ac->own[t] >= 0) {
                ac->out[t] = ac->own[t];
                ac->out_len[t] = ac->own_len[t];
            } else {
                ac->out[t] = ac->out[ac->fail[t]];
                ac->out_len[t] = ac->out_len[ac->fail[t]];
            }
            queue[tail++] = t;
        }
    }
    build_dfa(ac, queue, tail);
    free(queue);
    free(ac->bn);
    ac->bn = NULL;
    ac->built = true;
    return 0;
fail:
    free(queue);
    return -1;
}

#define LANES 4
#define LANE_MIN 64 /* bytes a lane scans at least, past its run-up */

/* The DFA's first match in p[from, len) from the start state, in four lanes at once. The
 * text is cut in four pieces; a lane starts max_len - 1 bytes before its piece, from where its
 * state is the one-lane scan's again by the piece (a state says at most the last max_len - 1
 * bytes). The DFA's chain of dependent loads is one lane's speed limit, so four independent
 * chains side by side go through a long text (a request's prompt) several times faster. A
 * lane's matches before its piece are its left neighbour's; the first lane with a match in
 * its piece has the first match. false where the text is too short for it to pay. */
static bool dfa_lanes(const sl_guard_ac *ac, int32_t *state, const uint8_t *p, size_t from, size_t len,
                      bool *found, sl_guard_hit *hit)
{
    size_t run_up = ac->max_len ? ac->max_len - 1 : 0, piece = (len - from) / LANES;
    if (piece < run_up + LANE_MIN)
        return false;
    const int32_t *dfa = ac->dfa;
    const uint8_t *cls = ac->cls;
    int32_t st[LANES] = {0}, at_hit[LANES];
    size_t start[LANES], end_hit[LANES];
    for (int k = 0; k < LANES; k++) {
        start[k] = from + (size_t)k * piece;
        end_hit[k] = 0;
        for (size_t i = k ? start[k] - run_up : start[k]; i < start[k]; i++)
            st[k] = dfa[(st[k] & ~OUT_BIT) + cls[p[i]]];
        st[k] &= ~OUT_BIT;
    }
    int32_t s0 = st[0], s1 = st[1], s2 = st[2], s3 = st[3];
    const uint8_t *p0 = p + start[0], *p1 = p + start[1], *p2 = p + start[2], *p3 = p + start[3];
    for (size_t i = 0; i < piece; i++) {
        s0 = dfa[s0 + cls[p0[i]]];
        s1 = dfa[s1 + cls[p1[i]]];
        s2 = dfa[s2 + cls[p2[i]]];
        s3 = dfa[s3 + cls[p3[i]]];
        if (__builtin_expect((s0 | s1 | s2 | s3) & OUT_BIT, 0)) {
            int32_t *s[LANES] = {&s0, &s1, &s2, &s3};
            for (int k = 0; k < LANES; k++)
                if (*s[k] & OUT_BIT) {
                    if (!end_hit[k]) {
                        end_hit[k] = start[k] + i + 1;
                        at_hit[k] = *s[k];
                    }
                    *s[k] &= ~OUT_BIT;
                }
            if (end_hit[0])
                break; /* nothing ends before the first lane's first */
        }
    }
    /* the last lane's piece takes the bytes the cut left over */
    for (size_t i = start[3] + piece; i < len && !end_hit[3] && !end_hit[0]; i++)
        if ((s3 = dfa[s3 + cls[p[i]]]) & OUT_BIT) {
            end_hit[3] = i + 1;
            at_hit[3] = s3;
        }
    *found = false;
    for (int k = 0; k < LANES && !*found; k++)
        if (end_hit[k]) {
            size_t row = (size_t)(at_hit[k] & ~OUT_BIT) / ac->n_classes, klen = ac->dfa_out_len[row];
            *hit = (sl_guard_hit){.start = klen < end_hit[k] ? end_hit[k] - klen : 0, .end = end_hit[k],
                                  .id = (uint32_t)ac->dfa_out[row]};
            *found = true;
        }
    *state = *found ? 0 : s3;
    return true;
}

bool sl_guard_ac_feed(const sl_guard_ac *ac, int32_t *state, const char *s, size_t from, size_t len,
                      sl_guard_hit *hit)
{
    if (!ac || !ac->built)
        return false;
    const uint8_t *p = (const uint8_t *)s;
    int32_t st = *state;
    size_t klen;
    bool found;
    if (ac->dfa && st == 0 && len > from && dfa_lanes(ac, state, p, from, len, &found, hit))
        return found;
    if (ac->dfa) {
        const int32_t *dfa = ac->dfa;
        for (size_t i = from; i < len; i++) {
            st = dfa[st + ac->cls[p[i]]];
            if (st & OUT_BIT) {
                size_t row = (size_t)(st & ~OUT_BIT) / ac->n_classes;
                hit->end = i + 1;
                hit->id = (uint32_t)ac->dfa_out[row];
                klen = ac->dfa_out_len[row];
                goto found;
            }
        }
        *state = st;
        return false;
    }
    for (size_t i = from; i < len; i++) {
        st = step(ac, st, p[i]);
        if (ac->out[st] >= 0) {
            hit->end = i + 1;
            hit->id = (uint32_t)ac->out[st];
            klen = ac->out_len[st];
            goto found;
        }
    }
    *state = st;
    return false;
found:
    *state = 0;
    hit->start = klen < hit->end ? hit->end - klen : 0; /* begun before s: only past a short hold-back */
    hit->is_regex = false;
    return true;
}

bool sl_guard_ac_find(const sl_guard_ac *ac, const char *s, size_t len, sl_guard_hit *hit)
{
    int32_t state = 0;
    return sl_guard_ac_feed(ac, &state, s, 0, len, hit);
}

bool sl_guard_ac_has_dfa(const sl_guard_ac *ac) { return ac && ac->dfa; }

void sl_guard_ac_drop_dfa(sl_guard_ac *ac)
{
    free(ac->dfa);
    free(ac->dfa_out);
    free(ac->dfa_out_len);
    ac->dfa = NULL;
    ac->dfa_out = NULL;
    ac->dfa_out_len = NULL;
}

size_t sl_guard_ac_count(const sl_guard_ac *ac) { return ac ? ac->n_words : 0; }
size_t sl_guard_ac_states(const sl_guard_ac *ac) { return ac ? ac->n_nodes : 0; }

void sl_guard_ac_free(sl_guard_ac *ac)
{
    if (!ac)
        return;
    free(ac->bn);
    free(ac->own);
    free(ac->own_len);
    free(ac->edge_off);
    free(ac->edge_byte);
    free(ac->edge_to);
    free(ac->fail);
    free(ac->out);
    free(ac->out_len);
    free(ac->dfa);
    free(ac->dfa_out);
    free(ac->dfa_out_len);
    free(ac);
}
