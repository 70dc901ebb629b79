/* The metrics of the engine workers the gateway runs (type: engine upstreams). They listen
 * on unix sockets no Prometheus can reach, so the gateway's /metrics carries theirs: queue
 * length, running sequences, KV-cache use, tokens per second. Each worker's sluice_engine_*
 * families are fetched when /metrics is read, merged family by family, and every sample
 * gets the labels upstream and worker (its index: bounded by the config). */
#ifndef SL_ENGINE_SCRAPE_H
#define SL_ENGINE_SCRAPE_H

#include "config.h"
#include "pool.h"

struct event_base;

/* text: the merged families in the Prometheus text format, or NULL when no worker
 * answered; the callee frees it. */
typedef void (*sl_engine_scrape_done)(void *arg, char *text);

/* Main thread. Asks every ready (or draining) worker of cfg's engine upstreams for /metrics and calls
 * done once: when all have answered, or after timeout_ms with what came. With no ready
 * worker, done is called before this returns. */
void sl_engine_scrape(struct event_base *base, sl_pool *pool, const sl_config *cfg, int timeout_ms,
                      sl_engine_scrape_done done, void *arg);

/* The merge on its own (for tests): bodies[i] is worker i's exposition, labels[i] the
 * labels to add (`upstream="u",worker="0"`). Returns the merged text (caller frees), or
 * NULL when out of memory. */
char *sl_engine_scrape_merge(const char *const *bodies, const char *const *labels, size_t n);

#endif
