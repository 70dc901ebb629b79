/* The cache plugin's rooms, shared by its files only: the key (canonical JSON + SHA-256),
 * the memory backend (sharded LRU by bytes with TTL), the Redis backend (hiredis async on
 * the worker's loop), and replay (a stored stream or body turned into what the client
 * asked for). Everything here is prefixed sl_cache_. */
#ifndef SL_CACHE_H
#define SL_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "err.h"
#include "plugin.h"

struct event_base;

/* ---- key (cache_key.c) ---- */

/* The canonical text of v: object keys sorted, no whitespace, numbers normalised (1, 1.0
 * and 1e0 read the same; -0 is 0). NULL on allocation failure; caller frees. */
char *sl_cache_canonical(const json_t *v);

/* Request fields that do not change the output and so stay out of the key. */
bool sl_cache_field_ignored(const char *name);

/* The key of a request: SHA-256 (hex, 64 chars + NUL into hex) of the canonical JSON of the
 * endpoint, the client-facing model, the consumer (NULL: global scope) and every field of
 * body but the ignored ones. 0, or -1 with err filled. */
int sl_cache_key(const json_t *body, const char *model, sl_endpoint ep, const char *consumer, char hex[65],
                 sl_err *err);
/* The same key, of a request read into a view (gateway/json_view.h; its top-level object). */
struct sl_jview;
int sl_cache_key_view(const struct sl_jview *v, const char *model, sl_endpoint ep, const char *consumer, char hex[65],
                      sl_err *err);

/* ---- memory backend (cache_memory.c) ---- */

typedef struct sl_cache_mem sl_cache_mem;

/* A cache of at most max_bytes (entries, keys and bookkeeping counted), split in n_shards
 * (a power of two; 0 picks one from max_bytes), each with its own lock and LRU list.
 * NULL on allocation failure; free with sl_cache_mem_free. */
sl_cache_mem *sl_cache_mem_new(size_t max_bytes, unsigned n_shards);
void sl_cache_mem_free(sl_cache_mem *m);
/* The largest value one entry may hold. */
size_t sl_cache_mem_max_entry(const sl_cache_mem *m);
/* Copy of the value under key, unless absent or expired at now_ms (monotonic). Marks it
 * recently used. Returns the copy (caller frees) and its length in *len, or NULL. */
char *sl_cache_mem_get(sl_cache_mem *m, const char *key, int64_t now_ms, size_t *len);
/* Store a copy of val for ttl_ms (0 = until evicted), evicting least recently used entries
 * of the shard until it fits. 0, or -1 when it can never fit or memory ran out. */
int sl_cache_mem_put(sl_cache_mem *m, const char *key, const char *val, size_t len, int64_t ttl_ms,
                     int64_t now_ms);
/* The same, taking val (a malloc'd block of cap bytes, its value len of them) instead of a
 * copy: a long streamed answer is not copied once more. val is freed on failure too. */
int sl_cache_mem_put_owned(sl_cache_mem *m, const char *key, char *val, size_t len, size_t cap, int64_t ttl_ms,
                           int64_t now_ms);
/* Bytes and entries held now (all shards). */
size_t sl_cache_mem_bytes(sl_cache_mem *m);
size_t sl_cache_mem_count(sl_cache_mem *m);
int64_t sl_cache_now_ms(void);

/* The memory cache of a parsed cache plugin config (NULL with backend redis); borrowed. A
 * reloaded config with the same max_bytes gets the same one, entries and all. */
sl_cache_mem *sl_cache_conf_mem(const void *plugin_conf);

/* ---- Redis backend (cache_redis.c) ---- */

/* val NULL: absent, or Redis failed (a miss either way). val is valid during the call. */
typedef void (*sl_cache_redis_cb)(void *arg, const char *val, size_t len);

/* GET key on the connection of this base's thread to url (made on first use). 0: cb will
 * be called later, from the loop, exactly once; -1: it will not (treat as a miss now). */
int sl_cache_redis_get(struct event_base *base, const char *url, const char *key, sl_cache_redis_cb cb,
                       void *arg);
/* SET key val PX ttl_ms (no PX when 0), fire and forget. */
void sl_cache_redis_set(struct event_base *base, const char *url, const char *key, const char *val, size_t len,
                        int64_t ttl_ms);

/* ---- replay (replay.c) ---- */

/* A streamed response's chunks (JSON array) assembled into one chat.completion (chat) or
 * text_completion (completions) body: content, reasoning_content, tool calls,
 * finish_reason, usage. NULL if chunks is not an array; caller owns the result. */
json_t *sl_cache_assemble(const json_t *chunks, sl_endpoint ep);
/* A complete body turned into the chunk sequence a streaming client expects: per choice a
 * role chunk, reasoning and content chunks, tool calls, a finish chunk; then a usage chunk
 * when include_usage and the body has usage. NULL if body is not an object; caller owns. */
json_t *sl_cache_to_chunks(const json_t *body, sl_endpoint ep, bool include_usage);
/* The chunk that only carries usage (choices empty) — dropped for clients that did not ask. */
bool sl_cache_is_usage_chunk(const json_t *chunk);

#endif
