// The CUDA backend's own kernels; engine/cpu/cpu_backend.c is the reference each matches.
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <mma.h>

#include "kernels.h"

typedef __nv_bfloat16 bf16;

static int launched(void)
{
    return cudaGetLastError() == cudaSuccess ? 0 : -1;
}

static int sm_count(void)
{
    static int n;
    if (!n && cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, 0) != cudaSuccess)
        n = 132;
    return n;
}

__device__ __forceinline__ float bf(uint16_t v)
{
    return __uint_as_float((unsigned)v << 16);
}

__device__ __forceinline__ uint16_t to_bf(float f)
{
    bf16 h = __float2bfloat16_rn(f);
    return *reinterpret_cast<uint16_t *>(&h);
}

__device__ __forceinline__ float warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// the warp's largest v and its index, lowest index on ties (every lane gets them)
__device__ __forceinline__ void warp_argmax(float &v, int &idx)
{
    for (int o = 16; o > 0; o >>= 1) {
        float v2 = __shfl_xor_sync(0xffffffffu, v, o);
        int i2 = __shfl_xor_sync(0xffffffffu, idx, o);
        if (v2 > v || (v2 == v && i2 < idx)) {
            v = v2;
            idx = i2;
        }
    }
}

// ---- embedding gather ----

__global__ void embed_kernel(float *x, const uint16_t *embed, const int32_t *ids, int H)
{
    int t = blockIdx.x;
    const uint16_t *row = embed + (size_t)ids[t] * H;
    for (int i = threadIdx.x; i < H; i += blockDim.x)
        x[(size_t)t * H + i] = bf(row[i]);
}

extern "C" int sl_cu_embed(sl_cu_stream s, float *x, const uint16_t *embed, const int32_t *ids,
                           int T, int H)
{
    embed_kernel<<<T, 256, 0, s>>>(x, embed, ids, H);
    return launched();
}

// ---- residual add + RMSNorm (f32 residual, bf16 out) ----

__global__ void add_rmsnorm_kernel(uint16_t *out, float *x, const uint16_t *y, const int32_t *rows,
                                   const uint16_t *w, int H, float eps)
{
    __shared__ float part[32];
    int r = blockIdx.x, src = rows ? rows[r] : r;
    float *xr = x + (size_t)src * H;
    const uint16_t *yr = y ? y + (size_t)src * H : NULL;
    float ss = 0;
    for (int i = threadIdx.x; i < H; i += blockDim.x) {
        float v = xr[i];
        if (yr) {
            v += bf(yr[i]);
            xr[i] = v;
        }
        ss += v * v;
    }
    ss = warp_sum(ss);
    if ((threadIdx.x & 31) == 0)
        part[threadIdx.x >> 5] = ss;
    __syncthreads();
    if (threadIdx.x < 32) {
        float v = threadIdx.x < blockDim.x / 32 ? part[threadIdx.x] : 0.0f;
        v = warp_sum(v);
        if (threadIdx.x == 0)
            part[0] = v;
    }
    __syncthreads();
    float inv = rsqrtf(part[0] / (float)H + eps);
    for (int i = threadIdx.x; i < H; i += blockDim.x)
        out[(size_t)r * H + i] = to_bf(bf(w[i]) * (xr[i] * inv));
}

extern "C" int sl_cu_add_rmsnorm(sl_cu_stream s, uint16_t *out, float *x, const uint16_t *y,
                                 const int32_t *rows, const uint16_t *w, int R, int H, float eps)
{
    add_rmsnorm_kernel<<<R, 512, 0, s>>>(out, x, y, rows, w, H, eps);
    return launched();
}

// ---- QKV bias + RoPE + KV cache write ----

__device__ __forceinline__ size_t cache_row(const sl_cu_kv &kv, int slot, int p)
{
    int block = kv.block_table[(size_t)slot * kv.max_blocks + p / SL_KV_BLOCK];
    return ((size_t)block * SL_KV_BLOCK + (size_t)(p % SL_KV_BLOCK)) * (size_t)kv.kv_heads *
           (size_t)kv.head_dim;
}

__global__ void qkv_rope_kernel(const uint16_t *qkv, const uint16_t *bias, float *q_out,
                                sl_cu_tok tok, sl_cu_kv kv, const float *inv_freq, int heads)
{
    int t = blockIdx.x, hd = kv.head_dim, half = hd / 2;
    int Q = heads * hd, KV = kv.kv_heads * hd;
    const uint16_t *row = qkv + (size_t)t * (Q + 2 * KV);
    float pos = (float)tok.pos[t];
    size_t at = cache_row(kv, tok.slot[t], tok.pos[t]);
    int pairs = (heads + kv.kv_heads) * half;
    for (int i = threadIdx.x; i < pairs; i += blockDim.x) {
        int h = i / half, d = i % half, base = h * hd;
        float x1 = bf(row[base + d]), x2 = bf(row[base + d + half]);
        if (bias) {
            x1 += bf(bias[base + d]);
            x2 += bf(bias[base + d + half]);
        }
        float sn, cs;
        sincosf(pos * inv_freq[d], &sn, &cs);
        float y1 = x1 * cs - x2 * sn, y2 = x2 * cs + x1 * sn;
        if (h < heads) {
            q_out[(size_t)t * Q + base + d] = y1;
            q_out[(size_t)t * Q + base + d + half] = y2;
        } else {
            int kb = base - Q;
            kv.k[at + kb + d] = to_bf(y1);
            kv.k[at + kb + d + half] = to_bf(y2);
        }
    }
    for (int i = threadIdx.x; i < KV; i += blockDim.x) {
        float v = bf(row[Q + KV + i]) + (bias ? bf(bias[Q + KV + i]) : 0.0f);
        kv.v[at + i] = to_bf(v);
    }
}

extern "C" int sl_cu_qkv_rope(sl_cu_stream s, const uint16_t *qkv, const uint16_t *bias, float *q_out,
                              const sl_cu_tok *tok, const sl_cu_kv *kv, const float *inv_freq,
                              int T, int heads)
{
    qkv_rope_kernel<<<T, 256, 0, s>>>(qkv, bias, q_out, *tok, *kv, inv_freq, heads);
    return launched();
}

// ---- attention for decode: one block of ATT_WARPS warps per (token, head, key range) ----
//
// A key row is read by LPK = head_dim / 8 lanes (8 dims, 16 bytes of K and of V each), so a
// warp takes 32 / LPK keys a step and ATT_U steps' loads are in flight at once. Each warp
// takes a contiguous share of its block's keys with an online softmax per lane group
// (exp2, log2e folded into q); the groups meet by shuffles, the warps in shared memory.

#define ATT_WARPS 8

// Flash-decoding: with split S > 1, blockIdx.z takes one of S ranges of keys (at least
// min_keys each, fewer ranges for short contexts: decided at run time so that a captured
// graph serves every length) and leaves its unnormalised partial (o, m, l) in part; the last
// block of a (token, head) to finish merges them in range order and resets the counter.

#define ATT_SPLIT_MAX 16

template <int HD, int ATT_U>
__global__ void __launch_bounds__(ATT_WARPS * 32, ATT_U <= 2 ? 4 : 3)
attention_kernel(uint16_t *out, const float *q, sl_cu_tok tok, sl_cu_kv kv, int heads, int S,
                 int min_keys, float *part, int *count)
{
    constexpr int LPK = HD / 8;        // lanes a key
    constexpr int KPS = 32 / LPK;      // keys a warp step
    __shared__ float acc_s[ATT_WARPS][HD];
    __shared__ float m_s[ATT_WARPS], l_s[ATT_WARPS];
    __shared__ int last_s;
    int t = blockIdx.x, h = blockIdx.y, sp = blockIdx.z, lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    int g = lane / LPK, gl = lane % LPK;
    int n = tok.pos[t] + 1, slot = tok.slot[t];
    int s_eff = min(S, (n + min_keys - 1) / min_keys);
    if (sp >= s_eff)
        return;
    int per = ((n + s_eff - 1) / s_eff + 7) & ~7;
    int k0 = min(n, sp * per), k1 = min(n, k0 + per);
    int per_w = ((k1 - k0 + ATT_WARPS - 1) / ATT_WARPS + KPS - 1) / KPS * KPS;
    int wk0 = min(k1, k0 + w * per_w), wk1 = min(k1, wk0 + per_w);
    int kvh = h / (heads / kv.kv_heads);
    size_t dim0 = (size_t)kvh * HD + gl * 8;
    uint4 kf[ATT_U], vf[ATT_U];
#pragma unroll
    for (int i = 0; i < ATT_U; i++)
        kf[i] = vf[i] = make_uint4(0, 0, 0, 0);
    // keys before this token's position were written by earlier forward calls: their loads
    // may start before the kernel that writes this token's K and V (and q) ends (programmatic
    // dependent launch: decode, one token a sequence); the token's own row comes after
#pragma unroll
    for (int i = 0; i < ATT_U; i++) {
        int p = wk0 + i * KPS + g;
        if (p < wk1 && p < n - 1) {
            size_t off = cache_row(kv, slot, p) + dim0;
            kf[i] = *reinterpret_cast<const uint4 *>(kv.k + off);
            vf[i] = *reinterpret_cast<const uint4 *>(kv.v + off);
        }
    }
    asm volatile("griddepcontrol.wait;" ::: "memory");
    asm volatile("griddepcontrol.launch_dependents;");
#pragma unroll
    for (int i = 0; i < ATT_U; i++)
        if (wk0 + i * KPS + g == n - 1) {
            size_t off = cache_row(kv, slot, n - 1) + dim0;
            kf[i] = *reinterpret_cast<const uint4 *>(kv.k + off);
            vf[i] = *reinterpret_cast<const uint4 *>(kv.v + off);
        }
    float qr[8];
    {
        const float4 *qp = reinterpret_cast<const float4 *>(q + ((size_t)t * heads + h) * HD + gl * 8);
        float4 a = qp[0], b = qp[1];
        float sc = rsqrtf((float)HD) * 1.4426950408889634f;
        qr[0] = a.x * sc; qr[1] = a.y * sc; qr[2] = a.z * sc; qr[3] = a.w * sc;
        qr[4] = b.x * sc; qr[5] = b.y * sc; qr[6] = b.z * sc; qr[7] = b.w * sc;
    }
    float m = -INFINITY, l = 0.0f, acc[8];
#pragma unroll
    for (int d = 0; d < 8; d++)
        acc[d] = 0.0f;
    for (int base = wk0; base < wk1; base += KPS * ATT_U) {
        if (base != wk0)
#pragma unroll
            for (int i = 0; i < ATT_U; i++) {
                int p = base + i * KPS + g;
                if (p < wk1) {
                    size_t off = cache_row(kv, slot, p) + dim0;
                    kf[i] = *reinterpret_cast<const uint4 *>(kv.k + off);
                    vf[i] = *reinterpret_cast<const uint4 *>(kv.v + off);
                }
            }
        float s[ATT_U], mx = -INFINITY;
#pragma unroll
        for (int i = 0; i < ATT_U; i++) {
            const unsigned wd[4] = { kf[i].x, kf[i].y, kf[i].z, kf[i].w };
            float d = 0.0f;
#pragma unroll
            for (int j = 0; j < 4; j++) {
                d += qr[2 * j] * __uint_as_float(wd[j] << 16);
                d += qr[2 * j + 1] * __uint_as_float(wd[j] & 0xffff0000u);
            }
#pragma unroll
            for (int o = LPK / 2; o > 0; o >>= 1)
                d += __shfl_xor_sync(0xffffffffu, d, o);
            s[i] = base + i * KPS + g < wk1 ? d : -INFINITY;
            mx = fmaxf(mx, s[i]);
        }
        float m_new = fmaxf(m, mx);
        float corr = m == -INFINITY ? 0.0f : exp2f(m - m_new);
        l *= corr;
#pragma unroll
        for (int d = 0; d < 8; d++)
            acc[d] *= corr;
#pragma unroll
        for (int i = 0; i < ATT_U; i++) {
            float pr = s[i] == -INFINITY ? 0.0f : exp2f(s[i] - m_new);
            l += pr;
            const unsigned vd[4] = { vf[i].x, vf[i].y, vf[i].z, vf[i].w };
#pragma unroll
            for (int j = 0; j < 4; j++) {
                acc[2 * j] += pr * __uint_as_float(vd[j] << 16);
                acc[2 * j + 1] += pr * __uint_as_float(vd[j] & 0xffff0000u);
            }
        }
        m = m_new;
    }
    // the lane groups of the warp meet: every group ends with the warp's (m, l, acc)
#pragma unroll
    for (int o = LPK; o < 32; o <<= 1) {
        float m2 = __shfl_xor_sync(0xffffffffu, m, o), l2 = __shfl_xor_sync(0xffffffffu, l, o);
        float M = fmaxf(m, m2);
        float f1 = m == -INFINITY ? 0.0f : exp2f(m - M), f2 = m2 == -INFINITY ? 0.0f : exp2f(m2 - M);
        l = l * f1 + l2 * f2;
#pragma unroll
        for (int d = 0; d < 8; d++)
            acc[d] = acc[d] * f1 + __shfl_xor_sync(0xffffffffu, acc[d], o) * f2;
        m = M;
    }
    if (g == 0) {
#pragma unroll
        for (int d = 0; d < 8; d++)
            acc_s[w][gl * 8 + d] = acc[d];
        if (gl == 0) {
            m_s[w] = m;
            l_s[w] = l;
        }
    }
    __syncthreads();
    float M = -INFINITY;
#pragma unroll
    for (int i = 0; i < ATT_WARPS; i++)
        M = fmaxf(M, m_s[i]);
    float L = 0.0f, f[ATT_WARPS];
#pragma unroll
    for (int i = 0; i < ATT_WARPS; i++) {
        f[i] = l_s[i] > 0.0f ? exp2f(m_s[i] - M) : 0.0f;
        L += l_s[i] * f[i];
    }
    size_t th = (size_t)t * heads + h;
    if (s_eff == 1) {
        for (int d = threadIdx.x; d < HD; d += blockDim.x) {
            float o = 0.0f;
#pragma unroll
            for (int i = 0; i < ATT_WARPS; i++)
                if (f[i] > 0.0f)
                    o += acc_s[i][d] * f[i];
            out[th * HD + d] = to_bf(o / L);
        }
        return;
    }
    float *pp = part + (th * S + sp) * (HD + 2);
    for (int d = threadIdx.x; d < HD; d += blockDim.x) {
        float o = 0.0f;
#pragma unroll
        for (int i = 0; i < ATT_WARPS; i++)
            if (f[i] > 0.0f)
                o += acc_s[i][d] * f[i];
        pp[d] = o;
    }
    if (threadIdx.x == 0) {
        pp[HD] = M;
        pp[HD + 1] = L;
    }
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0)
        last_s = atomicAdd(&count[th], 1) == s_eff - 1;
    __syncthreads();
    if (!last_s)
        return;
    __threadfence();
    const float *p0 = part + th * S * (HD + 2);
    float MM = -INFINITY, LL = 0.0f;
    for (int i = 0; i < s_eff; i++)
        if (__ldcg(p0 + i * (HD + 2) + HD + 1) > 0.0f)
            MM = fmaxf(MM, __ldcg(p0 + i * (HD + 2) + HD));
    for (int i = 0; i < s_eff; i++) {
        float li = __ldcg(p0 + i * (HD + 2) + HD + 1);
        if (li > 0.0f)
            LL += li * exp2f(__ldcg(p0 + i * (HD + 2) + HD) - MM);
    }
    for (int d = threadIdx.x; d < HD; d += blockDim.x) {
        float o = 0.0f;
        for (int i = 0; i < s_eff; i++) {
            float li = __ldcg(p0 + i * (HD + 2) + HD + 1);
            if (li > 0.0f)
                o += __ldcg(p0 + i * (HD + 2) + d) * exp2f(__ldcg(p0 + i * (HD + 2) + HD) - MM);
        }
        out[th * HD + d] = to_bf(o / LL);
    }
    if (threadIdx.x == 0)
        count[th] = 0;
}

/* Splits per (token, head) so that T x heads x S fills the GPU about twice. */
static int att_splits(int T, int heads)
{
    int th = T * heads, sms = sm_count();
    if (th >= 2 * sms)
        return 1;
    int S = (2 * sms + th - 1) / th;
    return S < ATT_SPLIT_MAX ? S : ATT_SPLIT_MAX;
}

extern "C" void sl_cu_attention_scratch(int head_dim, size_t *part_floats, size_t *counters)
{
    *part_floats = (size_t)4 * sm_count() * (size_t)(head_dim + 2);
    *counters = (size_t)2 * sm_count();
}

template <int HD, int U>
static cudaError_t attention_launch(sl_cu_stream s, dim3 grid, bool pdl, uint16_t *out, const float *q,
                                    const sl_cu_tok *tok, const sl_cu_kv *kv, int heads, int S,
                                    int min_keys, float *part, int *count)
{
    cudaLaunchConfig_t cfg = {};
    cudaLaunchAttribute attr[1];
    cfg.gridDim = grid;
    cfg.blockDim = dim3(ATT_WARPS * 32);
    cfg.stream = s;
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = attr;
    cfg.numAttrs = pdl ? 1 : 0;
    return cudaLaunchKernelEx(&cfg, attention_kernel<HD, U>, out, q, *tok, *kv, heads, S, min_keys,
                              part, count);
}

template <int HD>
static cudaError_t attention_u(int unroll, sl_cu_stream s, dim3 grid, bool pdl, uint16_t *out,
                               const float *q, const sl_cu_tok *tok, const sl_cu_kv *kv, int heads,
                               int S, int min_keys, float *part, int *count)
{
    if (unroll <= 2)
        return attention_launch<HD, 2>(s, grid, pdl, out, q, tok, kv, heads, S, min_keys, part, count);
    return attention_launch<HD, 4>(s, grid, pdl, out, q, tok, kv, heads, S, min_keys, part, count);
}

extern "C" int sl_cu_attention(sl_cu_stream s, uint16_t *out, const float *q, const sl_cu_tok *tok,
                               const sl_cu_kv *kv, int T, int heads, float *part, int *count,
                               int min_keys, int pdl, int unroll)
{
    int S = part && count ? att_splits(T, heads) : 1;
    dim3 grid(T, heads, S);
    if (min_keys < 8)
        min_keys = 8;
    cudaError_t e;
    switch (kv->head_dim) {
    case 16: e = attention_u<16>(unroll, s, grid, pdl, out, q, tok, kv, heads, S, min_keys, part, count); break;
    case 32: e = attention_u<32>(unroll, s, grid, pdl, out, q, tok, kv, heads, S, min_keys, part, count); break;
    case 64: e = attention_u<64>(unroll, s, grid, pdl, out, q, tok, kv, heads, S, min_keys, part, count); break;
    case 128: e = attention_u<128>(unroll, s, grid, pdl, out, q, tok, kv, heads, S, min_keys, part, count); break;
    case 256: e = attention_u<256>(unroll, s, grid, pdl, out, q, tok, kv, heads, S, min_keys, part, count); break;
    default: return -1;
    }
    return e == cudaSuccess ? launched() : -1;
}

// ---- flash-style prefill attention on the tensor cores (wmma, bf16 in, f32 accumulate) ----
//
// One warp per (tile of up to 16 consecutive query tokens of one sequence, head). Key tiles
// are the KV cache's 16-token blocks, so K and V come straight from the paged cache;
// online softmax per query row, O kept in shared memory between key tiles. Cache rows past
// a sequence's length hold finite values (the cache is zeroed at start), and their p is 0.

template <int HD>
__global__ void __launch_bounds__(32)
flash_prefill_kernel(uint16_t *out, const float *q, sl_cu_tok tok, sl_cu_kv kv, int heads,
                     const int32_t *tile_t0, const int32_t *tile_n)
{
    using namespace nvcuda;
    static_assert(SL_KV_BLOCK == 16, "key tiles are KV blocks");
    __shared__ __align__(32) bf16 q_s[16 * HD];
    __shared__ __align__(32) float o_s[16 * HD];
    __shared__ __align__(32) float s_s[16 * 16];
    __shared__ __align__(32) bf16 p_s[16 * 16];
    __shared__ float m_s[16], l_s[16];
    int lane = threadIdx.x, h = blockIdx.y;
    int t0 = tile_t0[blockIdx.x], nq = tile_n[blockIdx.x];
    int kvh = h / (heads / kv.kv_heads), slot = tok.slot[t0], pos0 = tok.pos[t0];
    float scale = rsqrtf((float)HD);
    for (int i = lane; i < 16 * HD; i += 32) {
        int r = i / HD, d = i % HD;
        float v = r < nq ? q[((size_t)(t0 + r) * heads + h) * HD + d] * scale : 0.0f;
        q_s[i] = __float2bfloat16_rn(v);
        o_s[i] = 0.0f;
    }
    if (lane < 16) {
        m_s[lane] = -INFINITY;
        l_s[lane] = 0.0f;
    }
    __syncwarp();
    wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> qa[HD / 16];
#pragma unroll
    for (int k = 0; k < HD / 16; k++)
        wmma::load_matrix_sync(qa[k], q_s + k * 16, HD);
    int n_keys = pos0 + nq, ld = kv.kv_heads * HD;
    for (int kt = 0; kt * 16 < n_keys; kt++) {
        int block = kv.block_table[(size_t)slot * kv.max_blocks + kt];
        size_t base = ((size_t)block * SL_KV_BLOCK * kv.kv_heads + kvh) * HD;
        const bf16 *kb = reinterpret_cast<const bf16 *>(kv.k) + base;
        const bf16 *vb = reinterpret_cast<const bf16 *>(kv.v) + base;
        wmma::fragment<wmma::accumulator, 16, 16, 16, float> sf;
        wmma::fill_fragment(sf, 0.0f);
#pragma unroll
        for (int k = 0; k < HD / 16; k++) {
            wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> kf;
            wmma::load_matrix_sync(kf, kb + k * 16, ld);
            wmma::mma_sync(sf, qa[k], kf, sf);
        }
        wmma::store_matrix_sync(s_s, sf, 16, wmma::mem_row_major);
        __syncwarp();
        if (lane < 16) {
            int r = lane, qpos = pos0 + r;
            float mx = m_s[r], rowmax = -INFINITY;
            for (int c = 0; c < 16; c++) {
                bool ok = r < nq && kt * 16 + c <= qpos;
                float v = ok ? s_s[r * 16 + c] : -INFINITY;
                s_s[r * 16 + c] = v;
                rowmax = fmaxf(rowmax, v);
            }
            float m_new = fmaxf(mx, rowmax);
            float corr = m_new == -INFINITY ? 1.0f : expf(mx - m_new), sum = 0.0f;
            for (int c = 0; c < 16; c++) {
                float v = s_s[r * 16 + c];
                float pr = v == -INFINITY ? 0.0f : expf(v - m_new);
                p_s[r * 16 + c] = __float2bfloat16_rn(pr);
                sum += pr;
            }
            l_s[r] = l_s[r] * corr + sum;
            m_s[r] = m_new;
            if (corr != 1.0f)
                for (int d = 0; d < HD; d++)
                    o_s[r * HD + d] *= corr;
        }
        __syncwarp();
        wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> pa;
        wmma::load_matrix_sync(pa, p_s, 16);
#pragma unroll
        for (int k = 0; k < HD / 16; k++) {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> of;
            wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> vf;
            wmma::load_matrix_sync(of, o_s + k * 16, HD, wmma::mem_row_major);
            wmma::load_matrix_sync(vf, vb + k * 16, ld);
            wmma::mma_sync(of, pa, vf, of);
            wmma::store_matrix_sync(o_s + k * 16, of, HD, wmma::mem_row_major);
        }
        __syncwarp();
    }
    for (int i = lane; i < nq * HD; i += 32) {
        int r = i / HD, d = i % HD;
        out[((size_t)(t0 + r) * heads + h) * HD + d] = to_bf(o_s[i] / l_s[r]);
    }
}

extern "C" int sl_cu_attention_prefill(sl_cu_stream s, uint16_t *out, const float *q,
                                       const sl_cu_tok *tok, const sl_cu_kv *kv, int heads,
                                       const int32_t *tile_t0, const int32_t *tile_n, int n_tiles)
{
    dim3 grid(n_tiles, heads);
    switch (kv->head_dim) {
    case 16: flash_prefill_kernel<16><<<grid, 32, 0, s>>>(out, q, *tok, *kv, heads, tile_t0, tile_n); break;
    case 32: flash_prefill_kernel<32><<<grid, 32, 0, s>>>(out, q, *tok, *kv, heads, tile_t0, tile_n); break;
    case 64: flash_prefill_kernel<64><<<grid, 32, 0, s>>>(out, q, *tok, *kv, heads, tile_t0, tile_n); break;
    case 128: flash_prefill_kernel<128><<<grid, 32, 0, s>>>(out, q, *tok, *kv, heads, tile_t0, tile_n); break;
    default: return -1;
    }
    return launched();
}

// ---- GEMV-shaped GEMM for decode batches of up to 8 tokens ----
//
// One warp per weight row: 16-byte loads of W, read once for all T tokens, x (bf16, tiny)
// from L1/L2. cuBLAS is left the larger batches.

template <int T, bool F32OUT>
__global__ void __launch_bounds__(256) gemv_kernel(void *y, const uint16_t *W, const uint16_t *x,
                                                   int N, int K)
{
    int row = blockIdx.x * 8 + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (row >= N)
        return;
    const uint4 *w = reinterpret_cast<const uint4 *>(W + (size_t)row * K);
    float acc[T];
#pragma unroll
    for (int t = 0; t < T; t++)
        acc[t] = 0.0f;
    int chunks = K / 8;
#pragma unroll 4
    for (int c = lane; c < chunks; c += 32) {
        uint4 u = w[c];
        const unsigned wd[4] = { u.x, u.y, u.z, u.w };
#pragma unroll
        for (int t = 0; t < T; t++) {
            uint4 v = reinterpret_cast<const uint4 *>(x + (size_t)t * K)[c];
            const unsigned xd[4] = { v.x, v.y, v.z, v.w };
#pragma unroll
            for (int j = 0; j < 4; j++) {
                acc[t] += __uint_as_float(wd[j] << 16) * __uint_as_float(xd[j] << 16);
                acc[t] += __uint_as_float(wd[j] & 0xffff0000u) * __uint_as_float(xd[j] & 0xffff0000u);
            }
        }
    }
#pragma unroll
    for (int t = 0; t < T; t++) {
        float v = warp_sum(acc[t]);
        if (lane == 0) {
            if (F32OUT)
                static_cast<float *>(y)[(size_t)t * N + row] = v;
            else
                static_cast<uint16_t *>(y)[(size_t)t * N + row] = to_bf(v);
        }
    }
}

template <int T>
static void gemv_launch(sl_cu_stream s, void *y, bool f32, const uint16_t *W, const uint16_t *x,
                        int N, int K)
{
    int blocks = (N + 7) / 8;
    if (f32)
        gemv_kernel<T, true><<<blocks, 256, 0, s>>>(y, W, x, N, K);
    else
        gemv_kernel<T, false><<<blocks, 256, 0, s>>>(y, W, x, N, K);
}

extern "C" int sl_cu_gemv(sl_cu_stream s, void *y, int y_f32, const uint16_t *W, const uint16_t *x,
                          int T, int N, int K)
{
    if (K % 8 != 0)
        return -1;
    switch (T) {
    case 1: gemv_launch<1>(s, y, y_f32, W, x, N, K); break;
    case 2: gemv_launch<2>(s, y, y_f32, W, x, N, K); break;
    case 3: gemv_launch<3>(s, y, y_f32, W, x, N, K); break;
    case 4: gemv_launch<4>(s, y, y_f32, W, x, N, K); break;
    case 5: gemv_launch<5>(s, y, y_f32, W, x, N, K); break;
    case 6: gemv_launch<6>(s, y, y_f32, W, x, N, K); break;
    case 7: gemv_launch<7>(s, y, y_f32, W, x, N, K); break;
    case 8: gemv_launch<8>(s, y, y_f32, W, x, N, K); break;
    default: return -1;
    }
    return launched();
}

// ---- SwiGLU ----

__global__ void swiglu_kernel(uint16_t *act, const uint16_t *gu, int T, int I)
{
    size_t n = (size_t)T * I;
    for (size_t k = blockIdx.x * (size_t)blockDim.x + threadIdx.x; k < n;
         k += (size_t)gridDim.x * blockDim.x) {
        size_t t = k / I, i = k % I;
        float g = bf(gu[t * 2 * I + i]), u = bf(gu[t * 2 * I + I + i]);
        act[k] = to_bf(g / (1.0f + expf(-g)) * u);
    }
}

extern "C" int sl_cu_swiglu(sl_cu_stream s, uint16_t *act, const uint16_t *gu, int T, int I)
{
    size_t n = (size_t)T * I;
    int blocks = (int)((n + 255) / 256);
    if (blocks > 65535)
        blocks = 65535;
    swiglu_kernel<<<blocks, 256, 0, s>>>(act, gu, T, I);
    return launched();
}

// ---- argmax (greedy decoding on the GPU) ----

// One row over ARGMAX_SPLIT blocks when scratch is given (a row of 150k logits is too much
// for one SM): each leaves its best (value, id), the last to finish picks among them in
// block order.
#define ARGMAX_SPLIT SL_CU_ARGMAX_SPLIT

__global__ void argmax_kernel(int32_t *ids, const float *logits, int stride, int limit,
                              float *part_v, int *part_i, int *count)
{
    __shared__ float bv[32];
    __shared__ int bi[32];
    __shared__ int last_s;
    const float *row = logits + (size_t)blockIdx.x * stride;
    int parts = gridDim.y, per = (limit + parts - 1) / parts;
    int lo = blockIdx.y * per, hi = min(limit, lo + per);
    float v = -INFINITY;
    int idx = 0x7fffffff;
    for (int i = lo + threadIdx.x; i < hi; i += blockDim.x)
        if (row[i] > v) {
            v = row[i];
            idx = i;
        }
    warp_argmax(v, idx);
    if ((threadIdx.x & 31) == 0) {
        bv[threadIdx.x >> 5] = v;
        bi[threadIdx.x >> 5] = idx;
    }
    __syncthreads();
    if (threadIdx.x != 0)
        return;
    v = bv[0];
    idx = bi[0];
    for (int k = 1; k < (int)blockDim.x / 32; k++)
        if (bv[k] > v || (bv[k] == v && bi[k] < idx)) {
            v = bv[k];
            idx = bi[k];
        }
    if (parts > 1) {
        size_t at = (size_t)blockIdx.x * parts + blockIdx.y;
        part_v[at] = v;
        part_i[at] = idx;
        __threadfence();
        last_s = atomicAdd(&count[blockIdx.x], 1) == parts - 1;
        if (!last_s)
            return;
        __threadfence();
        v = -INFINITY;
        idx = 0x7fffffff;
        for (int k = 0; k < parts; k++) {
            float v2 = __ldcg(part_v + (size_t)blockIdx.x * parts + k);
            int i2 = __ldcg(part_i + (size_t)blockIdx.x * parts + k);
            if (v2 > v || (v2 == v && i2 < idx)) {
                v = v2;
                idx = i2;
            }
        }
        count[blockIdx.x] = 0;
    }
    ids[blockIdx.x] = idx == 0x7fffffff ? 0 : idx;
}

extern "C" int sl_cu_argmax(sl_cu_stream s, int32_t *ids, const float *logits, int R, int stride,
                            int limit, float *part_v, int *part_i, int *count)
{
    dim3 grid(R, part_v && part_i && count ? ARGMAX_SPLIT : 1);
    argmax_kernel<<<grid, 1024, 0, s>>>(ids, logits, stride, limit, part_v, part_i, count);
    return launched();
}

// ---- fused decode GEMV: RMSNorm prologue, RoPE / SwiGLU / residual epilogues ----
//
// A unit is one output row, or a pair of weight rows where the epilogue needs both: a RoPE
// pair (d, d + head_dim/2 of one head), a V pair, a (gate, up) pair; one warp computes a
// unit (16-byte loads, all of K), and as many blocks as fit on the GPU at once share them.

template <int OUT>
__device__ __forceinline__ void unit_rows(const sl_cu_fgemv &a, int u, int *rows)
{
    if constexpr (OUT == SL_FO_SWIGLU) {
        rows[0] = u;
        rows[1] = a.n_units + u;
    } else if constexpr (OUT == SL_FO_QKV) {
        int hd = a.kv.head_dim, half = hd / 2, pairs = (a.heads + a.kv.kv_heads) * half;
        if (u < pairs) {
            rows[0] = (u / half) * hd + u % half;
            rows[1] = rows[0] + half;
        } else {
            rows[0] = 2 * pairs + 2 * (u - pairs);     // V rows follow Q and K
            rows[1] = rows[0] + 1;
        }
    } else {
        rows[0] = u;
    }
}

template <int T, int OUT>
__device__ __forceinline__ void fgemv_epilogue(const sl_cu_fgemv &a, int u, const float (*acc)[T],
                                               const int *posv, const size_t *atv, float b0, float b1,
                                               float fr)
{
#pragma unroll
    for (int t = 0; t < T; t++) {
        if constexpr (OUT == SL_FO_BF16) {
            static_cast<uint16_t *>(a.y)[(size_t)t * a.ld_y + u] = to_bf(acc[0][t]);
        } else if constexpr (OUT == SL_FO_F32) {
            static_cast<float *>(a.y)[(size_t)t * a.ld_y + u] = acc[0][t];
        } else if constexpr (OUT == SL_FO_RESID) {
            static_cast<float *>(a.y)[(size_t)t * a.ld_y + u] += acc[0][t];
        } else if constexpr (OUT == SL_FO_SWIGLU) {
            float g = acc[0][t], up = acc[1][t];
            static_cast<uint16_t *>(a.y)[(size_t)t * a.ld_y + u] = to_bf(g / (1.0f + expf(-g)) * up);
        } else {
            int hd = a.kv.head_dim, half = hd / 2, pairs = (a.heads + a.kv.kv_heads) * half;
            int Q = a.heads * hd;
            size_t at = atv[t];
            if (u < pairs) {
                int h = u / half, d = u % half, base = h * hd;
                float x1 = acc[0][t] + b0, x2 = acc[1][t] + b1;
                float sn, cs;
                sincosf((float)posv[t] * fr, &sn, &cs);
                float y1 = x1 * cs - x2 * sn, y2 = x2 * cs + x1 * sn;
                if (h < a.heads) {
                    a.q_out[(size_t)t * Q + base + d] = y1;
                    a.q_out[(size_t)t * Q + base + d + half] = y2;
                } else {
                    a.kv.k[at + base - Q + d] = to_bf(y1);
                    a.kv.k[at + base - Q + d + half] = to_bf(y2);
                }
            } else {
                int j = 2 * (u - pairs);
                float v0 = acc[0][t] + b0, v1 = acc[1][t] + b1;
                a.kv.v[at + j] = to_bf(v0);
                a.kv.v[at + j + 1] = to_bf(v1);
            }
        }
    }
}

// One batch of a unit's weight loads: U 16-byte chunks of each of its rows from chunk cb,
// 32 apart (one lane's share).
template <int U, int NR>
__device__ __forceinline__ void fgemv_load(uint4 (*wv)[NR], const uint16_t *W, const int *rows, int K,
                                           int cb, int c1)
{
#pragma unroll
    for (int i = 0; i < U; i++)
#pragma unroll
        for (int r = 0; r < NR; r++)
            if (cb + 32 * i < c1)
                wv[i][r] = __ldcs(reinterpret_cast<const uint4 *>(W + (size_t)rows[r] * K) + cb + 32 * i);
}

template <int T, bool NORM, int OUT>
__global__ void __launch_bounds__(256) fgemv_kernel(sl_cu_fgemv a, int ks)
{
    constexpr int NR = (OUT == SL_FO_SWIGLU || OUT == SL_FO_QKV) ? 2 : 1;
    // 16-byte loads of each row in flight per lane (QKV at one token: a whole row of 1536
    // before the wait)
    constexpr int U = T <= 2 && NR == 1 ? 8 : OUT == SL_FO_QKV && T == 1 ? 6 : 4;
    extern __shared__ __align__(16) uint16_t xs[];       // NORM: the normalised input, [T][K]
    __shared__ float red[8][NR][T];
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, K = a.K, chunks = K / 8;
    // ks == 1: units go round the warps of every block first, so that each SM gets its share;
    // ks > 1: the ks warps of a unit take a slice of K each and meet in shared memory
    int upb = 8 / ks, part = w % ks;
    int c0 = part * chunks / ks, c1 = (part + 1) * chunks / ks;
    int first = ks == 1 ? w * gridDim.x + blockIdx.x : blockIdx.x * upb + w / ks;
    int stride = ks == 1 ? gridDim.x * 8 : gridDim.x * upb;
    // QKV: positions and cache rows come from the host's upload, not the kernel before
    int posv[T];
    size_t atv[T];
#pragma unroll
    for (int t = 0; t < T; t++) {
        posv[t] = 0;
        atv[t] = 0;
        if constexpr (OUT == SL_FO_QKV)
            if (lane == 0 && part == 0) {
                posv[t] = a.tok.pos[t];
                atv[t] = cache_row(a.kv, a.tok.slot[t], posv[t]);
            }
    }
    // the weights do not depend on the kernel before (programmatic dependent launch): the
    // first batch of loads goes out while it finishes, the rest of the first unit's rows
    // start into L2; from then on each batch's loads go out before the batch before it is
    // summed (across units too)
    // SL_FO_F32 with am_key: lane 0's best (order key << 32 | ~unit) of each token
    unsigned long long best[T];
#pragma unroll
    for (int t = 0; t < T; t++)
        best[t] = 0;
    uint4 wv[U][NR];
    int rows[NR];
    if (first < a.n_units) {
        unit_rows<OUT>(a, first, rows);
        fgemv_load<U, NR>(wv, a.W, rows, K, c0 + lane, c1);
#pragma unroll
        for (int r = 0; r < NR; r++)
            for (int c = c0 + lane + 32 * U; c < c1; c += 32)
                asm volatile("prefetch.global.L2 [%0];" ::"l"(a.W + (size_t)rows[r] * K + 8 * c));
    }
    // the norm weights too (one 16-byte chunk a thread for K <= 2048)
    uint4 nw0 = make_uint4(0, 0, 0, 0);
    if constexpr (NORM)
        if ((int)threadIdx.x < chunks)
            nw0 = reinterpret_cast<const uint4 *>(a.norm_w)[threadIdx.x];
    asm volatile("griddepcontrol.wait;" ::: "memory");
    asm volatile("griddepcontrol.launch_dependents;");
    const uint16_t *x = a.x;
    if constexpr (NORM) {
        // 8 elements a thread at a time with 16-byte loads: one round trip for K <= 2048
        __shared__ float part_s[8][T];
        float ss[T];
#pragma unroll
        for (int t = 0; t < T; t++) {
            ss[t] = 0.0f;
            const float4 *xr = reinterpret_cast<const float4 *>(a.xres + (size_t)t * K);
#pragma unroll 2
            for (int c = threadIdx.x; c < chunks; c += blockDim.x) {
                float4 v0 = xr[2 * c], v1 = xr[2 * c + 1];
                ss[t] += v0.x * v0.x + v0.y * v0.y + v0.z * v0.z + v0.w * v0.w +
                         v1.x * v1.x + v1.y * v1.y + v1.z * v1.z + v1.w * v1.w;
            }
            ss[t] = warp_sum(ss[t]);
            if (lane == 0)
                part_s[w][t] = ss[t];
        }
        __syncthreads();
        float inv[T];
#pragma unroll
        for (int t = 0; t < T; t++) {
            float s = 0.0f;
#pragma unroll
            for (int i = 0; i < 8; i++)
                s += part_s[i][t];
            inv[t] = rsqrtf(s / (float)K + a.eps);
        }
#pragma unroll 2
        for (int c = threadIdx.x; c < chunks; c += blockDim.x) {
            uint4 nw = c == (int)threadIdx.x ? nw0 : reinterpret_cast<const uint4 *>(a.norm_w)[c];
            const unsigned wd[4] = { nw.x, nw.y, nw.z, nw.w };
#pragma unroll
            for (int t = 0; t < T; t++) {
                const float4 *xr = reinterpret_cast<const float4 *>(a.xres + (size_t)t * K);
                float4 v0 = xr[2 * c], v1 = xr[2 * c + 1];
                const float xv[8] = { v0.x, v0.y, v0.z, v0.w, v1.x, v1.y, v1.z, v1.w };
                unsigned o[4];
#pragma unroll
                for (int j = 0; j < 4; j++)
                    o[j] = (unsigned)to_bf(__uint_as_float(wd[j] << 16) * (xv[2 * j] * inv[t])) |
                           (unsigned)to_bf(__uint_as_float(wd[j] & 0xffff0000u) * (xv[2 * j + 1] * inv[t])) << 16;
                reinterpret_cast<uint4 *>(xs + (size_t)t * K)[c] = make_uint4(o[0], o[1], o[2], o[3]);
            }
        }
        __syncthreads();
        x = xs;
    }
    // the loop test is the same for every warp of a block where ks > 1 (barriers inside)
    for (int k = 0; (ks == 1 ? first : (int)blockIdx.x * upb) + k < a.n_units; k += stride) {
        int u = first + k;
        bool live = u < a.n_units;
        float acc[NR][T];
#pragma unroll
        for (int r = 0; r < NR; r++)
#pragma unroll
            for (int t = 0; t < T; t++)
                acc[r][t] = 0.0f;
        float b0 = 0.0f, b1 = 0.0f, fr = 0.0f;     // QKV: this unit's biases, RoPE frequency
        if (live) {
            if constexpr (OUT == SL_FO_QKV)
                if (lane == 0 && part == 0) {
                    int half = a.kv.head_dim / 2;
                    if (a.bias) {
                        b0 = bf(a.bias[rows[0]]);
                        b1 = bf(a.bias[rows[1]]);
                    }
                    if (u < (a.heads + a.kv.kv_heads) * half)
                        fr = a.inv_freq[u % half];
                }
            for (int cb = c0 + lane; cb < c1; cb += 32 * U) {
                // the next batch: the rest of this unit, else the next unit's first
                uint4 wn[U][NR];
                int nrows[NR];
                bool same = cb + 32 * U < c1;
                if (same) {
#pragma unroll
                    for (int r = 0; r < NR; r++)
                        nrows[r] = rows[r];
                    fgemv_load<U, NR>(wn, a.W, nrows, K, cb + 32 * U, c1);
                } else if (u + stride < a.n_units) {
                    unit_rows<OUT>(a, u + stride, nrows);
                    fgemv_load<U, NR>(wn, a.W, nrows, K, c0 + lane, c1);
                }
#pragma unroll
                for (int i = 0; i < U; i++) {
                    if (cb + 32 * i >= c1)
                        break;
#pragma unroll
                    for (int t = 0; t < T; t++) {
                        uint4 v = reinterpret_cast<const uint4 *>(x + (size_t)t * K)[cb + 32 * i];
                        const unsigned xd[4] = { v.x, v.y, v.z, v.w };
#pragma unroll
                        for (int r = 0; r < NR; r++) {
                            const unsigned wd[4] = { wv[i][r].x, wv[i][r].y, wv[i][r].z, wv[i][r].w };
#pragma unroll
                            for (int j = 0; j < 4; j++) {
                                acc[r][t] += __uint_as_float(wd[j] << 16) * __uint_as_float(xd[j] << 16);
                                acc[r][t] += __uint_as_float(wd[j] & 0xffff0000u) *
                                             __uint_as_float(xd[j] & 0xffff0000u);
                            }
                        }
                    }
                }
#pragma unroll
                for (int i = 0; i < U; i++)
#pragma unroll
                    for (int r = 0; r < NR; r++)
                        wv[i][r] = wn[i][r];
                if (!same)
#pragma unroll
                    for (int r = 0; r < NR; r++)
                        rows[r] = nrows[r];
            }
        }
#pragma unroll
        for (int r = 0; r < NR; r++)
#pragma unroll
            for (int t = 0; t < T; t++)
                acc[r][t] = warp_sum(acc[r][t]);
        if (ks > 1) {
            if (lane == 0)
#pragma unroll
                for (int r = 0; r < NR; r++)
#pragma unroll
                    for (int t = 0; t < T; t++)
                        red[w][r][t] = acc[r][t];
            __syncthreads();
            if (part == 0)
#pragma unroll
                for (int r = 0; r < NR; r++)
#pragma unroll
                    for (int t = 0; t < T; t++) {
                        float v = 0.0f;
                        for (int p = 0; p < ks; p++)
                            v += red[w + p][r][t];
                        acc[r][t] = v;
                    }
            __syncthreads();
        }
        if (live && part == 0 && lane == 0) {
            fgemv_epilogue<T, OUT>(a, u, acc, posv, atv, b0, b1, fr);
            if constexpr (OUT == SL_FO_F32)
                if (a.am_key && u < a.am_limit)
#pragma unroll
                    for (int t = 0; t < T; t++) {
                        float v = acc[0][t];
                        unsigned b = __float_as_uint(v);
                        b = (b & 0x80000000u) ? ~b : (b | 0x80000000u);
                        unsigned long long key = (unsigned long long)b << 32 | (0xffffffffu - (unsigned)u);
                        if (v == v && key > best[t])
                            best[t] = key;
                    }
        }
    }
    if constexpr (OUT == SL_FO_F32)
        if (a.am_key) {
            // the block's best, one atomicMax a token; the last block to finish takes the ids
            __shared__ unsigned long long bk[8][T];
            if (lane == 0)
#pragma unroll
                for (int t = 0; t < T; t++)
                    bk[w][t] = best[t];
            __syncthreads();
            if (threadIdx.x == 0) {
#pragma unroll
                for (int t = 0; t < T; t++) {
                    unsigned long long m = 0;
                    for (int i = 0; i < 8; i++)
                        m = bk[i][t] > m ? bk[i][t] : m;
                    if (m)
                        atomicMax(a.am_key + t, m);
                }
                __threadfence();
                if (atomicAdd(a.am_count, 1) == (int)gridDim.x - 1) {
                    __threadfence();
#pragma unroll
                    for (int t = 0; t < T; t++) {
                        unsigned long long k = atomicExch(a.am_key + t, 0ull);
                        a.am_ids[t] = k ? (int32_t)(0xffffffffu - (unsigned)(k & 0xffffffffu)) : 0;
                    }
                    *a.am_count = 0;
                }
            }
        }
}

template <int T, bool NORM, int OUT>
static cudaError_t fgemv_launch(const sl_cu_fgemv *a, size_t smem, sl_cu_stream s)
{
    static int per_sm;
    if (!per_sm && (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, fgemv_kernel<T, NORM, OUT>,
                                                                   256, smem) != cudaSuccess ||
                    per_sm < 1))
        per_sm = 1;
    int sms = sm_count(), slots = per_sm * sms, chunks = a->K / 8, ks = 1;
    int nr = a->out == SL_FO_SWIGLU || a->out == SL_FO_QKV ? 2 : 1;
    double bytes = (double)a->n_units * nr * a->K * 2;
    if (a->ks == 1 || a->ks == 2 || a->ks == 4 || a->ks == 8) {
        ks = a->ks;
    } else if (bytes >= 16e6) {
        /* bandwidth-bound: the fewest K splits that give the busiest SM at most 10% more
         * units than the mean (the blocks of a wave land one an SM, then a second: with
         * whole units a warp, an SM that gets two blocks streams twice what one with one
         * does; measured at 1.5B, down_proj 1536 rows: 192 blocks -> 256 of 6 rows split
         * over 4 warps, 602 -> 658 tokens/s; gate/up 224 -> 249 blocks, +17) */
        for (ks = 1; ks < 8; ks *= 2) {
            int upb = 8 / ks, items = (a->n_units + upb - 1) / upb;
            int rounds = (items + slots - 1) / slots, blocks = (items + rounds - 1) / rounds;
            int on_sm = (blocks + sms - 1) / sms;
            double busiest = (double)(on_sm < per_sm ? on_sm : per_sm) * rounds * upb;
            if (busiest <= 1.1 * a->n_units / sms || chunks / (2 * ks) < 16)
                break;
        }
    } else {
        /* latency-bound, few rows: split K so that enough loads are in flight, in one wave
         * of the grid (a second wave would repeat the whole latency chain); at 1.5B, QKV
         * (1024 units) is faster whole (663 -> 670 tokens/s) */
        while (ks < 8 && (long)a->n_units * ks < 4L * sms && chunks / (2 * ks) >= 16 &&
               (long)a->n_units * 2 * ks <= 8L * slots)
            ks *= 2;
    }
    int upb = 8 / ks, blocks = (a->n_units + upb - 1) / upb;
    if (blocks > slots) {
        /* as many rounds for every warp, as far as the division allows */
        int rounds = (blocks + slots - 1) / slots;
        blocks = (blocks + rounds - 1) / rounds;
    }
    cudaLaunchConfig_t cfg = {};
    cudaLaunchAttribute attr[1];
    cfg.gridDim = dim3(blocks);
    cfg.blockDim = dim3(256);
    cfg.dynamicSmemBytes = smem;
    cfg.stream = s;
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = attr;
    cfg.numAttrs = a->pdl ? 1 : 0;
    return cudaLaunchKernelEx(&cfg, fgemv_kernel<T, NORM, OUT>, *a, ks);
}

template <int T, bool NORM>
static cudaError_t fgemv_out(const sl_cu_fgemv *a, size_t smem, sl_cu_stream s)
{
    switch (a->out) {
    case SL_FO_BF16: return fgemv_launch<T, NORM, SL_FO_BF16>(a, smem, s);
    case SL_FO_F32: return fgemv_launch<T, NORM, SL_FO_F32>(a, smem, s);
    case SL_FO_RESID: return fgemv_launch<T, NORM, SL_FO_RESID>(a, smem, s);
    case SL_FO_SWIGLU: return fgemv_launch<T, NORM, SL_FO_SWIGLU>(a, smem, s);
    default: return fgemv_launch<T, NORM, SL_FO_QKV>(a, smem, s);
    }
}

template <int T>
static cudaError_t fgemv_in(const sl_cu_fgemv *a, size_t smem, sl_cu_stream s)
{
    return a->xres ? fgemv_out<T, true>(a, smem, s) : fgemv_out<T, false>(a, smem, s);
}

extern "C" int sl_cu_fgemv_run(sl_cu_stream s, const sl_cu_fgemv *a, int T)
{
    size_t smem = a->xres ? (size_t)T * (size_t)a->K * 2 : 0;
    if (a->K % 8 != 0 || T < 1 || T > SL_CU_FGEMV_MAX_T || smem > SL_CU_FGEMV_MAX_SMEM ||
        a->n_units < 1 || a->out < SL_FO_BF16 || a->out > SL_FO_QKV)
        return -1;
    cudaError_t e = cudaErrorInvalidValue;
    switch (T) {
    case 1: e = fgemv_in<1>(a, smem, s); break;
    case 2: e = fgemv_in<2>(a, smem, s); break;
    case 3: e = fgemv_in<3>(a, smem, s); break;
    case 4: e = fgemv_in<4>(a, smem, s); break;
    case 5: e = fgemv_in<5>(a, smem, s); break;
    case 6: e = fgemv_in<6>(a, smem, s); break;
    case 7: e = fgemv_in<7>(a, smem, s); break;
    case 8: e = fgemv_in<8>(a, smem, s); break;
    }
    return e == cudaSuccess ? launched() : -1;
}

// ---- sampling (sl_sample's semantics, engine/model/sampling.c): one block per row ----
//
// Penalties, then greedy, or: top-k by a radix select on the logits' order-preserving keys,
// probabilities exp((v - max) / temperature) into prob, top-p by a radix select on the
// probabilities weighted by their mass, and the draw: u x total found by a scan over
// contiguous per-thread segments (id order). Ties at a top-k or top-p boundary are kept
// lowest id first, as sl_sample's sort does for top-p.

#define SMP_THREADS 1024
#define SMP_WARPS (SMP_THREADS / 32)

__device__ __forceinline__ unsigned order_key(float v)
{
    unsigned u = __float_as_uint(v);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// Prefix sums over the block in thread order: thread i's range [*start, *end) of [0, *total);
// the ranges tile it exactly (each end is the next start, bit for bit). Deterministic.
__device__ void block_scan(double v, double *start, double *end, double *total)
{
    __shared__ double ws[SMP_WARPS + 1];
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    double inc = v;
    for (int o = 1; o < 32; o <<= 1) {
        double n = __shfl_up_sync(0xffffffffu, inc, o);
        if (lane >= o)
            inc += n;
    }
    double exc = __shfl_up_sync(0xffffffffu, inc, 1);
    if (lane == 0)
        exc = 0;
    if (lane == 31)
        ws[w] = inc;
    __syncthreads();
    if (w == 0) {
        double x = ws[lane], xi = x;
        for (int o = 1; o < 32; o <<= 1) {
            double n = __shfl_up_sync(0xffffffffu, xi, o);
            if (lane >= o)
                xi += n;
        }
        double xe = __shfl_up_sync(0xffffffffu, xi, 1);
        ws[lane] = lane ? xe : 0.0;
        if (lane == 31)
            ws[SMP_WARPS] = xi;
    }
    __syncthreads();
    *start = lane ? ws[w] + exc : ws[w];
    *end = lane < 31 ? ws[w] + inc : ws[w + 1];
    *total = ws[SMP_WARPS];
    __syncthreads();
}

__device__ double block_sum_d(double v)
{
    double a, b, t;
    block_scan(v, &a, &b, &t);
    return t;
}

// 16-bin radix step: for keys matching prefix under mask, the count (or mass) per digit at
// shift; returns the digit where the running sum from the top reaches *rem, and lowers *rem
// by what lies above that digit. Where rounding keeps the sum below *rem, the lowest
// non-empty digit. *n_at: how many keys fall in the chosen digit.
template <bool MASS>
__device__ int radix_step(const float *vals, int n, unsigned prefix,
                          unsigned mask, int shift, double *rem, int *n_at)
{
    __shared__ double ms[SMP_WARPS][16];
    __shared__ int cs[SMP_WARPS][16];
    __shared__ int pick;
    __shared__ double rem_s;
    __shared__ int nat_s;
    float m[16];        // per thread in float (a few hundred terms), across threads in double
    int c[16];
#pragma unroll
    for (int b = 0; b < 16; b++) {
        m[b] = 0;
        c[b] = 0;
    }
    for (int i = threadIdx.x; i < n; i += SMP_THREADS) {
        float v = vals[i];
        unsigned k = MASS ? __float_as_uint(v) : order_key(v);
        if (MASS && !(v > 0.0f))
            continue;
        if ((k & mask) != prefix)
            continue;
        unsigned d = (k >> shift) & 15u;
#pragma unroll
        for (int b = 0; b < 16; b++) {
            c[b] += d == (unsigned)b;
            if (MASS)
                m[b] += d == (unsigned)b ? v : 0.0f;
        }
    }
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
#pragma unroll
    for (int b = 0; b < 16; b++) {
        double md = m[b];
        for (int o = 16; o > 0; o >>= 1) {
            c[b] += __shfl_xor_sync(0xffffffffu, c[b], o);
            if (MASS)
                md += __shfl_xor_sync(0xffffffffu, md, o);
        }
        if (lane == 0) {
            cs[w][b] = c[b];
            ms[w][b] = md;
        }
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        double r = *rem, cum = 0;
        int sel = -1, low = 0;
        for (int b = 15; b >= 0; b--) {
            int cb = 0;
            double mb = 0;
            for (int i = 0; i < SMP_WARPS; i++) {
                cb += cs[i][b];
                mb += ms[i][b];
            }
            if (cb == 0)
                continue;
            double x = MASS ? mb : (double)cb;
            low = b;
            nat_s = cb;
            if (cum + x >= r) {
                sel = b;
                break;
            }
            cum += x;
        }
        if (sel < 0) {          // rounding: take everything down to the lowest digit
            sel = low;
            int cb = 0;
            double mb = 0;
            for (int i = 0; i < SMP_WARPS; i++) {
                cb += cs[i][sel];
                mb += ms[i][sel];
            }
            nat_s = cb;
            cum -= MASS ? mb : (double)cb;
        }
        pick = sel;
        rem_s = r - cum;
    }
    __syncthreads();
    *rem = rem_s;
    *n_at = nat_s;
    int p = pick;
    __syncthreads();
    return p;
}

// Keys equal to tie_key (prob bits, or order keys) keep only the first `keep` in id order;
// prob[i] = 0 for the rest. Segments: thread t owns ids [t * seg, (t + 1) * seg).
__device__ void cut_ties(float *prob, const float *logits, int n, bool by_logit, unsigned tie_key,
                         int keep)
{
    int seg = (n + SMP_THREADS - 1) / SMP_THREADS, a = threadIdx.x * seg, b = min(n, a + seg);
    int mine = 0;
    for (int i = a; i < b; i++) {
        unsigned k = by_logit ? order_key(logits[i]) : __float_as_uint(prob[i]);
        mine += k == tie_key && prob[i] > 0.0f;
    }
    double st, en, tot;
    block_scan((double)mine, &st, &en, &tot);
    int rank = (int)st;
    for (int i = a; i < b; i++) {
        unsigned k = by_logit ? order_key(logits[i]) : __float_as_uint(prob[i]);
        if (k == tie_key && prob[i] > 0.0f) {
            if (rank >= keep)
                prob[i] = 0.0f;
            rank++;
        }
    }
    __syncthreads();
}

__global__ void __launch_bounds__(SMP_THREADS)
sample_kernel(int32_t *ids, float *logits, int stride, int limit, const sl_cu_sample_row *rows,
              const int32_t *pen_ids, const float *pen_vals, float *prob_all)
{
    __shared__ float bv[SMP_WARPS];
    __shared__ int bi[SMP_WARPS];
    __shared__ int result;
    int row = blockIdx.x;
    sl_cu_sample_row p = rows[row];
    float *L = logits + (size_t)row * stride, *prob = prob_all + (size_t)row * limit;
    for (int j = threadIdx.x; j < p.pen_n; j += SMP_THREADS) {
        int id = pen_ids[p.pen_off + j];
        if (id >= 0 && id < limit)
            L[id] -= pen_vals[p.pen_off + j];
    }
    __syncthreads();
    // argmax (lowest id on ties): greedy's answer and the softmax's max
    float v = -INFINITY;
    int idx = 0x7fffffff;
    for (int i = threadIdx.x; i < limit; i += SMP_THREADS)
        if (L[i] > v) {
            v = L[i];
            idx = i;
        }
    warp_argmax(v, idx);
    if ((threadIdx.x & 31) == 0) {
        bv[threadIdx.x >> 5] = v;
        bi[threadIdx.x >> 5] = idx;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        v = bv[0];
        idx = bi[0];
        for (int k = 1; k < SMP_WARPS; k++)
            if (bv[k] > v || (bv[k] == v && bi[k] < idx)) {
                v = bv[k];
                idx = bi[k];
            }
        bv[0] = v;
        result = idx == 0x7fffffff ? 0 : idx;
    }
    __syncthreads();
    float M = bv[0];
    if (p.temperature <= 0.0f || p.top_k == 1) {
        if (threadIdx.x == 0)
            ids[row] = result;
        return;
    }
    // top-k: the k-th largest logit's key, and how many of its ties to keep
    unsigned tk = 0;
    int keep_k = 0, n_at = 0;
    bool topk = p.top_k > 0 && p.top_k < limit;
    if (topk) {
        double rem = p.top_k;
        unsigned mask = 0;
        for (int shift = 28; shift >= 0; shift -= 4) {
            int d = radix_step<false>(L, limit, tk, mask, shift, &rem, &n_at);
            tk |= (unsigned)d << shift;
            mask |= 15u << shift;
        }
        keep_k = (int)rem;
    }
    double local = 0;
    for (int i = threadIdx.x; i < limit; i += SMP_THREADS) {
        float x = L[i];
        bool kept = !topk || order_key(x) >= tk;
        prob[i] = kept ? expf((x - M) / p.temperature) : 0.0f;
    }
    __syncthreads();
    if (topk && keep_k < n_at)
        cut_ties(prob, L, limit, true, tk, keep_k);
    for (int i = threadIdx.x; i < limit; i += SMP_THREADS)
        local += prob[i];
    double total = block_sum_d(local);
    if (p.top_p > 0.0f && p.top_p < 1.0f) {
        double rem = (double)p.top_p * total;
        unsigned tp = 0, mask = 0;
        for (int shift = 28; shift >= 0; shift -= 4) {
            int d = radix_step<true>(prob, limit, tp, mask, shift, &rem, &n_at);
            tp |= (unsigned)d << shift;
            mask |= 15u << shift;
        }
        float pt = __uint_as_float(tp);
        int keep_p = (int)ceil(rem / (double)pt);
        keep_p = keep_p < 1 ? 1 : keep_p > n_at ? n_at : keep_p;
        for (int i = threadIdx.x; i < limit; i += SMP_THREADS)
            if (prob[i] < pt)
                prob[i] = 0.0f;
        __syncthreads();
        if (keep_p < n_at)
            cut_ties(prob, L, limit, false, tp, keep_p);
    }
    // the draw, in id order
    int seg = (limit + SMP_THREADS - 1) / SMP_THREADS, a = threadIdx.x * seg, b = min(limit, a + seg);
    double mine = 0;
    int last_kept = -1;
    for (int i = a; i < b; i++)
        if (prob[i] > 0.0f) {
            mine += prob[i];
            last_kept = i;
        }
    double before, end, tot;
    block_scan(mine, &before, &end, &tot);
    double target = p.u * tot;
    if (threadIdx.x == 0)
        result = -1;
    __syncthreads();
    if (target >= before && target < end) {
        double acc = before;
        for (int i = a; i < b; i++) {
            acc += prob[i];
            if (prob[i] > 0.0f && target < acc) {
                result = i;
                break;
            }
        }
        if (result < 0)
            result = last_kept;
    }
    // nobody's range held it (rounding at the very top): the last kept id
    int lk = last_kept;
    for (int o = 16; o > 0; o >>= 1)
        lk = max(lk, __shfl_xor_sync(0xffffffffu, lk, o));
    if ((threadIdx.x & 31) == 0)
        bi[threadIdx.x >> 5] = lk;
    __syncthreads();
    if (threadIdx.x == 0) {
        int r = result;
        if (r < 0)
            for (int k = 0; k < SMP_WARPS; k++)
                r = max(r, bi[k]);
        ids[row] = r < 0 ? 0 : r;
    }
}

extern "C" int sl_cu_sample(sl_cu_stream s, int32_t *ids, float *logits, int R, int stride,
                            int limit, const sl_cu_sample_row *rows, const int32_t *pen_ids,
                            const float *pen_vals, float *prob)
{
    sample_kernel<<<R, SMP_THREADS, 0, s>>>(ids, logits, stride, limit, rows, pen_ids, pen_vals, prob);
    return launched();
}
