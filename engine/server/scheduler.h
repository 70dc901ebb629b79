/* The scheduler thread: continuous batching. Each iteration packs every running
 * sequence's decode step plus chunks of admitted prompts (up to a token budget) into one
 * backend forward call, samples a token for each sequence whose prompt is done, turns it
 * into text (detokenise, stop strings) and posts the text to the HTTP thread, which is
 * woken through an eventfd. Finished and cancelled sequences free their slot at once and
 * waiting ones join at the next iteration. When the backend's paged KV cache runs out of
 * blocks (SL_BACKEND_NO_BLOCKS), the youngest running sequence is preempted: its cache is
 * released and it waits at the head of the queue, to be recomputed (prompt + the tokens it
 * generated) when it is admitted again; no new sequence is admitted until one finishes.
 * Where the backend can pick greedy tokens itself (forward_argmax) and every sequence
 * sampled in a step is greedy without penalties, only the ids come back from it.
 * With prefix_reuse, a slot whose sequence ended keeps its KV cache (see prefix.h): a new
 * prompt that starts with the same tokens takes that slot and prefills only the rest;
 * kept caches are released least recently used first, when a slot is needed for another
 * prompt or when the backend runs out of blocks (before any running sequence is
 * preempted). */
#ifndef SL_SCHED_H
#define SL_SCHED_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "backend.h"
#include "err.h"
#include "sampling.h"
#include "stop.h"
#include "tokenizer.h"

typedef struct sl_sched sl_sched;

typedef struct sl_sched_opts {
    int max_batch;          /* running sequences at most (= backend slots) */
    int max_len;            /* prompt + completion tokens at most */
    int step_tokens;        /* token budget of one forward call (decodes + prefill chunks) */
    const int32_t *eos;     /* ids that end a sequence */
    int n_eos;
    bool prefix_reuse;      /* keep ended sequences' caches for prompts that share a prefix */
    int prefix_min;         /* the shortest prefix reused (0: 16 tokens, one KV block) */
} sl_sched_opts;

/* One generation. The HTTP thread fills the first fields, submits it, and owns it again
 * (and frees it with sl_seq_free) after the news that says done. */
typedef struct sl_seq {
    int32_t *prompt;        /* owned */
    int n_prompt;
    int max_tokens;         /* completion tokens at most */
    sl_sampling_params sampling;
    sl_stop stop;
    void *user;             /* the HTTP thread's exchange */
    atomic_bool cancelled;

    /* scheduler thread only */
    struct sl_seq *next;    /* queue / running list */
    int slot;
    int n_prefilled;
    int n_fill;             /* tokens to prefill before decoding: the prompt, or after a
                               preemption the prompt and every generated token */
    int32_t *refill;        /* prompt + generated tokens, while a preempted one refills */
    int32_t *gen;           /* generated ids (room for max_len) */
    bool started;
    int n_gen;
    int32_t last;
    sl_rng rng;
    int32_t *counts;        /* per-id generated counts, only when penalties are on */
    sl_detok detok;

    /* shared with the HTTP thread under the scheduler's lock */
    char *out;              /* text not yet taken */
    size_t n_out, cap_out;
    int posted_gen;         /* completion tokens so far */
    int n_cached;           /* prompt tokens whose KV was reused, not computed */
    bool done;
    const char *finish;     /* "stop", "length", "error", "cancelled" */
    bool in_ready;
} sl_seq;

/* Takes ownership of prompt (malloc'd) and copies the stop strings. Caller frees with
 * sl_seq_free. NULL when out of memory. */
sl_seq *sl_seq_new(int32_t *prompt, int n_prompt, int max_tokens, const sl_sampling_params *sp,
                   const char *const *stops, int n_stops, void *user);
void sl_seq_free(sl_seq *seq);

/* Starts the thread. tok must outlive the scheduler. Caller frees with sl_sched_free. */
sl_sched *sl_sched_create(sl_backend *backend, const sl_tokenizer *tok,
                          const sl_sched_opts *opts, sl_err *err);
/* Stops the thread; sequences still inside are dropped (their memory freed). */
void sl_sched_free(sl_sched *s);

void sl_sched_submit(sl_sched *s, sl_seq *seq);
/* The client went away: the sequence ends at the next iteration (news with done). */
void sl_sched_cancel(sl_sched *s, sl_seq *seq);

/* Readable when news is waiting; then call sl_sched_drain. */
int sl_sched_fd(const sl_sched *s);

/* What a sequence produced since the last drain. text is valid during the callback. */
typedef struct sl_news {
    const char *text;
    size_t len;
    int n_gen;
    int n_cached;           /* prompt tokens reused from a kept prefix */
    bool done;
    const char *finish;
} sl_news;
typedef void (*sl_news_cb)(sl_seq *seq, const sl_news *news, void *arg);
void sl_sched_drain(sl_sched *s, sl_news_cb cb, void *arg);

typedef struct sl_sched_stats {
    int queued, running, max_batch;
    uint64_t prompt_tokens, generated_tokens, requests_done, preemptions;
    uint64_t prompt_tokens_cached;  /* of prompt_tokens, reused from a kept prefix */
    double tokens_per_s;          /* generated tokens per second over the last seconds */
    long long kv_tokens, kv_capacity;
} sl_sched_stats;
void sl_sched_stats_get(sl_sched *s, sl_sched_stats *st);

#endif
