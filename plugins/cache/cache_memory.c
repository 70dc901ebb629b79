/* The memory backend: a hash table split in shards, each with its own lock, byte budget and
 * LRU list, so that worker threads rarely wait on each other. An entry costs its key, its
 * value and its bookkeeping; expired entries are dropped when met or evicted.
 *
 * A shard's index is open addressing (linear probing) over slots that hold each entry's hash
 * beside its pointer: a lookup reads the slots, a small array that stays in the CPU's cache,
 * and touches an entry (somewhere in up to max_bytes of memory) only when the whole hash
 * matches. Most lookups miss (each new prompt is one); a chain of entries cost a cache miss
 * a link. */
#include "cache.h"
#include "coarse_clock.h"
#include "hash64.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* One allocation: the entry, then its key (NUL-terminated), then its value (unless the
 * value was handed over: own_val). */
typedef struct entry {
    struct entry *prev, *next;      /* LRU: head = most recently used */
    uint64_t hash;
    int64_t expires_ms;             /* 0 = never */
    size_t len, cost;
    char *val;                      /* after the key, or its own block (own_val) */
    bool own_val;                   /* handed over by sl_cache_mem_put_owned */
    char key[];
} entry;

typedef struct slot {
    uint64_t hash;
    entry *e;                       /* NULL: empty */
} slot;

typedef struct shard {
    pthread_mutex_t lock;
    slot *slots;
    size_t n_slots;                 /* power of two; kept over a quarter empty */
    size_t count;
    size_t bytes, cap;
    entry *head, *tail;
} shard;

struct sl_cache_mem {
    unsigned n_shards;
    shard *shards;
};

int64_t sl_cache_now_ms(void) { return sl_coarse_ms(); } /* TTLs are whole seconds and up */

sl_cache_mem *sl_cache_mem_new(size_t max_bytes, unsigned n_shards)
{
    if (n_shards == 0) { /* keep shards at 4 MiB or more so one large answer still fits */
        n_shards = 1;
        while (n_shards < 16 && max_bytes / (n_shards * 2) >= (4u << 20))
            n_shards *= 2;
    }
    sl_cache_mem *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->shards = calloc(n_shards, sizeof *m->shards);
    if (!m->shards) {
        free(m);
        return NULL;
    }
    m->n_shards = n_shards;
    for (unsigned i = 0; i < n_shards; i++) {
        pthread_mutex_init(&m->shards[i].lock, NULL);
        m->shards[i].cap = max_bytes / n_shards;
    }
    return m;
}

static void entry_free(entry *e)
{
    if (e->own_val)
        free(e->val);
    free(e);
}

void sl_cache_mem_free(sl_cache_mem *m)
{
    if (!m)
        return;
    for (unsigned i = 0; i < m->n_shards; i++) {
        shard *s = &m->shards[i];
        for (entry *e = s->head, *next; e; e = next) {
            next = e->next;
            entry_free(e);
        }
        free(s->slots);
        pthread_mutex_destroy(&s->lock);
    }
    free(m->shards);
    free(m);
}

size_t sl_cache_mem_max_entry(const sl_cache_mem *m) { return m->shards[0].cap; }

static shard *shard_of(sl_cache_mem *m, uint64_t h) { return &m->shards[(h >> 48) & (m->n_shards - 1)]; }

/* The slot holding key (hash h), or -1. */
static long find(const shard *s, uint64_t h, const char *key)
{
    if (!s->n_slots)
        return -1;
    size_t mask = s->n_slots - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        const slot *sl = &s->slots[i];
        if (!sl->e)
            return -1;
        if (sl->hash == h && strcmp(sl->e->key, key) == 0)
            return (long)i;
    }
}

static size_t slot_of(const shard *s, const entry *e)
{
    size_t mask = s->n_slots - 1, i = e->hash & mask;
    while (s->slots[i].e != e)
        i = (i + 1) & mask;
    return i;
}

static void slot_put(slot *slots, size_t n_slots, uint64_t h, entry *e)
{
    size_t mask = n_slots - 1, i = h & mask;
    while (slots[i].e)
        i = (i + 1) & mask;
    slots[i] = (slot){h, e};
}

/* Empty slot i; the slots after it in its run move back where their probe allows, so that
 * every lookup still reaches its entry before an empty slot (no tombstones). */
static void slot_clear(shard *s, size_t i)
{
    size_t mask = s->n_slots - 1;
    for (size_t j = (i + 1) & mask; s->slots[j].e; j = (j + 1) & mask) {
        size_t home = s->slots[j].hash & mask;
        if (((j - home) & mask) >= ((j - i) & mask)) { /* the hole lies between its home and j */
            s->slots[i] = s->slots[j];
            i = j;
        }
    }
    s->slots[i].e = NULL;
}

static void lru_unlink(shard *s, entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        s->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        s->tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push_front(shard *s, entry *e)
{
    e->prev = NULL;
    e->next = s->head;
    if (s->head)
        s->head->prev = e;
    s->head = e;
    if (!s->tail)
        s->tail = e;
}

static void remove_entry(shard *s, entry *e)
{
    slot_clear(s, slot_of(s, e));
    lru_unlink(s, e);
    s->bytes -= e->cost;
    s->count--;
    entry_free(e);
}

static int grow(shard *s)
{
    size_t n = s->n_slots ? s->n_slots * 2 : 64;
    slot *slots = calloc(n, sizeof *slots);
    if (!slots)
        return -1;
    for (size_t i = 0; i < s->n_slots; i++)
        if (s->slots[i].e)
            slot_put(slots, n, s->slots[i].hash, s->slots[i].e);
    free(s->slots);
    s->slots = slots;
    s->n_slots = n;
    return 0;
}

char *sl_cache_mem_get(sl_cache_mem *m, const char *key, int64_t now_ms, size_t *len)
{
    uint64_t h = sl_hash64(key, strlen(key));
    shard *s = shard_of(m, h);
    char *out = NULL;
    pthread_mutex_lock(&s->lock);
    long i = find(s, h, key);
    entry *e = i >= 0 ? s->slots[i].e : NULL;
    if (e && e->expires_ms && e->expires_ms <= now_ms) {
        remove_entry(s, e);
        e = NULL;
    }
    if (e) {
        lru_unlink(s, e);
        lru_push_front(s, e);
        if ((out = malloc(e->len + 1))) {
            memcpy(out, e->val, e->len);
            out[e->len] = '\0';
            *len = e->len;
        }
    }
    pthread_mutex_unlock(&s->lock);
    return out;
}

/* Into its shard: e (its key, value, cost and hash set) replaces the entry of its key, after
 * the least recently used ones make room. 0, or -1 (e not taken). */
static int insert(sl_cache_mem *m, entry *e, int64_t ttl_ms, int64_t now_ms)
{
    shard *s = shard_of(m, e->hash);
    if (e->cost > s->cap)
        return -1;
    e->expires_ms = ttl_ms > 0 ? now_ms + ttl_ms : 0;
    int rc = -1;
    pthread_mutex_lock(&s->lock);
    long old = find(s, e->hash, e->key);
    if (old >= 0)
        remove_entry(s, s->slots[old].e);
    while (s->bytes + e->cost > s->cap && s->tail)
        remove_entry(s, s->tail);
    if ((s->count + 1) * 4 <= s->n_slots * 3 || grow(s) == 0) {
        slot_put(s->slots, s->n_slots, e->hash, e);
        lru_push_front(s, e);
        s->bytes += e->cost;
        s->count++;
        rc = 0;
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

/* A new entry for key with room for extra bytes after it; its value is the caller's to set. */
static entry *entry_new(const char *key, size_t key_len, uint64_t h, size_t extra)
{
    entry *e = malloc(sizeof(entry) + key_len + 1 + extra);
    if (!e)
        return NULL;
    memcpy(e->key, key, key_len + 1);
    e->hash = h;
    e->cost = sizeof(entry) + key_len + 1 + extra;
    return e;
}

int sl_cache_mem_put(sl_cache_mem *m, const char *key, const char *val, size_t len, int64_t ttl_ms, int64_t now_ms)
{
    size_t key_len = strlen(key);
    uint64_t h = sl_hash64(key, key_len);
    if (sizeof(entry) + key_len + 1 + len > shard_of(m, h)->cap) /* before allocating it */
        return -1;
    entry *e = entry_new(key, key_len, h, len);
    if (!e)
        return -1;
    e->val = e->key + key_len + 1;
    e->own_val = false;
    memcpy(e->val, val, len);
    e->len = len;
    if (insert(m, e, ttl_ms, now_ms) < 0) {
        entry_free(e);
        return -1;
    }
    return 0;
}

int sl_cache_mem_put_owned(sl_cache_mem *m, const char *key, char *val, size_t len, size_t cap, int64_t ttl_ms,
                           int64_t now_ms)
{
    size_t key_len = strlen(key);
    entry *e = entry_new(key, key_len, sl_hash64(key, key_len), 0);
    if (!e) {
        free(val);
        return -1;
    }
    e->val = val;
    e->own_val = true;
    e->len = len;
    e->cost += cap > len ? cap : len;
    if (insert(m, e, ttl_ms, now_ms) < 0) {
        entry_free(e);
        return -1;
    }
    return 0;
}

size_t sl_cache_mem_bytes(sl_cache_mem *m)
{
    size_t n = 0;
    for (unsigned i = 0; i < m->n_shards; i++) {
        pthread_mutex_lock(&m->shards[i].lock);
        n += m->shards[i].bytes;
        pthread_mutex_unlock(&m->shards[i].lock);
    }
    return n;
}

size_t sl_cache_mem_count(sl_cache_mem *m)
{
    size_t n = 0;
    for (unsigned i = 0; i < m->n_shards; i++) {
        pthread_mutex_lock(&m->shards[i].lock);
        n += m->shards[i].count;
        pthread_mutex_unlock(&m->shards[i].lock);
    }
    return n;
}
