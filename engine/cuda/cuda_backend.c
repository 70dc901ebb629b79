/* The CUDA backend: bf16 weights uploaded once, f32 residual stream, cuBLAS GEMMs with f32
 * accumulation for every linear (all tokens of the batch in one GEMM), own kernels for the
 * rest (kernels.cu); decode batches of 1-2 tokens take the fused GEMVs instead (norm,
 * RoPE/KV write, SwiGLU and residual adds inside them). A paged KV cache: SL_KV_BLOCK-token
 * blocks from one free pool, a block table per slot. Sampling on the GPU (forward_sample). */
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "cuda_backend.h"
#include "kernels.h"

typedef struct cu_layer {
    uint16_t *in_norm, *post_norm, *qkv_w, *qkv_b, *o_w, *gu_w, *down_w;
} cu_layer;

typedef struct cuda_backend {
    sl_backend base;
    cudaStream_t stream;
    cublasHandle_t blas;
    int H, Q, KV, I, V, L, hd;

    cu_layer *layers;
    uint16_t *embed, *lm_head, *final_norm;
    float *inv_freq;

    /* paged KV cache: [layer][block][SL_KV_BLOCK][kv_heads][head_dim] */
    uint16_t *k_cache, *v_cache;
    int n_blocks, max_blocks;       /* pool size; blocks per slot at most */
    int32_t *bt_host, *bt_dev;      /* [max_seqs][max_blocks] */
    int *slot_blocks, *cached;      /* per slot */
    int *free_blocks, n_free;

    /* activations for cap_T tokens */
    int cap_T;
    float *x, *q, *logits;
    uint16_t *xn, *qkv, *att, *y, *gu, *act;
    int32_t *meta_dev, *meta_host, *ids_dev;

    /* decode steps (one token per sequence) replay a CUDA graph per batch size and output
     * kind (logits, ids): [2][max_seqs + 1]; captured on first use, dropped when the
     * activation buffers move */
    bool use_graphs;
    bool use_flash;         /* tensor-core prefill attention (SL_CUDA_FLASH=0: off) */
    const int32_t *tile_t0, *tile_n;   /* this call's query tiles (device), for it */
    int n_tiles;
    bool use_gemv;          /* own GEMV kernel for 1-2 token batches (SL_CUDA_GEMV=0: off) */
    int fused_max;          /* decode batches up to this many take the fused GEMV path
                             * (SL_CUDA_FUSED=N, 0: off; default 2 up to hidden 2048, else 0) */
    bool fused;             /* this call takes it */
    bool use_pdl;           /* its GEMVs launched as programmatic dependents (SL_CUDA_PDL=0: off) */
    int att_min;            /* decode attention: keys a block at least (SL_CUDA_ATT_MIN) */
    int ks[5];              /* fused GEMVs qkv, o, gate/up, down, lm_head: warps splitting K a
                             * unit (SL_CUDA_KS=q,o,gu,down,head; 0: the kernel's rule) */
    int skip;               /* measurement only (SL_CUDA_SKIP): fused-path launches left out,
                             * bits qkv 1, attention 2, o_proj 4, gate/up 8, down 16 */
    /* forward_sample: per-row parameters and penalty pairs (pinned host, device), the
     * host's count of each id while it dedupes a sequence's penalties, probabilities */
    sl_cu_sample_row *smp_host, *smp_dev;
    int32_t *pen_ids_host, *pen_ids_dev;
    float *pen_vals_host, *pen_vals_dev;
    int pen_cap;
    int *pen_count;
    float *prob;
    float *am_v;            /* argmax over several blocks a row: partials, counters */
    int *am_i, *am_count;
    unsigned long long *hk; /* fused path: the LM head's argmax keys (SL_CU_FGEMV_MAX_T) and
                             * counter, zeroed */
    int *hk_count;
    float *att_part;        /* flash-decoding partials and counters (SL_CUDA_SPLIT=0: none) */
    int *att_count;
    cudaGraphExec_t *graphs;
    int *graph_limit;
    void *blas_ws;

    /* SL_CUDA_PROFILE=1: time per stage, [prefill-or-mixed, decode] */
    bool profile, prof_on;
    cudaEvent_t prof_ev[16 * 1024];
    int prof_stage[16 * 1024], prof_n;
    double prof_ms[2][16];
    long prof_calls[2];
} cuda_backend;

#define CK(call, what)                                                                     \
    do {                                                                                   \
        cudaError_t e_ = (call);                                                           \
        if (e_ != cudaSuccess) {                                                           \
            sl_err_set(err, "cuda backend: %s: %s", (what), cudaGetErrorString(e_));       \
            goto fail;                                                                     \
        }                                                                                  \
    } while (0)

#define CKB(call, what)                                                                    \
    do {                                                                                   \
        cublasStatus_t s_ = (call);                                                        \
        if (s_ != CUBLAS_STATUS_SUCCESS) {                                                 \
            sl_err_set(err, "cuda backend: %s: %s", (what), cublasGetStatusString(s_));    \
            goto fail;                                                                     \
        }                                                                                  \
    } while (0)

#define CKK(call, what)                                                                    \
    do {                                                                                   \
        if ((call) < 0) {                                                                  \
            sl_err_set(err, "cuda backend: kernel %s: %s", (what),                         \
                       cudaGetErrorString(cudaGetLastError()));                            \
            goto fail;                                                                     \
        }                                                                                  \
    } while (0)

int sl_backend_cuda_available(void)
{
    int n = 0;
    return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

/* ---- weights ---- */

static uint16_t f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40);    /* NaN stays NaN */
    u += 0x7fffu + ((u >> 16) & 1u);            /* round to nearest even */
    return (uint16_t)(u >> 16);
}

/* Copies tensor t as bf16 to dst (device), at element offset at; f32/f16 converted here. */
static int upload(uint16_t *dst, size_t at, const sl_tensor *t, sl_err *err)
{
    size_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= (size_t)t->shape[i];
    uint16_t *tmp = NULL;
    const void *src = t->data;
    if (t->dtype != SL_DTYPE_BF16) {
        enum { CHUNK = 1 << 20 };
        float *f = malloc(CHUNK * sizeof *f);
        tmp = malloc(n * sizeof *tmp);
        if (!f || !tmp) {
            free(f);
            sl_err_set(err, "cuda backend: out of host memory converting %s", t->name);
            goto fail;
        }
        for (size_t o = 0; o < n; o += CHUNK) {
            size_t c = n - o < CHUNK ? n - o : CHUNK;
            sl_tensor_to_f32(t, o, c, f);
            for (size_t i = 0; i < c; i++)
                tmp[o + i] = f32_to_bf16(f[i]);
        }
        free(f);
        src = tmp;
    }
    CK(cudaMemcpy(dst + at, src, n * 2, cudaMemcpyHostToDevice), t->name);
    free(tmp);
    return 0;
fail:
    free(tmp);
    return -1;
}

static uint16_t *dalloc16(size_t n, sl_err *err)
{
    void *p = NULL;
    if (cudaMalloc(&p, n * 2) != cudaSuccess) {
        sl_err_set(err, "cuda backend: out of GPU memory for the weights (%zu MiB more)",
                   n * 2 >> 20);
        return NULL;
    }
    return p;
}

static int upload_weights(cuda_backend *cb, sl_err *err)
{
    const sl_model *m = cb->base.model;
    size_t H = (size_t)cb->H, QKV = (size_t)(cb->Q + 2 * cb->KV), I = (size_t)cb->I;
    if (!(cb->embed = dalloc16((size_t)cb->V * H, err)) ||
        upload(cb->embed, 0, m->embed_tokens, err) < 0)
        return -1;
    if (m->lm_head == m->embed_tokens || m->cfg.tie_word_embeddings) {
        cb->lm_head = cb->embed;
    } else if (!(cb->lm_head = dalloc16((size_t)cb->V * H, err)) ||
               upload(cb->lm_head, 0, m->lm_head, err) < 0) {
        return -1;
    }
    if (!(cb->final_norm = dalloc16(H, err)) || upload(cb->final_norm, 0, m->final_norm, err) < 0)
        return -1;
    for (int l = 0; l < cb->L; l++) {
        const sl_layer_weights *w = &m->layers[l];
        cu_layer *d = &cb->layers[l];
        if (!(d->in_norm = dalloc16(H, err)) || upload(d->in_norm, 0, w->input_norm, err) < 0 ||
            !(d->post_norm = dalloc16(H, err)) ||
            upload(d->post_norm, 0, w->post_attn_norm, err) < 0)
            return -1;
        if (!(d->qkv_w = dalloc16(QKV * H, err)) || upload(d->qkv_w, 0, w->q_proj, err) < 0 ||
            upload(d->qkv_w, (size_t)cb->Q * H, w->k_proj, err) < 0 ||
            upload(d->qkv_w, (size_t)(cb->Q + cb->KV) * H, w->v_proj, err) < 0)
            return -1;
        if (w->q_bias && (!(d->qkv_b = dalloc16(QKV, err)) || upload(d->qkv_b, 0, w->q_bias, err) < 0 ||
                          upload(d->qkv_b, (size_t)cb->Q, w->k_bias, err) < 0 ||
                          upload(d->qkv_b, (size_t)(cb->Q + cb->KV), w->v_bias, err) < 0))
            return -1;
        if (!(d->o_w = dalloc16(H * (size_t)cb->Q, err)) || upload(d->o_w, 0, w->o_proj, err) < 0)
            return -1;
        if (!(d->gu_w = dalloc16(2 * I * H, err)) || upload(d->gu_w, 0, w->gate_proj, err) < 0 ||
            upload(d->gu_w, I * H, w->up_proj, err) < 0)
            return -1;
        if (!(d->down_w = dalloc16(H * I, err)) || upload(d->down_w, 0, w->down_proj, err) < 0)
            return -1;
    }
    return 0;
}

/* Same frequencies as the CPU reference, Llama 3 scaling included. */
static int upload_inv_freq(cuda_backend *cb, sl_err *err)
{
    const sl_model_config *c = &cb->base.model->cfg;
    int hd = c->head_dim;
    float *f = malloc((size_t)hd / 2 * sizeof *f);
    if (!f) {
        sl_err_set(err, "out of memory");
        return -1;
    }
    sl_rope_inv_freq(c, f);
    CK(cudaMalloc((void **)&cb->inv_freq, (size_t)hd / 2 * sizeof *f), "inv_freq");
    CK(cudaMemcpy(cb->inv_freq, f, (size_t)hd / 2 * sizeof *f, cudaMemcpyHostToDevice), "inv_freq");
    free(f);
    return 0;
fail:
    free(f);
    return -1;
}

/* ---- activations ---- */

static void drop_graphs(cuda_backend *cb)
{
    if (!cb->graphs)
        return;
    for (int i = 0; i < 2 * (cb->base.max_seqs + 1); i++)
        if (cb->graphs[i]) {
            cudaGraphExecDestroy(cb->graphs[i]);
            cb->graphs[i] = NULL;
        }
}

static void free_acts(cuda_backend *cb)
{
    drop_graphs(cb);
    cudaFree(cb->x);
    cudaFree(cb->qkv);
    cudaFree(cb->q);
    cudaFree(cb->gu);
    cudaFree(cb->y);
    cudaFree(cb->xn);
    cudaFree(cb->att);
    cudaFree(cb->act);
    cudaFree(cb->meta_dev);
    cudaFreeHost(cb->meta_host);
    cb->x = cb->q = NULL;
    cb->xn = cb->qkv = cb->att = cb->y = cb->gu = cb->act = NULL;
    cb->meta_dev = cb->meta_host = NULL;
    cb->cap_T = 0;
}

/* Buffers for T tokens in one forward call. */
static int ensure_acts(cuda_backend *cb, int T, sl_err *err)
{
    if (T <= cb->cap_T)
        return 0;
    free_acts(cb);
    size_t t = (size_t)T, S = (size_t)cb->base.max_seqs;
    CK(cudaMalloc((void **)&cb->x, t * (size_t)cb->H * 4), "activations");
    CK(cudaMalloc((void **)&cb->qkv, t * (size_t)(cb->Q + 2 * cb->KV) * 2), "activations");
    CK(cudaMalloc((void **)&cb->y, t * (size_t)cb->H * 2), "activations");
    CK(cudaMalloc((void **)&cb->q, t * (size_t)cb->Q * 4), "activations");
    CK(cudaMalloc((void **)&cb->gu, t * 2 * (size_t)cb->I * 2), "activations");
    CK(cudaMalloc((void **)&cb->xn, t * (size_t)cb->H * 2), "activations");
    CK(cudaMalloc((void **)&cb->att, t * (size_t)cb->Q * 2), "activations");
    CK(cudaMalloc((void **)&cb->act, t * (size_t)cb->I * 2), "activations");
    CK(cudaMalloc((void **)&cb->meta_dev, (5 * t + S) * 4), "activations");
    CK(cudaMallocHost((void **)&cb->meta_host, (5 * t + S) * 4), "pinned host memory");
    cb->cap_T = T;
    return 0;
fail:
    free_acts(cb);
    return -1;
}

/* ---- the forward pass ---- */

static int check_steps(cuda_backend *cb, const sl_seq_step *steps, int n_steps, int *total, sl_err *err)
{
    return sl_backend_check_steps(&cb->base, cb->cached, steps, n_steps, total, err);
}

/* Gives every step's slot the blocks its new tokens need, all or nothing. */
static int take_blocks(cuda_backend *cb, const sl_seq_step *steps, int n_steps, sl_err *err)
{
    int need = 0;
    for (int i = 0; i < n_steps; i++) {
        int want = (steps[i].pos + steps[i].n_tokens + SL_KV_BLOCK - 1) / SL_KV_BLOCK;
        if (want > cb->slot_blocks[steps[i].slot])
            need += want - cb->slot_blocks[steps[i].slot];
    }
    if (need > cb->n_free) {
        sl_err_set(err, "the KV cache is out of blocks: this batch needs %d more, %d of %d "
                   "are free (raise --kv-cache-fraction or lower --max-batch)", need,
                   cb->n_free, cb->n_blocks);
        return SL_BACKEND_NO_BLOCKS;
    }
    for (int i = 0; i < n_steps; i++) {
        int slot = steps[i].slot, have = cb->slot_blocks[slot];
        int want = (steps[i].pos + steps[i].n_tokens + SL_KV_BLOCK - 1) / SL_KV_BLOCK;
        if (want <= have)
            continue;
        int32_t *row = cb->bt_host + (size_t)slot * (size_t)cb->max_blocks;
        for (int k = have; k < want; k++)
            row[k] = cb->free_blocks[--cb->n_free];
        cb->slot_blocks[slot] = want;
        CK(cudaMemcpyAsync(cb->bt_dev + (size_t)slot * (size_t)cb->max_blocks + have, row + have,
                           (size_t)(want - have) * 4, cudaMemcpyHostToDevice, cb->stream),
           "block table upload");
    }
    return 0;
fail:
    return -1;
}

/* Y[T][N] = X[T][K] (bf16) . W[N][K]^T (bf16), f32 accumulation; Y bf16, or f32 where
 * y_f32 (the logits). */
static int gemm(cuda_backend *cb, const uint16_t *W, int N, int K, const uint16_t *X, int T,
                void *Y, bool y_f32, sl_err *err)
{
    const float alpha = 1.0f, beta = 0.0f;
    /* measured on H100 at the 1.5B shape: the GEMV beats cuBLAS at 1 token, loses at 8 */
    if (T <= 2 && K % 8 == 0 && cb->use_gemv) {
        CKK(sl_cu_gemv(cb->stream, Y, y_f32, W, X, T, N, K), "gemv");
        return 0;
    }
    CKB(cublasGemmEx(cb->blas, CUBLAS_OP_T, CUBLAS_OP_N, N, T, K, &alpha, W, CUDA_R_16BF, K, X,
                     CUDA_R_16BF, K, &beta, Y, y_f32 ? CUDA_R_32F : CUDA_R_16BF, N,
                     CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT), "GEMM");
    return 0;
fail:
    return -1;
}

/* Per-stage GPU time (SL_CUDA_PROFILE=1; decode graphs off): events between stages. */
enum { P_EMBED, P_NORM, P_QKV, P_ROPE, P_ATTN, P_O, P_GU, P_SWIGLU, P_DOWN, P_HEAD, P_N };
static const char *const stage_name[P_N] = { "embed", "add+rmsnorm", "qkv GEMM", "bias+rope+kv write",
                                             "attention", "o_proj GEMM", "gate_up GEMM", "swiglu",
                                             "down GEMM", "final norm+lm_head+argmax" };

static void mark(cuda_backend *cb, int stage)
{
    if (!cb->prof_on)
        return;
    cudaEvent_t e = cb->prof_ev[cb->prof_n];
    cudaEventRecord(e, cb->stream);
    cb->prof_stage[cb->prof_n++] = stage;
}

static int run_layers(cuda_backend *cb, int T, const sl_cu_tok *tok, sl_err *err)
{
    const sl_model_config *c = &cb->base.model->cfg;
    float eps = c->rms_norm_eps;
    cudaStream_t s = cb->stream;
    for (int l = 0; l < cb->L; l++) {
        const cu_layer *w = &cb->layers[l];
        size_t layer_off = (size_t)l * (size_t)cb->n_blocks * SL_KV_BLOCK * (size_t)cb->KV;
        sl_cu_kv kv = { cb->k_cache + layer_off, cb->v_cache + layer_off, cb->bt_dev,
                        cb->max_blocks, c->num_kv_heads, cb->hd };
        /* the previous layer's down_proj output joins the residual here */
        CKK(sl_cu_add_rmsnorm(s, cb->xn, cb->x, l ? cb->y : NULL, NULL, w->in_norm, T, cb->H, eps),
            "rmsnorm");
        mark(cb, P_NORM);
        if (gemm(cb, w->qkv_w, cb->Q + 2 * cb->KV, cb->H, cb->xn, T, cb->qkv, false, err) < 0)
            goto fail;
        mark(cb, P_QKV);
        CKK(sl_cu_qkv_rope(s, cb->qkv, w->qkv_b, cb->q, tok, &kv, cb->inv_freq, T,
                           c->num_heads), "qkv_rope");
        mark(cb, P_ROPE);
        if (cb->n_tiles > 0)
            CKK(sl_cu_attention_prefill(s, cb->att, cb->q, tok, &kv, c->num_heads, cb->tile_t0,
                                        cb->tile_n, cb->n_tiles), "attention");
        else
            CKK(sl_cu_attention(s, cb->att, cb->q, tok, &kv, T, c->num_heads, cb->att_part,
                                cb->att_count, cb->att_min > 256 ? cb->att_min : 256, 0, 2),
                "attention");
        mark(cb, P_ATTN);
        if (gemm(cb, w->o_w, cb->H, cb->Q, cb->att, T, cb->y, false, err) < 0)
            goto fail;
        mark(cb, P_O);
        CKK(sl_cu_add_rmsnorm(s, cb->xn, cb->x, cb->y, NULL, w->post_norm, T, cb->H, eps), "rmsnorm");
        mark(cb, P_NORM);
        if (gemm(cb, w->gu_w, 2 * cb->I, cb->H, cb->xn, T, cb->gu, false, err) < 0)
            goto fail;
        mark(cb, P_GU);
        CKK(sl_cu_swiglu(s, cb->act, cb->gu, T, cb->I), "swiglu");
        mark(cb, P_SWIGLU);
        if (gemm(cb, w->down_w, cb->H, cb->I, cb->act, T, cb->y, false, err) < 0)
            goto fail;
        mark(cb, P_DOWN);
    }
    return 0;
fail:
    return -1;
}

/* The decode path for a few tokens: five launches a layer, RMSNorm inside the GEMV that
 * follows it, the residual adds in the GEMV epilogues, RoPE and the KV write in the QKV
 * GEMV's, SwiGLU in gate/up's. */
static int run_layers_fused(cuda_backend *cb, int T, const sl_cu_tok *tok, sl_err *err)
{
    const sl_model_config *c = &cb->base.model->cfg;
    cudaStream_t s = cb->stream;
    int half = cb->hd / 2;
    for (int l = 0; l < cb->L; l++) {
        const cu_layer *w = &cb->layers[l];
        size_t layer_off = (size_t)l * (size_t)cb->n_blocks * SL_KV_BLOCK * (size_t)cb->KV;
        sl_cu_kv kv = { cb->k_cache + layer_off, cb->v_cache + layer_off, cb->bt_dev,
                        cb->max_blocks, c->num_kv_heads, cb->hd };
        sl_cu_fgemv qkv = { .W = w->qkv_w, .n_units = (c->num_heads + c->num_kv_heads) * half + cb->KV / 2,
                            .K = cb->H, .xres = cb->x, .norm_w = w->in_norm, .eps = c->rms_norm_eps,
                            .out = SL_FO_QKV, .bias = w->qkv_b, .q_out = cb->q, .tok = *tok,
                            .kv = kv, .inv_freq = cb->inv_freq, .heads = c->num_heads,
                            .pdl = cb->use_pdl, .ks = cb->ks[0] };
        if (!(cb->skip & 1))
            CKK(sl_cu_fgemv_run(s, &qkv, T), "fused qkv");
        mark(cb, P_QKV);
        if (!(cb->skip & 2))
            CKK(sl_cu_attention(s, cb->att, cb->q, tok, &kv, T, c->num_heads, cb->att_part,
                                cb->att_count, cb->att_min, cb->use_pdl, 4), "attention");
        mark(cb, P_ATTN);
        sl_cu_fgemv o = { .W = w->o_w, .n_units = cb->H, .K = cb->Q, .x = cb->att,
                          .out = SL_FO_RESID, .y = cb->x, .ld_y = cb->H, .pdl = cb->use_pdl,
                          .ks = cb->ks[1] };
        if (!(cb->skip & 4))
            CKK(sl_cu_fgemv_run(s, &o, T), "fused o_proj");
        mark(cb, P_O);
        sl_cu_fgemv gu = { .W = w->gu_w, .n_units = cb->I, .K = cb->H, .xres = cb->x,
                           .norm_w = w->post_norm, .eps = c->rms_norm_eps, .out = SL_FO_SWIGLU,
                           .y = cb->act, .ld_y = cb->I, .pdl = cb->use_pdl,
                           .ks = cb->ks[2] };
        if (!(cb->skip & 8))
            CKK(sl_cu_fgemv_run(s, &gu, T), "fused gate_up");
        mark(cb, P_GU);
        sl_cu_fgemv down = { .W = w->down_w, .n_units = cb->H, .K = cb->I, .x = cb->act,
                             .out = SL_FO_RESID, .y = cb->x, .ld_y = cb->H, .pdl = cb->use_pdl,
                             .ks = cb->ks[3] };
        if (!(cb->skip & 16))
            CKK(sl_cu_fgemv_run(s, &down, T), "fused down");
        mark(cb, P_DOWN);
    }
    return 0;
fail:
    return -1;
}

/* Every launch of one forward pass after the batch upload: embedding, layers, final norm
 * of each step's last token, LM head, and the argmax where ids_mode. */
static int launch_body(cuda_backend *cb, int T, int n_steps, const sl_cu_tok *tok, bool ids_mode,
                       int limit, sl_err *err)
{
    cudaStream_t s = cb->stream;
    const sl_model_config *c = &cb->base.model->cfg;
    bool am_done = false;
    mark(cb, -1);
    CKK(sl_cu_embed(s, cb->x, cb->embed, tok->ids, T, cb->H), "embed");
    mark(cb, P_EMBED);
    if (cb->fused) {
        if (run_layers_fused(cb, T, tok, err) < 0)
            goto fail;
        sl_cu_fgemv head = { .W = cb->lm_head, .n_units = cb->V, .K = cb->H, .xres = cb->x,
                             .norm_w = cb->final_norm, .eps = c->rms_norm_eps, .out = SL_FO_F32,
                             .y = cb->logits, .ld_y = cb->V, .pdl = cb->use_pdl,
                             .ks = cb->ks[4] };
        if (ids_mode && n_steps == T) {
            head.am_key = cb->hk;
            head.am_count = cb->hk_count;
            head.am_ids = cb->ids_dev;
            head.am_limit = limit;
            am_done = true;
        }
        CKK(sl_cu_fgemv_run(s, &head, T), "fused lm_head");
    } else {
        if (run_layers(cb, T, tok, err) < 0)
            goto fail;
        CKK(sl_cu_add_rmsnorm(s, cb->xn, cb->x, cb->y, cb->meta_dev + 3 * T, cb->final_norm,
                              n_steps, cb->H, c->rms_norm_eps), "final norm");
        if (gemm(cb, cb->lm_head, cb->V, cb->H, cb->xn, n_steps, cb->logits, true, err) < 0)
            goto fail;
    }
    if (ids_mode && !am_done)
        CKK(sl_cu_argmax(s, cb->ids_dev, cb->logits, n_steps, cb->V, limit, cb->am_v, cb->am_i,
                         cb->am_count), "argmax");
    mark(cb, P_HEAD);
    return 0;
fail:
    return -1;
}

/* Decode batches replay a graph of launch_body, captured on first use. */
static int launch_graph(cuda_backend *cb, int B, const sl_cu_tok *tok, bool ids_mode, int limit,
                        sl_err *err)
{
    int k = (ids_mode ? cb->base.max_seqs + 1 : 0) + B;
    cudaGraph_t g = NULL;
    if (cb->graphs[k] && cb->graph_limit[k] != limit) {
        cudaGraphExecDestroy(cb->graphs[k]);
        cb->graphs[k] = NULL;
    }
    if (!cb->graphs[k]) {
        CK(cudaStreamBeginCapture(cb->stream, cudaStreamCaptureModeThreadLocal), "graph capture");
        int rc = launch_body(cb, B, B, tok, ids_mode, limit, err);
        cudaError_t e = cudaStreamEndCapture(cb->stream, &g);
        if (rc < 0)
            goto fail;
        CK(e, "graph capture");
        CK(cudaGraphInstantiate(&cb->graphs[k], g, 0), "graph instantiate");
        cudaGraphDestroy(g);
        g = NULL;
        cb->graph_limit[k] = limit;
    }
    CK(cudaGraphLaunch(cb->graphs[k], cb->stream), "graph launch");
    return 0;
fail:
    if (g)
        cudaGraphDestroy(g);
    return -1;
}

/* Room for n penalty pairs (host and device). */
static int pen_room(cuda_backend *cb, int n, sl_err *err)
{
    if (n <= cb->pen_cap)
        return 0;
    int cap = n < 2 * cb->pen_cap ? 2 * cb->pen_cap : n;
    int32_t *ih = NULL, *id = NULL;
    float *vh = NULL, *vd = NULL;
    CK(cudaMallocHost((void **)&ih, (size_t)cap * 4), "pinned host memory");
    CK(cudaMallocHost((void **)&vh, (size_t)cap * 4), "pinned host memory");
    CK(cudaMalloc((void **)&id, (size_t)cap * 4), "penalty buffer");
    CK(cudaMalloc((void **)&vd, (size_t)cap * 4), "penalty buffer");
    if (cb->pen_cap) {
        memcpy(ih, cb->pen_ids_host, (size_t)cb->pen_cap * 4);
        memcpy(vh, cb->pen_vals_host, (size_t)cb->pen_cap * 4);
    }
    cudaFreeHost(cb->pen_ids_host);
    cudaFreeHost(cb->pen_vals_host);
    cudaFree(cb->pen_ids_dev);
    cudaFree(cb->pen_vals_dev);
    cb->pen_ids_host = ih;
    cb->pen_vals_host = vh;
    cb->pen_ids_dev = id;
    cb->pen_vals_dev = vd;
    cb->pen_cap = cap;
    return 0;
fail:
    cudaFreeHost(ih);
    cudaFreeHost(vh);
    cudaFree(id);
    cudaFree(vd);
    return -1;
}

/* Fills the rows of sample_kernel from req (draws the uniforms) and uploads them with the
 * penalty pairs: one per distinct generated id, amount as sl_sample computes it. */
static int prepare_sampling(cuda_backend *cb, const sl_sample_req *req, int n_steps, sl_err *err)
{
    if (!cb->smp_host) {
        CK(cudaMallocHost((void **)&cb->smp_host, (size_t)cb->base.max_seqs * sizeof *cb->smp_host),
           "pinned host memory");
        CK(cudaMalloc((void **)&cb->smp_dev, (size_t)cb->base.max_seqs * sizeof *cb->smp_dev),
           "sampling buffer");
        CK(cudaMalloc((void **)&cb->prob, (size_t)cb->base.max_seqs * (size_t)cb->V * 4),
           "sampling buffer");
        cb->pen_count = calloc((size_t)cb->V, sizeof *cb->pen_count);
        if (!cb->pen_count) {
            sl_err_set(err, "out of memory");
            goto fail;
        }
    }
    int n_pen = 0;
    for (int i = 0; i < n_steps; i++) {
        const sl_sampling_params *p = req[i].params;
        sl_cu_sample_row *r = &cb->smp_host[i];
        *r = (sl_cu_sample_row){ 0 };
        if (!p)
            continue;
        r->temperature = p->temperature;
        r->top_p = p->top_p;
        r->top_k = p->top_k;
        if (!(p->temperature <= 0 || p->top_k == 1) && req[i].rng)
            r->u = sl_rng_uniform(req[i].rng);
        if ((p->presence_penalty == 0 && p->frequency_penalty == 0) || !req[i].gen || req[i].n_gen < 1)
            continue;
        if (pen_room(cb, n_pen + req[i].n_gen, err) < 0)
            goto fail;
        r->pen_off = n_pen;
        const int32_t *g = req[i].gen;
        for (int j = 0; j < req[i].n_gen; j++)
            if (g[j] >= 0 && g[j] < cb->V)
                cb->pen_count[g[j]]++;
        for (int j = 0; j < req[i].n_gen; j++)
            if (g[j] >= 0 && g[j] < cb->V && cb->pen_count[g[j]] > 0) {
                cb->pen_ids_host[n_pen] = g[j];
                cb->pen_vals_host[n_pen++] = p->frequency_penalty * (float)cb->pen_count[g[j]] +
                                             p->presence_penalty;
                cb->pen_count[g[j]] = 0;
            }
        r->pen_n = n_pen - r->pen_off;
    }
    CK(cudaMemcpyAsync(cb->smp_dev, cb->smp_host, (size_t)n_steps * sizeof *cb->smp_host,
                       cudaMemcpyHostToDevice, cb->stream), "sampling upload");
    if (n_pen) {
        CK(cudaMemcpyAsync(cb->pen_ids_dev, cb->pen_ids_host, (size_t)n_pen * 4,
                           cudaMemcpyHostToDevice, cb->stream), "sampling upload");
        CK(cudaMemcpyAsync(cb->pen_vals_dev, cb->pen_vals_host, (size_t)n_pen * 4,
                           cudaMemcpyHostToDevice, cb->stream), "sampling upload");
    }
    return 0;
fail:
    return -1;
}

/* The forward pass; logits (host, n_steps x vocab) or, when ids is set, the argmax of each
 * step's logits below limit, or with req the token drawn from them. */
static int run_forward(cuda_backend *cb, const sl_seq_step *steps, int n_steps, float *logits,
                       int limit, int32_t *ids, const sl_sample_req *req, sl_err *err)
{
    int T, rc;
    if (check_steps(cb, steps, n_steps, &T, err) < 0)
        return -1;
    if (n_steps == 0)
        return 0;
    if (ensure_acts(cb, T, err) < 0)
        return -1;
    if ((rc = take_blocks(cb, steps, n_steps, err)) < 0)
        return rc;
    if (req && prepare_sampling(cb, req, n_steps, err) < 0)
        return -1;

    /* meta: ids, pos, slot [T each], last row of each step [n_steps], then for prefill
     * attention the query tiles (first token, count) of up to 16 tokens of one step */
    int32_t *mh = cb->meta_host, *rows = mh + 3 * (size_t)T, *tiles = rows + n_steps;
    int t = 0, n_tiles = 0;
    bool flash = cb->use_flash && T > n_steps && cb->hd <= 128;
    for (int i = 0; i < n_steps; i++) {
        for (int j = 0; j < steps[i].n_tokens; j++, t++) {
            mh[t] = steps[i].tokens[j];
            mh[T + t] = steps[i].pos + j;
            mh[2 * T + t] = steps[i].slot;
        }
        rows[i] = t - 1;
    }
    if (flash) {
        t = 0;
        for (int i = 0; i < n_steps; t += steps[i++].n_tokens)
            for (int j = 0; j < steps[i].n_tokens; j += 16)
                tiles[n_tiles++] = t + j;
        t = 0;
        for (int i = 0, k = 0; i < n_steps; t += steps[i++].n_tokens)
            for (int j = 0; j < steps[i].n_tokens; j += 16, k++)
                tiles[n_tiles + k] = steps[i].n_tokens - j < 16 ? steps[i].n_tokens - j : 16;
    }
    cb->n_tiles = n_tiles;
    cb->tile_t0 = cb->meta_dev + 3 * T + n_steps;
    cb->tile_n = cb->tile_t0 + n_tiles;
    cudaStream_t s = cb->stream;
    CK(cudaMemcpyAsync(cb->meta_dev, mh, (3 * (size_t)T + (size_t)n_steps + 2 * (size_t)n_tiles) * 4,
                       cudaMemcpyHostToDevice, s), "batch upload");
    sl_cu_tok tok = { cb->meta_dev, cb->meta_dev + T, cb->meta_dev + 2 * T };
    cb->fused = T == n_steps && T <= cb->fused_max && (size_t)T * (size_t)cb->H * 2 <= SL_CU_FGEMV_MAX_SMEM &&
                cb->H % 8 == 0 && cb->Q % 8 == 0 && cb->I % 8 == 0;
    cb->prof_on = cb->profile;
    cb->prof_n = 0;
    bool argmax_ids = ids && !req;
    if (cb->use_graphs && !cb->profile && T == n_steps)
        rc = launch_graph(cb, T, &tok, argmax_ids, limit, err);
    else
        rc = launch_body(cb, T, n_steps, &tok, argmax_ids, limit, err);
    if (rc < 0)
        goto fail;
    if (req)
        CKK(sl_cu_sample(s, cb->ids_dev, cb->logits, n_steps, cb->V, limit, cb->smp_dev,
                         cb->pen_ids_dev, cb->pen_vals_dev, cb->prob), "sampling");
    if (ids)
        CK(cudaMemcpyAsync(ids, cb->ids_dev, (size_t)n_steps * 4, cudaMemcpyDeviceToHost, s),
           "ids download");
    else
        CK(cudaMemcpyAsync(logits, cb->logits, (size_t)n_steps * (size_t)cb->V * 4,
                           cudaMemcpyDeviceToHost, s), "logits download");
    CK(cudaStreamSynchronize(s), "forward pass");
    if (cb->prof_on) {
        for (int i = 1; i < cb->prof_n; i++) {
            float ms = 0;
            cudaEventElapsedTime(&ms, cb->prof_ev[i - 1], cb->prof_ev[i]);
            cb->prof_ms[T == n_steps][cb->prof_stage[i]] += ms;
        }
        cb->prof_calls[T == n_steps]++;
        cb->prof_on = false;
    }
    for (int i = 0; i < n_steps; i++)
        cb->cached[steps[i].slot] = steps[i].pos + steps[i].n_tokens;
    return 0;
fail:
    return -1;
}

static int cu_forward(sl_backend *b, const sl_seq_step *steps, int n_steps, float *logits,
                      sl_err *err)
{
    return run_forward((cuda_backend *)b, steps, n_steps, logits, 0, NULL, NULL, err);
}

static int cu_forward_argmax(sl_backend *b, const sl_seq_step *steps, int n_steps, int limit,
                             int32_t *ids, sl_err *err)
{
    cuda_backend *cb = (cuda_backend *)b;
    if (limit < 1 || limit > cb->V)
        limit = cb->V;
    return run_forward(cb, steps, n_steps, NULL, limit, ids, NULL, err);
}

static int cu_forward_sample(sl_backend *b, const sl_seq_step *steps, int n_steps, int limit,
                             const sl_sample_req *req, int32_t *ids, sl_err *err)
{
    cuda_backend *cb = (cuda_backend *)b;
    if (limit < 1 || limit > cb->V)
        limit = cb->V;
    return run_forward(cb, steps, n_steps, NULL, limit, ids, req, err);
}

static void cu_release(sl_backend *b, int slot)
{
    cuda_backend *cb = (cuda_backend *)b;
    if (slot < 0 || slot >= b->max_seqs)
        return;
    const int32_t *row = cb->bt_host + (size_t)slot * (size_t)cb->max_blocks;
    for (int k = cb->slot_blocks[slot] - 1; k >= 0; k--)
        cb->free_blocks[cb->n_free++] = row[k];
    cb->slot_blocks[slot] = 0;
    cb->cached[slot] = 0;
}

static void cu_destroy(sl_backend *b)
{
    cuda_backend *cb = (cuda_backend *)b;
    if (!cb)
        return;
    if (cb->profile)
        sl_backend_cuda_profile_print(b, stderr);
    for (int i = 0; i < 16 * 1024; i++)
        if (cb->prof_ev[i])
            cudaEventDestroy(cb->prof_ev[i]);
    free_acts(cb);
    if (cb->layers)
        for (int l = 0; l < cb->L; l++) {
            cu_layer *d = &cb->layers[l];
            cudaFree(d->in_norm);
            cudaFree(d->post_norm);
            cudaFree(d->qkv_w);
            cudaFree(d->qkv_b);
            cudaFree(d->o_w);
            cudaFree(d->gu_w);
            cudaFree(d->down_w);
        }
    free(cb->layers);
    free(cb->graphs);
    free(cb->graph_limit);
    cudaFree(cb->blas_ws);
    if (cb->lm_head != cb->embed)
        cudaFree(cb->lm_head);
    cudaFree(cb->embed);
    cudaFree(cb->final_norm);
    cudaFree(cb->inv_freq);
    cudaFree(cb->k_cache);
    cudaFree(cb->v_cache);
    cudaFree(cb->bt_dev);
    cudaFree(cb->logits);
    cudaFree(cb->ids_dev);
    cudaFree(cb->att_part);
    cudaFree(cb->am_v);
    cudaFree(cb->am_i);
    cudaFree(cb->am_count);
    cudaFree(cb->hk);
    cudaFree(cb->hk_count);
    cudaFreeHost(cb->smp_host);
    cudaFree(cb->smp_dev);
    cudaFree(cb->prob);
    cudaFreeHost(cb->pen_ids_host);
    cudaFreeHost(cb->pen_vals_host);
    cudaFree(cb->pen_ids_dev);
    cudaFree(cb->pen_vals_dev);
    free(cb->pen_count);
    cudaFree(cb->att_count);
    free(cb->bt_host);
    free(cb->slot_blocks);
    free(cb->cached);
    free(cb->free_blocks);
    if (cb->blas)
        cublasDestroy(cb->blas);
    if (cb->stream)
        cudaStreamDestroy(cb->stream);
    free(cb);
}

static const sl_backend_ops cuda_ops = { "cuda", cu_forward, cu_release, cu_destroy,
                                         cu_forward_argmax, cu_forward_sample };

/* Sizes the block pool from the memory left after weights and activations. */
static int make_kv_cache(cuda_backend *cb, const sl_backend_opts *opts, sl_err *err)
{
    size_t free_b = 0, total_b = 0;
    CK(cudaMemGetInfo(&free_b, &total_b), "cudaMemGetInfo");
    double frac = opts->kv_cache_fraction > 0 ? opts->kv_cache_fraction : 0.9;
    size_t per_block = 2 * (size_t)cb->L * SL_KV_BLOCK * (size_t)cb->KV * 2;
    size_t want = (size_t)cb->base.max_seqs * (size_t)cb->max_blocks;
    size_t fit = (size_t)((double)free_b * frac) / per_block;
    size_t n = fit < want ? fit : want;
    if (n < 1) {
        sl_err_set(err, "cuda backend: no GPU memory left for the KV cache (%zu MiB free after "
                   "the weights; --kv-cache-fraction %.2f)", free_b >> 20, frac);
        goto fail;
    }
    cb->n_blocks = (int)n;
    size_t elems = (size_t)cb->L * n * SL_KV_BLOCK * (size_t)cb->KV;
    CK(cudaMalloc((void **)&cb->k_cache, elems * 2), "KV cache");
    CK(cudaMalloc((void **)&cb->v_cache, elems * 2), "KV cache");
    /* prefill attention reads whole blocks: rows never written must be finite */
    CK(cudaMemset(cb->k_cache, 0, elems * 2), "KV cache");
    CK(cudaMemset(cb->v_cache, 0, elems * 2), "KV cache");
    size_t bt = (size_t)cb->base.max_seqs * (size_t)cb->max_blocks;
    CK(cudaMalloc((void **)&cb->bt_dev, bt * 4), "block table");
    CK(cudaMemset(cb->bt_dev, 0, bt * 4), "block table");
    cb->bt_host = calloc(bt, 4);
    cb->free_blocks = malloc(n * sizeof *cb->free_blocks);
    if (!cb->bt_host || !cb->free_blocks) {
        sl_err_set(err, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < n; i++)
        cb->free_blocks[i] = (int)(n - 1 - i);
    cb->n_free = (int)n;
    return 0;
fail:
    return -1;
}

sl_backend *sl_backend_cuda_create(const sl_model *m, const sl_backend_opts *opts, sl_err *err)
{
    const sl_model_config *c = &m->cfg;
    if (opts->max_seqs < 1 || opts->max_len < 1) {
        sl_err_set(err, "cuda backend: max_seqs (%d) and max_len (%d) must be at least 1",
                   opts->max_seqs, opts->max_len);
        return NULL;
    }
    int hd = c->head_dim;
    if (hd != 16 && hd != 32 && hd != 64 && hd != 128 && hd != 256) {
        sl_err_set(err, "cuda backend: head_dim %d is not supported (16, 32, 64, 128 or 256)", hd);
        return NULL;
    }
    if (!sl_backend_cuda_available()) {
        sl_err_set(err, "cuda backend: no CUDA GPU is visible (check nvidia-smi and "
                    "CUDA_VISIBLE_DEVICES), or use --backend cpu");
        return NULL;
    }
    cuda_backend *cb = calloc(1, sizeof *cb);
    if (!cb) {
        sl_err_set(err, "out of memory");
        return NULL;
    }
    cb->base = (sl_backend){ &cuda_ops, m, opts->max_seqs, opts->max_len };
    cb->H = c->hidden_size;
    cb->hd = hd;
    cb->Q = c->num_heads * hd;
    cb->KV = c->num_kv_heads * hd;
    cb->I = c->intermediate_size;
    cb->V = c->vocab_size;
    cb->L = c->num_layers;
    cb->max_blocks = (opts->max_len + SL_KV_BLOCK - 1) / SL_KV_BLOCK;
    cb->layers = calloc((size_t)cb->L, sizeof *cb->layers);
    cb->slot_blocks = calloc((size_t)opts->max_seqs, sizeof *cb->slot_blocks);
    cb->cached = calloc((size_t)opts->max_seqs, sizeof *cb->cached);
    cb->graphs = calloc(2 * ((size_t)opts->max_seqs + 1), sizeof *cb->graphs);
    cb->graph_limit = calloc(2 * ((size_t)opts->max_seqs + 1), sizeof *cb->graph_limit);
    const char *g = getenv("SL_CUDA_GRAPHS"), *prof = getenv("SL_CUDA_PROFILE");
    cb->use_graphs = !(g && !strcmp(g, "0"));
    const char *fl = getenv("SL_CUDA_FLASH");
    cb->use_flash = !(fl && !strcmp(fl, "0"));
    const char *gv = getenv("SL_CUDA_GEMV");
    cb->use_gemv = !(gv && !strcmp(gv, "0"));
    const char *fu = getenv("SL_CUDA_FUSED"), *sp = getenv("SL_CUDA_SPLIT"), *pdl = getenv("SL_CUDA_PDL");
    cb->use_pdl = !(pdl && !strcmp(pdl, "0"));
    const char *amk = getenv("SL_CUDA_ATT_MIN"),
               *sk = getenv("SL_CUDA_SKIP"), *ks = getenv("SL_CUDA_KS");
    cb->att_min = amk ? atoi(amk) : 64;
    cb->skip = sk ? atoi(sk) : 0;
    if (ks)
        sscanf(ks, "%d,%d,%d,%d,%d", &cb->ks[0], &cb->ks[1], &cb->ks[2], &cb->ks[3], &cb->ks[4]);
    /* measured on an H100 at batch 1: the fused path wins at the 1.5B shape (hidden 1536:
     * 548 vs 508 tokens/s) and loses at 7B (hidden 3584: 162 vs 173), where the plain GEMV
     * already streams the longer rows near the copy rate */
    cb->fused_max = fu ? atoi(fu) : c->hidden_size <= 2048 ? 2 : 0;
    if (cb->fused_max > SL_CU_FGEMV_MAX_T)
        cb->fused_max = SL_CU_FGEMV_MAX_T;
    cb->profile = prof && !strcmp(prof, "1");
    if (!cb->layers || !cb->slot_blocks || !cb->cached || !cb->graphs || !cb->graph_limit) {
        sl_err_set(err, "out of memory");
        goto fail;
    }
    CK(cudaSetDevice(0), "cudaSetDevice");
    CK(cudaStreamCreateWithFlags(&cb->stream, cudaStreamNonBlocking), "stream");
    CKB(cublasCreate(&cb->blas), "cublasCreate");
    CKB(cublasSetStream(cb->blas, cb->stream), "cublasSetStream");
    /* cuBLAS must not allocate while a graph is captured: give it its workspace */
    CK(cudaMalloc(&cb->blas_ws, 32u << 20), "cuBLAS workspace");
    CKB(cublasSetWorkspace(cb->blas, cb->blas_ws, 32u << 20), "cublasSetWorkspace");
    if (cb->profile)
        for (int i = 0; i < 12 * cb->L + 8; i++)
            CK(cudaEventCreate(&cb->prof_ev[i]), "profile events");
    if (upload_weights(cb, err) < 0 || upload_inv_freq(cb, err) < 0)
        goto fail;
    CK(cudaMalloc((void **)&cb->logits, (size_t)opts->max_seqs * (size_t)cb->V * 4), "logits");
    CK(cudaMalloc((void **)&cb->ids_dev, (size_t)opts->max_seqs * 4), "ids");
    size_t am = (size_t)opts->max_seqs * SL_CU_ARGMAX_SPLIT;
    CK(cudaMalloc((void **)&cb->am_v, am * 4), "argmax scratch");
    CK(cudaMalloc((void **)&cb->am_i, am * 4), "argmax scratch");
    CK(cudaMalloc((void **)&cb->am_count, (size_t)opts->max_seqs * 4), "argmax scratch");
    CK(cudaMemset(cb->am_count, 0, (size_t)opts->max_seqs * 4), "argmax scratch");
    CK(cudaMalloc((void **)&cb->hk, SL_CU_FGEMV_MAX_T * sizeof *cb->hk), "argmax scratch");
    CK(cudaMemset(cb->hk, 0, SL_CU_FGEMV_MAX_T * sizeof *cb->hk), "argmax scratch");
    CK(cudaMalloc((void **)&cb->hk_count, 4), "argmax scratch");
    CK(cudaMemset(cb->hk_count, 0, 4), "argmax scratch");
    if (!(sp && !strcmp(sp, "0"))) {
        size_t pf, nc;
        sl_cu_attention_scratch(hd, &pf, &nc);
        CK(cudaMalloc((void **)&cb->att_part, pf * 4), "attention scratch");
        CK(cudaMalloc((void **)&cb->att_count, nc * 4), "attention scratch");
        CK(cudaMemset(cb->att_count, 0, nc * 4), "attention scratch");
    }
    int step = opts->max_step_tokens > 0 ? opts->max_step_tokens : 2048 + opts->max_seqs;
    if (ensure_acts(cb, step, err) < 0 || make_kv_cache(cb, opts, err) < 0)
        goto fail;
    /* the cudaMemsets above (KV cache, block table, counters) run on the legacy default
     * stream, asynchronously to the host, and cb->stream does not wait for it
     * (cudaStreamNonBlocking): a first forward call could write K/V rows or block-table
     * entries that a late memset then zeroes */
    CK(cudaDeviceSynchronize(), "backend setup");
    return &cb->base;
fail:
    cu_destroy(&cb->base);
    return NULL;
}

void sl_backend_cuda_profile_print(const sl_backend *b, FILE *f)
{
    const cuda_backend *cb = (const cuda_backend *)b;
    for (int k = 1; k >= 0; k--) {
        if (!cb->prof_calls[k])
            continue;
        double total = 0;
        for (int i = 0; i < P_N; i++)
            total += cb->prof_ms[k][i];
        fprintf(f, "%s: %ld calls, %.3f ms GPU time per call\n| stage | ms per call | share |\n",
                k ? "decode steps" : "prefill/mixed steps", cb->prof_calls[k],
                total / (double)cb->prof_calls[k]);
        for (int i = 0; i < P_N; i++)
            fprintf(f, "| %s | %.4f | %.1f%% |\n", stage_name[i],
                    cb->prof_ms[k][i] / (double)cb->prof_calls[k], 100 * cb->prof_ms[k][i] / total);
    }
}

void sl_backend_cuda_blocks(const sl_backend *b, int *total, int *free_now)
{
    const cuda_backend *cb = (const cuda_backend *)b;
    *total = cb->n_blocks;
    *free_now = cb->n_free;
}
