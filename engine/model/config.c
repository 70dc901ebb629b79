/* config.json (+ generation_config.json) -> sl_model_config. */
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "model.h"

static int get_int(json_t *root, const char *key, int def, bool required, int *out,
                   const char *path, sl_err *err)
{
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) {
        if (required) {
            sl_err_set(err, "%s: required key \"%s\" is missing", path, key);
            return -1;
        }
        *out = def;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) <= 0 || json_integer_value(v) > INT_MAX) {
        sl_err_set(err, "%s: \"%s\" must be a positive integer", path, key);
        return -1;
    }
    *out = (int)json_integer_value(v);
    return 0;
}

static float get_num(json_t *obj, const char *key, float def)
{
    json_t *v = json_object_get(obj, key);
    return json_is_number(v) ? (float)json_number_value(v) : def;
}

static void add_eos(sl_model_config *c, json_t *v)
{
    if (json_is_integer(v)) {
        int32_t id = (int32_t)json_integer_value(v);
        for (int i = 0; i < c->n_eos; i++)
            if (c->eos_token_ids[i] == id)
                return;
        if (c->n_eos < (int)(sizeof c->eos_token_ids / sizeof c->eos_token_ids[0]))
            c->eos_token_ids[c->n_eos++] = id;
    } else if (json_is_array(v)) {
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x) add_eos(c, x);
    }
}

static int parse_rope(json_t *root, sl_model_config *c, const char *path, sl_err *err)
{
    /* transformers 5 writes rope_parameters (theta inside); older configs rope_theta +
     * rope_scaling. */
    json_t *rp = json_object_get(root, "rope_parameters");
    json_t *rs = json_object_get(root, "rope_scaling");
    json_t *scaling = json_is_object(rp) ? rp : rs;
    c->rope_theta = get_num(root, "rope_theta", get_num(rp, "rope_theta", 10000.0f));
    if (!json_is_object(scaling))
        return 0;
    json_t *type = json_object_get(scaling, "rope_type");
    if (!json_is_string(type))
        type = json_object_get(scaling, "type");
    const char *t = json_is_string(type) ? json_string_value(type) : "default";
    if (!strcmp(t, "default"))
        return 0;
    if (strcmp(t, "llama3") != 0) {
        sl_err_set(err, "%s: rope scaling type \"%s\" is not supported (supported: default, "
                   "llama3)", path, t);
        return -1;
    }
    c->rope_scaling_factor = get_num(scaling, "factor", 8.0f);
    c->rope_low_freq_factor = get_num(scaling, "low_freq_factor", 1.0f);
    c->rope_high_freq_factor = get_num(scaling, "high_freq_factor", 4.0f);
    json_t *omp = json_object_get(scaling, "original_max_position_embeddings");
    c->rope_original_max_pos = json_is_integer(omp) ? (int)json_integer_value(omp) : 8192;
    if (c->rope_scaling_factor <= 0 || c->rope_high_freq_factor <= c->rope_low_freq_factor) {
        sl_err_set(err, "%s: llama3 rope scaling needs factor > 0 and high_freq_factor > "
                   "low_freq_factor", path);
        return -1;
    }
    return 0;
}

static int parse_arch(json_t *root, sl_model_config *c, const char *path, sl_err *err)
{
    json_t *archs = json_object_get(root, "architectures");
    json_t *mt = json_object_get(root, "model_type");
    const char *a = json_string_value(json_array_get(archs, 0));
    if (!a) {
        const char *m = json_string_value(mt);
        a = !m ? "(none)" : !strcmp(m, "qwen2") ? "Qwen2ForCausalLM"
            : !strcmp(m, "llama") ? "LlamaForCausalLM" : m;
    }
    if (!strcmp(a, "Qwen2ForCausalLM")) {
        c->arch = SL_ARCH_QWEN2;
    } else if (!strcmp(a, "LlamaForCausalLM")) {
        c->arch = SL_ARCH_LLAMA;
    } else {
        sl_err_set(err, "%s: architecture %s is not supported (supported: Qwen2ForCausalLM, "
                   "LlamaForCausalLM)", path, a);
        return -1;
    }
    return 0;
}

static int parse_config(json_t *root, sl_model_config *c, const char *path, sl_err *err)
{
    memset(c, 0, sizeof *c);
    if (parse_arch(root, c, path, err) < 0)
        return -1;
    if (get_int(root, "hidden_size", 0, true, &c->hidden_size, path, err) < 0 ||
        get_int(root, "intermediate_size", 0, true, &c->intermediate_size, path, err) < 0 ||
        get_int(root, "num_hidden_layers", 0, true, &c->num_layers, path, err) < 0 ||
        get_int(root, "num_attention_heads", 0, true, &c->num_heads, path, err) < 0 ||
        get_int(root, "vocab_size", 0, true, &c->vocab_size, path, err) < 0 ||
        get_int(root, "num_key_value_heads", c->num_heads, false, &c->num_kv_heads, path,
                err) < 0 ||
        get_int(root, "head_dim", c->hidden_size / c->num_heads, false, &c->head_dim, path,
                err) < 0 ||
        get_int(root, "max_position_embeddings", 4096, false, &c->max_position_embeddings,
                path, err) < 0)
        return -1;
    if (c->num_heads % c->num_kv_heads != 0 || c->head_dim % 2 != 0 || c->head_dim == 0) {
        sl_err_set(err, "%s: num_attention_heads (%d) must be a multiple of "
                   "num_key_value_heads (%d), and head_dim (%d) even", path, c->num_heads,
                   c->num_kv_heads, c->head_dim);
        return -1;
    }
    const char *act = json_string_value(json_object_get(root, "hidden_act"));
    if (act && strcmp(act, "silu") != 0) {
        sl_err_set(err, "%s: hidden_act \"%s\" is not supported (only silu)", path, act);
        return -1;
    }
    if (json_is_true(json_object_get(root, "use_sliding_window"))) {
        sl_err_set(err, "%s: use_sliding_window true is not supported", path);
        return -1;
    }
    if (json_is_true(json_object_get(root, "mlp_bias"))) {
        sl_err_set(err, "%s: mlp_bias true is not supported", path);
        return -1;
    }
    c->rms_norm_eps = get_num(root, "rms_norm_eps", 1e-6f);
    c->tie_word_embeddings = json_is_true(json_object_get(root, "tie_word_embeddings"));
    json_t *ab = json_object_get(root, "attention_bias");
    c->attention_bias = json_is_boolean(ab) ? json_is_true(ab) : c->arch == SL_ARCH_QWEN2;
    if (parse_rope(root, c, path, err) < 0)
        return -1;
    json_t *bos = json_object_get(root, "bos_token_id");
    c->bos_token_id = json_is_integer(bos) ? (int32_t)json_integer_value(bos) : -1;
    add_eos(c, json_object_get(root, "eos_token_id"));
    return 0;
}

int sl_model_config_load(const char *dir, sl_model_config *cfg, sl_err *err)
{
    char path[4096];
    json_error_t jerr;
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root) {
        if (jerr.position == 0 && jerr.line == -1)
            sl_err_set(err, "%s: cannot read (is %s a Hugging Face model folder?): %s", path,
                       dir, jerr.text);
        else
            sl_err_set(err, "%s: invalid JSON at line %d: %s", path, jerr.line, jerr.text);
        return -1;
    }
    int rc = json_is_object(root) ? parse_config(root, cfg, path, err) : -1;
    if (!json_is_object(root))
        sl_err_set(err, "%s: not a JSON object", path);
    json_decref(root);
    if (rc < 0)
        return -1;
    snprintf(path, sizeof path, "%s/generation_config.json", dir);
    json_t *gen = json_load_file(path, 0, &jerr);
    if (gen) {
        add_eos(cfg, json_object_get(gen, "eos_token_id"));
        json_decref(gen);
    }
    return 0;
}
