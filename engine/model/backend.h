/* The compute backend interface: the scheduler hands a batch of sequence steps (a
 * prefill chunk or one decode token each) and gets the logits of each step's last token.
 * cpu/ is the reference; cuda/ (later) implements the same ops. */
#ifndef SL_BACKEND_H
#define SL_BACKEND_H

#include <stdint.h>

#include "err.h"
#include "model.h"

typedef struct sl_seq_step {
    int slot;               /* sequence slot, 0 .. max_seqs-1, owns its KV cache */
    const int32_t *tokens;  /* new tokens of this step */
    int n_tokens;
    int pos;                /* position of tokens[0]; KV of 0..pos-1 is already cached */
} sl_seq_step;

typedef struct sl_backend sl_backend;

typedef struct sl_backend_ops {
    const char *name;
    /* logits: n_steps x vocab_size floats, the logits after each step's last token.
     * Refused (-1, err says which step and why): a slot outside 0..max_seqs-1, two steps
     * on one slot, n_tokens < 1, pos beyond the slot's cached length (pos below it
     * rewinds: later cache entries are overwritten), pos + n_tokens > max_len, a token id
     * outside the vocabulary. After success the slot's cached length is pos + n_tokens.
     * One caller at a time (the scheduler thread); n_steps 0 does nothing. */
    int (*forward)(sl_backend *b, const sl_seq_step *steps, int n_steps, float *logits, sl_err *err);
    /* Forget a slot's KV cache (the sequence ended or was preempted): cached length 0. */
    void (*release)(sl_backend *b, int slot);
    void (*destroy)(sl_backend *b);
} sl_backend_ops;

struct sl_backend {
    const sl_backend_ops *ops;
    const sl_model *model;
    int max_seqs;
    int max_len;
};

typedef struct sl_backend_opts {
    int max_seqs;     /* concurrent sequences */
    int max_len;      /* max tokens per sequence (prompt + completion) */
    int threads;      /* CPU threads; 0 = number of cores */
} sl_backend_opts;

/* The reference backend: float32 math, weights widened from the mmap row by row, a KV
 * cache of max_seqs x max_len tokens (contiguous per slot). Destroy with ops->destroy. */
sl_backend *sl_backend_cpu_create(const sl_model *m, const sl_backend_opts *opts, sl_err *err);

#endif
