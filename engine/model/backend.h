/* The compute backend interface: the scheduler hands a batch of sequence steps (a
 * prefill chunk or one decode token each) and gets the logits of each step's last token.
 * cpu/ is the reference; cuda/ (later) implements the same ops. */
#ifndef SL_BACKEND_H
#define SL_BACKEND_H

#include <stdint.h>

#include "err.h"
#include "model.h"
#include "sampling.h"

typedef struct sl_seq_step {
    int slot;               /* sequence slot, 0 .. max_seqs-1, owns its KV cache */
    const int32_t *tokens;  /* new tokens of this step */
    int n_tokens;
    int pos;                /* position of tokens[0]; KV of 0..pos-1 is already cached */
} sl_seq_step;

typedef struct sl_backend sl_backend;

/* How forward_sample picks one step's token: params NULL means greedy; rng gets one draw
 * where sl_sample would draw (not greedy); gen: the ids generated so far in the sequence
 * (n_gen of them, repeats counted) for the presence/frequency penalties. */
typedef struct sl_sample_req {
    const sl_sampling_params *params;
    sl_rng *rng;
    const int32_t *gen;
    int n_gen;
} sl_sample_req;

/* What forward returns when the paged KV cache has too few free blocks for the batch.
 * Nothing was changed: the caller may release a sequence (preemption) and try again. */
#define SL_BACKEND_NO_BLOCKS (-2)

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
    /* Optional (NULL where the backend has none): forward, then greedy decoding where the
     * logits are: ids[i] = the argmax of step i's logits over ids 0..limit-1 (lowest id
     * on ties), and only the ids come back. Same refusals as forward. */
    int (*forward_argmax)(sl_backend *b, const sl_seq_step *steps, int n_steps, int limit,
                          int32_t *ids, sl_err *err);
    /* Optional: forward, then sl_sample where the logits are: ids[i] = the token drawn for
     * step i with req[i] from its logits over ids 0..limit-1 (same semantics; the same seed,
     * params and inputs give the same ids on the same backend; ties at a top-k or top-p
     * boundary are kept lowest id first). The rngs advance only when the forward runs (not
     * on a refusal or SL_BACKEND_NO_BLOCKS). Same refusals as forward. */
    int (*forward_sample)(sl_backend *b, const sl_seq_step *steps, int n_steps, int limit,
                          const sl_sample_req *req, int32_t *ids, sl_err *err);
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
    /* CUDA: the share of the GPU memory left free after the weights and activations that
     * the paged KV cache takes (0: 0.9), and the tokens one forward call holds at most
     * before its buffers grow (0: 2048 + max_seqs). */
    float kv_cache_fraction;
    int max_step_tokens;
} sl_backend_opts;

/* The checks every backend's forward makes first (the refusals listed above); cached[slot]
 * is the slot's cached length. *total: the steps' tokens. */
int sl_backend_check_steps(const sl_backend *b, const int *cached, const sl_seq_step *steps, int n_steps,
                           int *total, sl_err *err);

/* f[0 .. head_dim/2): RoPE inverse frequencies, rope_theta and Llama 3 rope_scaling included;
 * the same table for every backend. */
void sl_rope_inv_freq(const sl_model_config *c, float *f);

/* The reference backend: float32 math, weights widened from the mmap row by row, a KV
 * cache of max_seqs x max_len tokens (contiguous per slot). Destroy with ops->destroy. */
sl_backend *sl_backend_cpu_create(const sl_model *m, const sl_backend_opts *opts, sl_err *err);

/* The CUDA backend (engine/cuda, only in builds with SL_HAVE_CUDA): bf16 weights on GPU 0
 * of the visible ones, a paged KV cache whose blocks are shared by every slot; forward
 * returns SL_BACKEND_NO_BLOCKS when they run out. Destroy with ops->destroy. */
sl_backend *sl_backend_cuda_create(const sl_model *m, const sl_backend_opts *opts, sl_err *err);
/* Whether a CUDA GPU can be used (for --backend auto). */
int sl_backend_cuda_available(void);

#endif
