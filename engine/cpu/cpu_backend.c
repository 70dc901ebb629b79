/* The reference forward pass in plain C, float32 math. Weights stay as stored (mmap'd) and
 * are widened to float32 row by row; every matmul is split over output rows by the pool. */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "pool.h"

typedef struct cpu_backend {
    sl_backend base;
    sl_pool *pool;
    int kv_dim;                 /* num_kv_heads * head_dim */
    float *k_cache, *v_cache;   /* [slot][layer][max_len][kv_dim] */
    int *cached;                /* tokens cached per slot */
    float *inv_freq;            /* head_dim / 2 */
    float *small;               /* norms and biases widened to float32, one block */
    float **in_norm, **post_norm, *final_norm, **q_bias, **k_bias, **v_bias;
} cpu_backend;

/* ---- math ---- */

static float dot(const float *a, const float *b, int n)
{
    float s[8] = { 0 };
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++)
            s[j] += a[i + j] * b[i + j];
    float r = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
    for (; i < n; i++)
        r += a[i] * b[i];
    return r;
}

static void rmsnorm(float *out, const float *x, const float *w, int n, float eps)
{
    float ss = 0;
    for (int i = 0; i < n; i++)
        ss += x[i] * x[i];
    float r = 1.0f / sqrtf(ss / (float)n + eps);
    for (int i = 0; i < n; i++)
        out[i] = w[i] * (x[i] * r);
}

/* HF rotate_half: dimension i pairs with i + head_dim/2. */
static void rope(float *v, int n_heads, int hd, int pos, const float *inv_freq)
{
    int half = hd / 2;
    for (int i = 0; i < half; i++) {
        float a = (float)pos * inv_freq[i], c = cosf(a), s = sinf(a);
        for (int h = 0; h < n_heads; h++) {
            float *x = v + h * hd, x1 = x[i], x2 = x[i + half];
            x[i] = x1 * c - x2 * s;
            x[i + half] = x2 * c + x1 * s;
        }
    }
}

#define SMALL_WORK 65536   /* multiply-adds below which one thread does a matmul alone */

/* ---- parallel matmul: out[T][N] (+)= in[T][K] . W[N][K]^T + bias ---- */

typedef struct matmul_job {
    const float *in;
    const sl_tensor *w;
    const float *bias;
    float *out;
    int T, K, N;
    bool accumulate;
} matmul_job;

/* Rows are widened ROW_BLOCK at a time so that each input row, read once per block, is
 * reused from L1 across the block's dot products. */
#define ROW_BLOCK 16

static void matmul_rows(void *ctx, int begin, int end)
{
    const matmul_job *j = ctx;
    size_t K = (size_t)j->K;
    bool widen = j->w->dtype != SL_DTYPE_F32;
    float *buf = widen ? malloc(ROW_BLOCK * K * sizeof *buf) : NULL;
    for (int n0 = begin; n0 < end; n0 += ROW_BLOCK) {
        int rows = end - n0 < ROW_BLOCK ? end - n0 : ROW_BLOCK;
        const float *w = (const float *)j->w->data + (size_t)n0 * K;
        if (widen) {
            sl_tensor_to_f32(j->w, (size_t)n0 * K, (size_t)rows * K, buf);
            w = buf;
        }
        for (int t = 0; t < j->T; t++) {
            const float *x = j->in + (size_t)t * K;
            float *o = j->out + (size_t)t * (size_t)j->N + n0;
            for (int r = 0; r < rows; r++) {
                float v = dot(w + (size_t)r * K, x, j->K) + (j->bias ? j->bias[n0 + r] : 0.0f);
                o[r] = j->accumulate ? o[r] + v : v;
            }
        }
    }
    free(buf);
}

static void matmul(cpu_backend *cb, float *out, const float *in, int T, const sl_tensor *w,
                   const float *bias, bool accumulate)
{
    matmul_job j = { in, w, bias, out, T, (int)w->shape[1], (int)w->shape[0], accumulate };
    if ((size_t)j.N * (size_t)j.K * (size_t)T < SMALL_WORK)
        matmul_rows(&j, 0, j.N);     /* waking the pool would cost more than the work */
    else
        sl_pool_for(cb->pool, j.N, matmul_rows, &j);
}

/* ---- attention over the slot's KV cache, one work item per (token, head) ---- */

typedef struct attn_job {
    cpu_backend *cb;
    int layer;
    const float *q;
    float *out;
    const int *pos, *slot;
} attn_job;

static void attn_items(void *ctx, int begin, int end)
{
    const attn_job *j = ctx;
    const sl_backend *b = &j->cb->base;
    const sl_model_config *c = &b->model->cfg;
    int hd = c->head_dim, nh = c->num_heads, group = nh / c->num_kv_heads;
    int kvd = j->cb->kv_dim;
    float scale = 1.0f / sqrtf((float)hd);
    float *score = malloc((size_t)b->max_len * sizeof *score);
    for (int it = begin; it < end; it++) {
        int t = it / nh, h = it % nh, n = j->pos[t] + 1, kvh = h / group;
        size_t base = ((size_t)j->slot[t] * (size_t)c->num_layers + (size_t)j->layer) *
                      (size_t)b->max_len * (size_t)kvd + (size_t)kvh * (size_t)hd;
        const float *q = j->q + ((size_t)t * (size_t)nh + (size_t)h) * (size_t)hd;
        float maxs = -INFINITY;
        for (int p = 0; p < n; p++) {
            score[p] = dot(q, j->cb->k_cache + base + (size_t)p * (size_t)kvd, hd) * scale;
            if (score[p] > maxs)
                maxs = score[p];
        }
        float sum = 0;
        for (int p = 0; p < n; p++)
            sum += (score[p] = expf(score[p] - maxs));
        float *o = j->out + ((size_t)t * (size_t)nh + (size_t)h) * (size_t)hd;
        memset(o, 0, (size_t)hd * sizeof *o);
        for (int p = 0; p < n; p++) {
            const float *v = j->cb->v_cache + base + (size_t)p * (size_t)kvd;
            float wgt = score[p] / sum;
            for (int d = 0; d < hd; d++)
                o[d] += wgt * v[d];
        }
    }
    free(score);
}

/* ---- the forward pass ---- */

static int check_steps(cpu_backend *cb, const sl_seq_step *steps, int n_steps, int *total, sl_err *err)
{
    return sl_backend_check_steps(&cb->base, cb->cached, steps, n_steps, total, err);
}

static void layer(cpu_backend *cb, int l, int T, const int *pos, const int *slot, float *x,
                  float *xn, float *q, float *k, float *v, float *att, float *gate, float *up)
{
    const sl_model *m = cb->base.model;
    const sl_model_config *c = &m->cfg;
    const sl_layer_weights *w = &m->layers[l];
    int H = c->hidden_size, hd = c->head_dim, kvd = cb->kv_dim;
    for (int t = 0; t < T; t++)
        rmsnorm(xn + (size_t)t * H, x + (size_t)t * H, cb->in_norm[l], H, c->rms_norm_eps);
    matmul(cb, q, xn, T, w->q_proj, cb->q_bias ? cb->q_bias[l] : NULL, false);
    matmul(cb, k, xn, T, w->k_proj, cb->k_bias ? cb->k_bias[l] : NULL, false);
    matmul(cb, v, xn, T, w->v_proj, cb->v_bias ? cb->v_bias[l] : NULL, false);
    for (int t = 0; t < T; t++) {
        rope(q + (size_t)t * c->num_heads * hd, c->num_heads, hd, pos[t], cb->inv_freq);
        rope(k + (size_t)t * kvd, c->num_kv_heads, hd, pos[t], cb->inv_freq);
        size_t at = (((size_t)slot[t] * (size_t)c->num_layers + (size_t)l) *
                     (size_t)cb->base.max_len + (size_t)pos[t]) * (size_t)kvd;
        memcpy(cb->k_cache + at, k + (size_t)t * kvd, (size_t)kvd * sizeof(float));
        memcpy(cb->v_cache + at, v + (size_t)t * kvd, (size_t)kvd * sizeof(float));
    }
    attn_job aj = { cb, l, q, att, pos, slot };
    sl_pool_for(cb->pool, T * c->num_heads, attn_items, &aj);
    matmul(cb, x, att, T, w->o_proj, NULL, true);
    for (int t = 0; t < T; t++)
        rmsnorm(xn + (size_t)t * H, x + (size_t)t * H, cb->post_norm[l], H, c->rms_norm_eps);
    matmul(cb, gate, xn, T, w->gate_proj, NULL, false);
    matmul(cb, up, xn, T, w->up_proj, NULL, false);
    size_t n = (size_t)T * (size_t)c->intermediate_size;
    for (size_t i = 0; i < n; i++)
        gate[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
    matmul(cb, x, gate, T, w->down_proj, NULL, true);
}

static int cpu_forward(sl_backend *b, const sl_seq_step *steps, int n_steps, float *logits,
                       sl_err *err)
{
    cpu_backend *cb = (cpu_backend *)b;
    const sl_model *m = b->model;
    const sl_model_config *c = &m->cfg;
    int T, rc = -1;
    if (check_steps(cb, steps, n_steps, &T, err) < 0)
        return -1;
    if (n_steps == 0)
        return 0;
    size_t H = (size_t)c->hidden_size, Q = (size_t)c->num_heads * (size_t)c->head_dim;
    size_t KV = (size_t)cb->kv_dim, I = (size_t)c->intermediate_size;
    size_t per_token = 2 * H + 2 * Q + 2 * KV + 2 * I;
    float *buf = malloc((size_t)T * per_token * sizeof *buf);
    int *meta = malloc(2 * (size_t)T * sizeof *meta);
    if (!buf || !meta) {
        sl_err_set(err, "out of memory for a batch of %d tokens", T);
        goto fail;
    }
    float *x = buf, *xn = x + T * H, *q = xn + T * H, *att = q + T * Q, *k = att + T * Q;
    float *v = k + T * KV, *gate = v + T * KV, *up = gate + T * I;
    int *pos = meta, *slot = meta + T, t = 0;
    for (int i = 0; i < n_steps; i++)
        for (int j = 0; j < steps[i].n_tokens; j++, t++) {
            pos[t] = steps[i].pos + j;
            slot[t] = steps[i].slot;
            sl_tensor_to_f32(m->embed_tokens, (size_t)steps[i].tokens[j] * H, H, x + t * H);
        }
    for (int l = 0; l < c->num_layers; l++)
        layer(cb, l, T, pos, slot, x, xn, q, k, v, att, gate, up);
    /* Only each step's last token needs logits. */
    t = 0;
    for (int i = 0; i < n_steps; i++) {
        t += steps[i].n_tokens;
        rmsnorm(xn + i * H, x + (size_t)(t - 1) * H, cb->final_norm, (int)H, c->rms_norm_eps);
        cb->cached[steps[i].slot] = steps[i].pos + steps[i].n_tokens;
    }
    matmul(cb, logits, xn, n_steps, m->lm_head, NULL, false);
    rc = 0;
fail:
    free(meta);
    free(buf);
    return rc;
}

static void cpu_release(sl_backend *b, int slot)
{
    cpu_backend *cb = (cpu_backend *)b;
    if (slot >= 0 && slot < b->max_seqs)
        cb->cached[slot] = 0;
}

static void cpu_destroy(sl_backend *b)
{
    cpu_backend *cb = (cpu_backend *)b;
    if (!cb)
        return;
    sl_pool_destroy(cb->pool);
    free(cb->k_cache);
    free(cb->v_cache);
    free(cb->cached);
    free(cb->inv_freq);
    free(cb->small);
    free(cb->in_norm);
    free(cb);
}

static const sl_backend_ops cpu_ops = { "cpu", cpu_forward, cpu_release, cpu_destroy };

/* Widens the norms and biases (small) to float32 once. */
static int widen_small(cpu_backend *cb, sl_err *err)
{
    const sl_model *m = cb->base.model;
    const sl_model_config *c = &m->cfg;
    int L = c->num_layers, H = c->hidden_size, Q = c->num_heads * c->head_dim;
    size_t n = (size_t)H * (size_t)(2 * L + 1);
    if (c->attention_bias)
        n += (size_t)L * (size_t)(Q + 2 * cb->kv_dim);
    cb->small = malloc(n * sizeof(float));
    cb->in_norm = calloc(6 * (size_t)L, sizeof(float *));
    if (!cb->small || !cb->in_norm) {
        sl_err_set(err, "out of memory");
        return -1;
    }
    cb->post_norm = cb->in_norm + L;
    float *p = cb->small;
#define WIDEN(dst, t)                                   \
    do {                                                \
        size_t cnt = (size_t)(t)->shape[0];             \
        sl_tensor_to_f32((t), 0, cnt, p);               \
        (dst) = p;                                      \
        p += cnt;                                       \
    } while (0)
    WIDEN(cb->final_norm, m->final_norm);
    for (int l = 0; l < L; l++) {
        WIDEN(cb->in_norm[l], m->layers[l].input_norm);
        WIDEN(cb->post_norm[l], m->layers[l].post_attn_norm);
    }
    if (c->attention_bias) {
        cb->q_bias = cb->in_norm + 2 * L;
        cb->k_bias = cb->in_norm + 3 * L;
        cb->v_bias = cb->in_norm + 4 * L;
        for (int l = 0; l < L; l++) {
            WIDEN(cb->q_bias[l], m->layers[l].q_bias);
            WIDEN(cb->k_bias[l], m->layers[l].k_bias);
            WIDEN(cb->v_bias[l], m->layers[l].v_bias);
        }
    }
#undef WIDEN
    return 0;
}

sl_backend *sl_backend_cpu_create(const sl_model *m, const sl_backend_opts *opts, sl_err *err)
{
    const sl_model_config *c = &m->cfg;
    if (opts->max_seqs < 1 || opts->max_len < 1) {
        sl_err_set(err, "cpu backend: max_seqs (%d) and max_len (%d) must be at least 1",
                   opts->max_seqs, opts->max_len);
        return NULL;
    }
    cpu_backend *cb = calloc(1, sizeof *cb);
    if (!cb) {
        sl_err_set(err, "out of memory");
        return NULL;
    }
    cb->base = (sl_backend){ &cpu_ops, m, opts->max_seqs, opts->max_len };
    cb->kv_dim = c->num_kv_heads * c->head_dim;
    size_t kv = (size_t)opts->max_seqs * (size_t)c->num_layers * (size_t)opts->max_len *
                (size_t)cb->kv_dim;
    int threads = opts->threads > 0 ? opts->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    cb->k_cache = calloc(kv, sizeof(float));
    cb->v_cache = calloc(kv, sizeof(float));
    cb->cached = calloc((size_t)opts->max_seqs, sizeof *cb->cached);
    cb->inv_freq = malloc((size_t)c->head_dim / 2 * sizeof(float));
    if (!cb->k_cache || !cb->v_cache || !cb->cached || !cb->inv_freq) {
        sl_err_set(err, "cpu backend: out of memory for a KV cache of %d sequences x %d "
                   "tokens (%zu MiB); lower max_seqs or max_len", opts->max_seqs,
                   opts->max_len, 2 * kv * sizeof(float) >> 20);
        goto fail;
    }
    sl_rope_inv_freq(c, cb->inv_freq);
    if (widen_small(cb, err) < 0 || !(cb->pool = sl_pool_create(threads, err)))
        goto fail;
    return &cb->base;
fail:
    cpu_destroy(&cb->base);
    return NULL;
}
