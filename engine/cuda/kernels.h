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
 * out[t][heads][head_dim] (bf16). head_dim must be 16, 32, 64, 128 or 256. With part and
 * count (sizes from sl_cu_attention_scratch; count zeroed once, left zeroed), contexts of
 * more than min_keys keys are split over several blocks per (token, head) when T x heads is
 * too few to fill the GPU (flash-decoding); NULL: one block each. pdl: launched as a
 * programmatic dependent of the kernel before (as sl_cu_fgemv's), which then may write
 * only each token's own cache row (decode: one token a sequence): the rows before it are
 * read before that kernel ends. unroll: steps of key loads in flight a warp, 2 (64 registers,
 * 4 blocks an SM: many sequences) or 4 (80, 3 blocks: it shares SMs with the QKV GEMV before
 * it under pdl). */
int sl_cu_attention(sl_cu_stream s, uint16_t *out, const float *q, const sl_cu_tok *tok,
                    const sl_cu_kv *kv, int T, int heads, float *part, int *count, int min_keys,
                    int pdl, int unroll);
void sl_cu_attention_scratch(int head_dim, size_t *part_floats, size_t *counters);

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

/* The decode GEMV with its neighbours fused, for 1 <= T <= SL_CU_FGEMV_MAX_T tokens:
 * unit u of the output takes weight row u of W[.][K] (two rows for SWIGLU and QKV) against
 * the input: x (bf16 [T][K]), or where xres is set RMSNorm(xres) (f32 [T][K] residual rows,
 * norm_w, eps; rounded to bf16 as the unfused path does). Outputs, by out:
 *   SL_FO_BF16, SL_FO_F32: y[t][u] (ld_y apart); SL_FO_RESID: y (f32)[t][u] += the sum;
 *   SL_FO_SWIGLU: y[t][u] (bf16) = silu(row u) * row n_units + u;
 *   SL_FO_QKV: the fused q|k|v projection, bias (NULL: none), RoPE at tok.pos and the KV
 *   write as sl_cu_qkv_rope does, q to q_out (f32 [T][heads][head_dim]); n_units =
 *   (heads + kv_heads) * head_dim / 2 + kv_heads * head_dim / 2.
 * With pdl, the launch may begin before the kernel before it ends (it prefetches weights,
 * then waits for it). K a multiple of 8 and T*K*2 bytes at most SL_CU_FGEMV_MAX_SMEM
 * (else -1). */
#define SL_CU_FGEMV_MAX_T 8
#define SL_CU_FGEMV_MAX_SMEM 49152
enum { SL_FO_BF16, SL_FO_F32, SL_FO_RESID, SL_FO_SWIGLU, SL_FO_QKV };
typedef struct sl_cu_fgemv {
    const uint16_t *W;
    int n_units, K;
    int pdl;                     /* launch as a programmatic dependent of the kernel before */
    const uint16_t *x;
    const float *xres;
    const uint16_t *norm_w;
    float eps;
    int out;
    void *y;
    int ld_y;
    const uint16_t *bias;
    float *q_out;
    sl_cu_tok tok;
    sl_cu_kv kv;
    const float *inv_freq;
    int heads;
    /* SL_FO_F32 only, am_key set: also am_ids[t] = the argmax of y[t][0..am_limit) (lowest
     * index on ties, NaN never), as sl_cu_argmax: am_key (T cells) and am_count zeroed
     * once, left zeroed */
    unsigned long long *am_key;
    int *am_count;
    int32_t *am_ids;
    int am_limit;
    int ks;                      /* warps that split K a unit (1, 2, 4, 8; 0: chosen here) */
} sl_cu_fgemv;
int sl_cu_fgemv_run(sl_cu_stream s, const sl_cu_fgemv *a, int T);

/* ids[r] = argmax of logits[r][0..limit) (lowest index on ties). */
int sl_cu_argmax(sl_cu_stream s, int32_t *ids, const float *logits, int R, int stride, int limit,
                 float *part_v, int *part_i, int *count);
/* Scratch for sl_cu_argmax over several blocks a row: part_v and part_i R x SL_CU_ARGMAX_SPLIT,
 * count R (zeroed once, left zeroed); NULLs: one block a row. */
#define SL_CU_ARGMAX_SPLIT 16

/* One row's sampling: sl_sampling_params' fields, u (uniform in [0, 1) from the sequence's
 * rng; unused where greedy), and the penalties: pen_n (id, amount) pairs from pen_off,
 * logits[id] -= amount, each id once. */
typedef struct sl_cu_sample_row {
    float temperature, top_p;
    int top_k;
    int pen_off, pen_n;
    double u;
} sl_cu_sample_row;

/* ids[r] = the token sl_sample would draw from logits[r][0..limit) (modified in place) with
 * rows[r] (same semantics, its own order of the candidates; ties at a top-k or top-p boundary
 * kept lowest id first); prob: R x limit floats of scratch. */
int sl_cu_sample(sl_cu_stream s, int32_t *ids, float *logits, int R, int stride, int limit,
                 const sl_cu_sample_row *rows, const int32_t *pen_ids, const float *pen_vals,
                 float *prob);

#ifdef __cplusplus
}
#endif

#endif
