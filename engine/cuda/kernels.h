/* The CUDA backend's own kernels, callable from C. Every launcher is asynchronous on
 * stream and returns 0, or -1 when the launch itself failed (cudaGetLastError). bf16
 * tensors are passed as uint16_t pointers so that C needs no CUDA types. */
#ifndef SL_CUDA_KERNELS_H
#define SL_CUDA_KERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct CUstream_st *sl_cu_stream;

#define SL_KV_BLOCK 16     /* tokens per KV cache block */

/* Per-token facts of one forward call, in device memory. */
typedef struct sl_cu_tok {
    const int32_t *ids;      /* [T] token ids */
    const int32_t *pos;      /* [T] positions */
    const int32_t *slot;     /* [T] sequence slots (rows of the block table) */
} sl_cu_tok;

/* The paged KV cache of one layer: [n_blocks][SL_KV_BLOCK][kv_heads][head_dim] bf16 each,
 * found through block_table[slot * max_blocks + position / SL_KV_BLOCK]. */
typedef struct sl_cu_kv {
    uint16_t *k, *v;
    const int32_t *block_table;
    int max_blocks;
    int kv_heads, head_dim;
} sl_cu_kv;

/* x[t][H] (f32) = embed[ids[t]][H] (bf16). */
int sl_cu_embed(sl_cu_stream s, float *x, const uint16_t *embed, const int32_t *ids, int T, int H);

/* The residual add and the RMSNorm after it, row = rows ? rows[r] : r: x[row] += y[row]
 * (y bf16, NULL: nothing to add), then out[r][H] (bf16) = w * x[row] / rms(x[row]). */
int sl_cu_add_rmsnorm(sl_cu_stream s, uint16_t *out, float *x, const uint16_t *y,
                      const int32_t *rows, const uint16_t *w, int R, int H, float eps);

/* qkv[t] = [q | k | v] (bf16) from the fused projection: adds the biases (NULL: none),
 * rotates q and k (rotate_half pairs i with i + head_dim/2) at pos[t], writes q to
 * q_out[t][heads][head_dim] (f32) and k, v into the paged cache. */
int sl_cu_qkv_rope(sl_cu_stream s, const uint16_t *qkv, const uint16_t *bias, float *q_out,
                   const sl_cu_tok *tok, const sl_cu_kv *kv, const float *inv_freq, int T,
                   int heads);

/* Causal attention of every token over its slot's cache, positions 0..pos[t]:
 * out[t][heads][head_dim] (bf16). head_dim must be 16, 32, 64, 128 or 256. */
int sl_cu_attention(sl_cu_stream s, uint16_t *out, const float *q, const sl_cu_tok *tok,
                    const sl_cu_kv *kv, int T, int heads);

/* The same on the tensor cores for batches with prompt chunks: tile i is the tokens
 * tile_t0[i] .. tile_t0[i] + tile_n[i] - 1 (at most 16, consecutive positions of one
 * sequence). head_dim 16, 32, 64 or 128 (else -1). */
int sl_cu_attention_prefill(sl_cu_stream s, uint16_t *out, const float *q, const sl_cu_tok *tok,
                            const sl_cu_kv *kv, int heads, const int32_t *tile_t0,
                            const int32_t *tile_n, int n_tiles);

/* act[t][I] (bf16) = silu(gu[t][i]) * gu[t][I + i], gu bf16 [T][2I]. */
int sl_cu_swiglu(sl_cu_stream s, uint16_t *act, const uint16_t *gu, int T, int I);

/* y[T][N] = x[T][K] . W[N][K]^T for 1 <= T <= 8 (bf16 in, f32 accumulation; y bf16, or
 * f32 where y_f32); K a multiple of 8. -1 outside those bounds. */
#define SL_CU_GEMV_MAX_T 8
int sl_cu_gemv(sl_cu_stream s, void *y, int y_f32, const uint16_t *W, const uint16_t *x,
               int T, int N, int K);

/* ids[r] = argmax of logits[r][0..limit) (lowest index on ties). */
int sl_cu_argmax(sl_cu_stream s, int32_t *ids, const float *logits, int R, int stride, int limit);

#ifdef __cplusplus
}
#endif

#endif
