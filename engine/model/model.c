/* A model folder: config.json + every *.safetensors, each tensor bound and shape-checked. */
#include "model.h"

#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"

typedef struct model_impl {
    sl_st_file *files;
    int n_files;
    sl_st_tensor **index;     /* every tensor of every file, sorted by name */
    int n_index;
} model_impl;

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_tensor(const void *a, const void *b)
{
    const sl_st_tensor *x = *(sl_st_tensor *const *)a, *y = *(sl_st_tensor *const *)b;
    return strcmp(x->t.name, y->t.name);
}

static int ends_with(const char *s, const char *suf)
{
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && !strcmp(s + n - m, suf);
}

typedef struct name_list { char **v; int n, cap; } name_list;

static int push_name(name_list *l, const char *name)
{
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 8;
        char **nv = realloc(l->v, (size_t)cap * sizeof *nv);
        if (!nv)
            return -1;
        l->v = nv;
        l->cap = cap;
    }
    if (!(l->v[l->n] = strdup(name)))
        return -1;
    l->n++;
    return 0;
}

/* The shard files: those model.safetensors.index.json names where it exists (a folder
 * may hold other .safetensors beside them), else every *.safetensors. Sorted, unique. */
static int list_files(const char *dir, name_list *l, sl_err *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    json_error_t jerr;
    json_t *index = json_load_file(path, 0, &jerr);
    if (index) {
        json_t *map = json_object_get(index, "weight_map"), *file;
        const char *tensor;
        json_object_foreach(map, tensor, file) {
            if (!json_is_string(file) || strchr(json_string_value(file), '/')) {
                sl_err_set(err, "%s: weight_map entry %s is not a file name in the folder",
                           path, tensor);
                json_decref(index);
                return -1;
            }
            if (push_name(l, json_string_value(file)) < 0)
                goto oom;
        }
        json_decref(index);
        if (l->n == 0) {
            sl_err_set(err, "%s: weight_map names no files", path);
            return -1;
        }
    } else {
        DIR *d = opendir(dir);
        if (!d) {
            sl_err_set(err, "%s: cannot open the model folder", dir);
            return -1;
        }
        struct dirent *e;
        while ((e = readdir(d)))
            if (ends_with(e->d_name, ".safetensors") && e->d_name[0] != '.' &&
                push_name(l, e->d_name) < 0) {
                closedir(d);
                goto oom;
            }
        closedir(d);
        if (l->n == 0) {
            sl_err_set(err, "%s: no *.safetensors files in the model folder", dir);
            return -1;
        }
    }
    qsort(l->v, (size_t)l->n, sizeof *l->v, cmp_name);
    int u = 0;
    for (int i = 0; i < l->n; i++) {
        if (u > 0 && !strcmp(l->v[i], l->v[u - 1]))
            free(l->v[i]);
        else
            l->v[u++] = l->v[i];
    }
    l->n = u;
    return 0;
oom:
    json_decref(index);
    sl_err_set(err, "out of memory");
    return -1;
}

static int open_files(model_impl *mi, const char *dir, sl_err *err)
{
    name_list l = { 0 };
    int rc = -1;
    if (list_files(dir, &l, err) < 0)
        goto fail;
    if (!(mi->files = calloc((size_t)l.n, sizeof *mi->files))) {
        sl_err_set(err, "out of memory");
        goto fail;
    }
    for (int i = 0; i < l.n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, l.v[i]);
        if (sl_st_open(&mi->files[i], path, err) < 0)
            goto fail;
        mi->n_files++;
    }
    rc = 0;
fail:
    for (int i = 0; i < l.n; i++)
        free(l.v[i]);
    free(l.v);
    return rc;
}

static int build_index(model_impl *mi, sl_err *err)
{
    int total = 0;
    for (int i = 0; i < mi->n_files; i++)
        total += mi->files[i].n_tensors;
    mi->index = calloc((size_t)total + 1, sizeof *mi->index);
    if (!mi->index) {
        sl_err_set(err, "out of memory");
        return -1;
    }
    for (int i = 0; i < mi->n_files; i++)
        for (int j = 0; j < mi->files[i].n_tensors; j++)
            mi->index[mi->n_index++] = &mi->files[i].tensors[j];
    qsort(mi->index, (size_t)mi->n_index, sizeof *mi->index, cmp_tensor);
    for (int i = 1; i < mi->n_index; i++)
        if (!strcmp(mi->index[i]->t.name, mi->index[i - 1]->t.name)) {
            sl_err_set(err, "tensor %s is in both %s and %s", mi->index[i]->t.name,
                       mi->index[i - 1]->path, mi->index[i]->path);
            return -1;
        }
    return 0;
}

static const sl_st_tensor *find(const model_impl *mi, const char *name)
{
    sl_st_tensor key = { .t.name = name }, *kp = &key;
    sl_st_tensor **hit = bsearch(&kp, mi->index, (size_t)mi->n_index, sizeof *mi->index,
                                 cmp_tensor);
    return hit ? *hit : NULL;
}

static void fmt_shape(char *buf, size_t n, int ndim, const int64_t *shape)
{
    size_t used = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, "%s%lld", i ? ", " : "",
                                 (long long)shape[i]);
    if (used < n)
        snprintf(buf + used, n - used, "]");
}

/* Finds name and checks its dtype and shape (d1 = 0 for a vector). */
static const sl_tensor *bind(const model_impl *mi, const char *dir, const char *name,
                             int64_t d0, int64_t d1, sl_err *err)
{
    const sl_st_tensor *st = find(mi, name);
    if (!st) {
        sl_err_set(err, "tensor %s is missing from %s/*.safetensors (%d file%s); the folder "
                   "does not hold a complete model for its config.json", name, dir,
                   mi->n_files, mi->n_files == 1 ? "" : "s");
        return NULL;
    }
    if (!st->dtype_ok) {
        sl_err_set(err, "%s: tensor %s has dtype %s; supported dtypes are F32, F16 and BF16",
                   st->path, name, st->dtype_name);
        return NULL;
    }
    int64_t want[2] = { d0, d1 };
    int ndim = d1 ? 2 : 1;
    if (st->t.ndim != ndim || st->t.shape[0] != d0 || (ndim == 2 && st->t.shape[1] != d1)) {
        char got[96], exp[96];
        fmt_shape(got, sizeof got, st->t.ndim, st->t.shape);
        fmt_shape(exp, sizeof exp, ndim, want);
        sl_err_set(err, "%s: tensor %s has shape %s but config.json implies %s", st->path,
                   name, got, exp);
        return NULL;
    }
    return &st->t;
}

static int bind_all(sl_model *m, const model_impl *mi, sl_err *err)
{
    const sl_model_config *c = &m->cfg;
    int64_t H = c->hidden_size, I = c->intermediate_size, V = c->vocab_size;
    int64_t Q = (int64_t)c->num_heads * c->head_dim, KV = (int64_t)c->num_kv_heads * c->head_dim;
    if (!(m->embed_tokens = bind(mi, m->dir, "model.embed_tokens.weight", V, H, err)) ||
        !(m->final_norm = bind(mi, m->dir, "model.norm.weight", H, 0, err)))
        return -1;
    if (c->tie_word_embeddings)
        m->lm_head = m->embed_tokens;
    else if (!(m->lm_head = bind(mi, m->dir, "lm_head.weight", V, H, err))) {
        if (strstr(err->msg, "missing"))
            sl_err_prefix(err, "config.json says tie_word_embeddings false");
        return -1;
    }
    for (int l = 0; l < c->num_layers; l++) {
        sl_layer_weights *w = &m->layers[l];
        char n[160];
#define BIND(field, suffix, d0, d1)                                              \
        snprintf(n, sizeof n, "model.layers.%d.%s", l, suffix);                  \
        if (!(w->field = bind(mi, m->dir, n, d0, d1, err)))                      \
            return -1;
        BIND(input_norm, "input_layernorm.weight", H, 0);
        BIND(post_attn_norm, "post_attention_layernorm.weight", H, 0);
        BIND(q_proj, "self_attn.q_proj.weight", Q, H);
        BIND(k_proj, "self_attn.k_proj.weight", KV, H);
        BIND(v_proj, "self_attn.v_proj.weight", KV, H);
        BIND(o_proj, "self_attn.o_proj.weight", H, Q);
        if (c->attention_bias) {
            BIND(q_bias, "self_attn.q_proj.bias", Q, 0);
            BIND(k_bias, "self_attn.k_proj.bias", KV, 0);
            BIND(v_bias, "self_attn.v_proj.bias", KV, 0);
        }
        BIND(gate_proj, "mlp.gate_proj.weight", I, H);
        BIND(up_proj, "mlp.up_proj.weight", I, H);
        BIND(down_proj, "mlp.down_proj.weight", H, I);
#undef BIND
    }
    return 0;
}

sl_model *sl_model_load(const char *dir, sl_err *err)
{
    sl_err local;
    if (!err)
        err = &local;
    err->msg[0] = 0;
    sl_model *m = calloc(1, sizeof *m);
    model_impl *mi = calloc(1, sizeof *mi);
    if (!m || !mi) {
        free(mi);
        free(m);
        sl_err_set(err, "out of memory");
        return NULL;
    }
    m->impl = mi;
    if (!(m->dir = strdup(dir)))
        goto oom;
    if (sl_model_config_load(dir, &m->cfg, err) < 0)
        goto fail;
    if (!(m->layers = calloc((size_t)m->cfg.num_layers, sizeof *m->layers)))
        goto oom;
    if (open_files(mi, dir, err) < 0 || build_index(mi, err) < 0 || bind_all(m, mi, err) < 0)
        goto fail;
    return m;
oom:
    sl_err_set(err, "out of memory");
fail:
    sl_model_free(m);
    return NULL;
}

void sl_model_free(sl_model *m)
{
    if (!m)
        return;
    model_impl *mi = m->impl;
    if (mi) {
        for (int i = 0; i < mi->n_files; i++)
            sl_st_close(&mi->files[i]);
        free(mi->files);
        free(mi->index);
        free(mi);
    }
    free(m->layers);
    free(m->dir);
    free(m);
}

static float bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static float f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, u;
    if (exp == 0x1f) {
        u = sign | 0x7f800000u | man << 13;
    } else if (exp == 0) {
        float f = ldexpf((float)man, -24);      /* zero or subnormal */
        return sign ? -f : f;
    } else {
        u = sign | (exp + 127 - 15) << 23 | man << 13;
    }
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

void sl_tensor_to_f32(const sl_tensor *t, size_t offset, size_t n, float *out)
{
    if (t->dtype == SL_DTYPE_F32) {
        memcpy(out, (const float *)t->data + offset, n * sizeof *out);
        return;
    }
    const uint8_t *p = (const uint8_t *)t->data + offset * 2;
    if (t->dtype == SL_DTYPE_BF16 && ((uintptr_t)p & 1) == 0) {
        const uint16_t *h = (const uint16_t *)(const void *)p;   /* the common, aligned case */
        for (size_t i = 0; i < n; i++) {
            uint32_t u = (uint32_t)h[i] << 16;
            memcpy(out + i, &u, sizeof u);
        }
        return;
    }
    for (size_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, p + 2 * i, 2);
        out[i] = t->dtype == SL_DTYPE_BF16 ? bf16_to_f32(h) : f16_to_f32(h);
    }
}
