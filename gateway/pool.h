/* The engine pool: for every `type: engine` upstream the gateway runs `workers` ×
 * sluice-engine processes, each on its own unix socket in a private runtime folder and
 * pinned to its GPU set (CUDA_VISIBLE_DEVICES). The main thread starts them, checks
 * /health before routing to one, restarts a crashed one with exponential backoff, and at
 * shutdown stops them after the gateway's own requests have drained. A worker dies with the
 * gateway (PR_SET_PDEATHSIG), so no engine outlives it. Worker threads pick the ready
 * engine with the fewest requests outstanding, or a conversation's own one (prefix
 * affinity, see sl_pool_pick). On reload the pool follows the new config:
 * a process whose worker went away is drained (no new requests; stopped once its last one
 * is done); one whose launch settings changed keeps serving until its replacement answers
 * /health, then drains. */
#ifndef SL_POOL_H
#define SL_POOL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <jansson.h>

#include "config.h"
#include "err.h"

struct event_base;

typedef enum sl_engine_state {
    SL_ENGINE_STARTING,     /* spawned, /health not yet 200 */
    SL_ENGINE_READY,
    SL_ENGINE_BACKOFF,      /* exited; restarts after a delay */
    SL_ENGINE_STOPPING,
    SL_ENGINE_DRAINING,     /* retired by a reload: finishes what it has, then stops */
    SL_ENGINE_FREE,         /* an unused slot */
} sl_engine_state;

typedef struct sl_engine_proc {
    char upstream[64];              /* the upstream's name; any thread reads it */
    const sl_upstream_conf *up;     /* main thread only; points into cfg */
    struct sl_config *cfg;          /* held while the slot is used */
    int index;
    char socket_path[108];
    atomic_int state;
    atomic_int outstanding;         /* requests in flight to it, from every worker thread */
    pid_t pid;                      /* main thread only */
    int restarts;
    long long next_start_ms;
    long long started_ms;
    long long drain_since_ms;
    bool term_sent;
    bool superseded;                /* a replacement is starting; retired once it is ready */
    char log_path[256];
} sl_engine_proc;

typedef struct sl_pool sl_pool;

/* Starts every engine process of cfg (none: an empty pool). Returns NULL with err when
 * the runtime folder or the engine binary cannot be found. */
sl_pool *sl_pool_start(const sl_config *cfg, struct event_base *main_base, sl_err *err);
/* Main thread: follow a new config (see above). Processes whose settings did not change
 * keep running and serving. */
void sl_pool_apply(sl_pool *p, const sl_config *cfg);
/* Stop every engine (SIGTERM, then SIGKILL after grace_ms) and remove the runtime folder. */
void sl_pool_stop(sl_pool *p, long long grace_ms);
void sl_pool_free(sl_pool *p);

/* Any thread: a ready engine of upstream up (its count taken up), never avoid (may be
 * NULL), or NULL when none is ready. Without an affinity key (0) or with the upstream's
 * prefix_affinity at 0: the one with the fewest requests outstanding. With a key: the key's
 * own worker (rendezvous hashing over worker indexes) among those with at most
 * prefix_affinity more outstanding than the fewest, so that a conversation's later turns
 * find its earlier ones in that engine's prefix cache. Give it back with sl_pool_release. */
sl_engine_proc *sl_pool_pick(sl_pool *p, const sl_upstream_conf *up, const sl_engine_proc *avoid, uint64_t affinity);
void sl_pool_release(sl_engine_proc *e);

/* Array of {index, pid, state, outstanding, restarts, socket} for upstream name (free
 * slots left out). */
json_t *sl_pool_json(sl_pool *p, const char *upstream);

const char *sl_engine_state_name(sl_engine_state s);

#endif
