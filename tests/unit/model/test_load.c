/* Loading model folders: what loads, and the error a user sees for each broken folder. Each
 * test writes its own small folder (config.json + safetensors) under /tmp. */
#include <dirent.h>
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "model.h"

enum { H = 8, I = 16, V = 16, NH = 2, NKV = 1, HD = 4 };

typedef struct folder {
    char dir[64];
    json_t *config;
    json_t *tensors[2];      /* name -> {dtype, shape}, per file */
} folder;

static void add(folder *f, int file, const char *name, const char *dtype, int d0, int d1)
{
    json_t *shape = d1 ? json_pack("[ii]", d0, d1) : json_pack("[i]", d0);
    json_object_set_new(f->tensors[file], name, json_pack("{s:s,s:o}", "dtype", dtype,
                                                          "shape", shape));
}

/* A complete one-layer model of arch; tied embeddings and biases as Qwen2 has them. */
static folder *make(const char *arch)
{
    folder *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/sl-model-test-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    bool qwen = !strcmp(arch, "Qwen2ForCausalLM");
    f->config = json_pack("{s:[s],s:i,s:i,s:i,s:i,s:i,s:i,s:f,s:b,s:i}", "architectures", arch,
                          "hidden_size", H, "intermediate_size", I, "num_hidden_layers", 1,
                          "num_attention_heads", NH, "num_key_value_heads", NKV,
                          "vocab_size", V, "rms_norm_eps", 1e-5, "tie_word_embeddings", qwen,
                          "eos_token_id", 7);
    f->tensors[0] = json_object();
    f->tensors[1] = json_object();
    add(f, 0, "model.embed_tokens.weight", "F32", V, H);
    add(f, 0, "model.norm.weight", "F32", H, 0);
    if (!qwen)
        add(f, 0, "lm_head.weight", "F32", V, H);
    add(f, 0, "model.layers.0.input_layernorm.weight", "BF16", H, 0);
    add(f, 0, "model.layers.0.post_attention_layernorm.weight", "F16", H, 0);
    add(f, 0, "model.layers.0.self_attn.q_proj.weight", "F32", NH * HD, H);
    add(f, 0, "model.layers.0.self_attn.k_proj.weight", "F32", NKV * HD, H);
    add(f, 0, "model.layers.0.self_attn.v_proj.weight", "F32", NKV * HD, H);
    add(f, 0, "model.layers.0.self_attn.o_proj.weight", "F32", H, NH * HD);
    if (qwen) {
        add(f, 0, "model.layers.0.self_attn.q_proj.bias", "F32", NH * HD, 0);
        add(f, 0, "model.layers.0.self_attn.k_proj.bias", "F32", NKV * HD, 0);
        add(f, 0, "model.layers.0.self_attn.v_proj.bias", "F32", NKV * HD, 0);
    }
    add(f, 0, "model.layers.0.mlp.gate_proj.weight", "F32", I, H);
    add(f, 0, "model.layers.0.mlp.up_proj.weight", "F32", I, H);
    add(f, 0, "model.layers.0.mlp.down_proj.weight", "F32", H, I);
    return f;
}

static size_t elem_size(const char *dtype)
{
    return !strcmp(dtype, "F32") ? 4 : !strcmp(dtype, "I8") ? 1 : 2;
}

/* Writes one safetensors file; data byte k of the file's data section is k & 0x7f. */
static void write_st(const char *path, json_t *tensors)
{
    json_t *hdr = json_object();
    size_t off = 0;
    const char *name;
    json_t *t;
    json_object_foreach(tensors, name, t) {
        size_t n = elem_size(json_string_value(json_object_get(t, "dtype")));
        size_t i;
        json_t *d;
        json_array_foreach(json_object_get(t, "shape"), i, d) n *= (size_t)json_integer_value(d);
        json_t *e = json_deep_copy(t);
        json_object_set_new(e, "data_offsets", json_pack("[II]", (json_int_t)off,
                                                         (json_int_t)(off + n)));
        json_object_set_new(hdr, name, e);
        off += n;
    }
    json_object_set_new(hdr, "__metadata__", json_pack("{s:s}", "format", "pt"));
    char *text = json_dumps(hdr, JSON_COMPACT);
    size_t hlen = strlen(text);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    for (int i = 0; i < 8; i++)
        fputc((int)((uint64_t)hlen >> (8 * i) & 0xff), fp);
    fwrite(text, 1, hlen, fp);
    for (size_t k = 0; k < off; k++)
        fputc((int)(k & 0x7f), fp);
    fclose(fp);
    free(text);
    json_decref(hdr);
}

static void write_folder(folder *f)
{
    char path[128];
    snprintf(path, sizeof path, "%s/config.json", f->dir);
    assert_int_equal(json_dump_file(f->config, path, 0), 0);
    const char *names[2] = { "model.safetensors", "model-00002-of-00002.safetensors" };
    for (int i = 0; i < 2; i++)
        if (json_object_size(f->tensors[i])) {
            snprintf(path, sizeof path, "%s/%s", f->dir, names[i]);
            write_st(path, f->tensors[i]);
        }
}

static void cleanup(folder *f)
{
    DIR *d = opendir(f->dir);
    struct dirent *e;
    char path[400];
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.') {
            snprintf(path, sizeof path, "%s/%s", f->dir, e->d_name);
            unlink(path);
        }
    if (d)
        closedir(d);
    rmdir(f->dir);
    json_decref(f->config);
    json_decref(f->tensors[0]);
    json_decref(f->tensors[1]);
    free(f);
}

/* Writes f, expects the load to fail with a message holding each of the strings given. */
static void expect_error(folder *f, ...)
{
    write_folder(f);
    sl_err err = { { 0 } };
    sl_model *m = sl_model_load(f->dir, &err);
    if (m)
        fail_msg("loaded a broken folder");
    va_list ap;
    va_start(ap, f);
    const char *want;
    while ((want = va_arg(ap, const char *)))
        if (!strstr(err.msg, want))
            fail_msg("error \"%s\" does not mention \"%s\"", err.msg, want);
    va_end(ap);
    cleanup(f);
}

static void loads_qwen2(void **state)
{
    folder *f = make("Qwen2ForCausalLM");
    write_folder(f);
    char path[128];
    snprintf(path, sizeof path, "%s/generation_config.json", f->dir);
    json_t *gen = json_pack("{s:[ii]}", "eos_token_id", 7, 9);
    json_dump_file(gen, path, 0);
    json_decref(gen);
    sl_err err = { { 0 } };
    sl_model *m = sl_model_load(f->dir, &err);
    if (!m)
        fail_msg("%s", err.msg);
    assert_int_equal(m->cfg.arch, SL_ARCH_QWEN2);
    assert_int_equal(m->cfg.head_dim, HD);
    assert_int_equal(m->cfg.num_kv_heads, NKV);
    assert_true(m->cfg.attention_bias);
    assert_true(m->cfg.tie_word_embeddings);
    assert_ptr_equal(m->lm_head, m->embed_tokens);
    assert_non_null(m->layers[0].q_bias);
    assert_int_equal(m->cfg.n_eos, 2);
    assert_int_equal(m->cfg.eos_token_ids[0], 7);
    assert_int_equal(m->cfg.eos_token_ids[1], 9);
    assert_true(m->cfg.rope_theta == 10000.0f);
    assert_true(m->cfg.rope_scaling_factor == 0);
    assert_int_equal(m->layers[0].input_norm->dtype, SL_DTYPE_BF16);
    sl_model_free(m);
    cleanup(f);
}

static void loads_llama_sharded_with_legacy_rope(void **state)
{
    folder *f = make("LlamaForCausalLM");
    json_object_set_new(f->config, "rope_theta", json_real(500000.0));
    json_object_set_new(f->config, "rope_scaling",
                        json_pack("{s:s,s:f,s:f,s:f,s:i}", "rope_type", "llama3", "factor", 8.0,
                                  "low_freq_factor", 1.0, "high_freq_factor", 4.0,
                                  "original_max_position_embeddings", 8192));
    json_object_set_new(f->config, "head_dim", json_null());
    /* move the MLP into a second shard */
    const char *mlp[] = { "model.layers.0.mlp.gate_proj.weight", "model.layers.0.mlp.up_proj.weight",
                          "model.layers.0.mlp.down_proj.weight" };
    for (int i = 0; i < 3; i++) {
        json_object_set(f->tensors[1], mlp[i], json_object_get(f->tensors[0], mlp[i]));
        json_object_del(f->tensors[0], mlp[i]);
    }
    write_folder(f);
    sl_err err = { { 0 } };
    sl_model *m = sl_model_load(f->dir, &err);
    if (!m)
        fail_msg("%s", err.msg);
    assert_int_equal(m->cfg.arch, SL_ARCH_LLAMA);
    assert_false(m->cfg.attention_bias);
    assert_null(m->layers[0].q_bias);
    assert_ptr_not_equal(m->lm_head, m->embed_tokens);
    assert_true(m->cfg.rope_theta == 500000.0f);
    assert_true(m->cfg.rope_scaling_factor == 8.0f);
    assert_int_equal(m->cfg.rope_original_max_pos, 8192);
    assert_int_equal(m->cfg.head_dim, HD);
    assert_string_equal(m->layers[0].down_proj->name, "model.layers.0.mlp.down_proj.weight");
    sl_model_free(m);
    cleanup(f);
}

static void write_index(folder *f, const char *extra_file)
{
    char path[128];
    json_t *map = json_object();
    const char *names[2] = { "model.safetensors", "model-00002-of-00002.safetensors" };
    const char *name;
    json_t *t;
    for (int i = 0; i < 2; i++)
        json_object_foreach(f->tensors[i], name, t) json_object_set_new(map, name,
                                                                       json_string(names[i]));
    if (extra_file)
        json_object_set_new(map, "model.extra.weight", json_string(extra_file));
    json_t *index = json_pack("{s:{},s:o}", "metadata", "weight_map", map);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", f->dir);
    assert_int_equal(json_dump_file(index, path, 0), 0);
    json_decref(index);
}

/* With an index, only the files it names are read: a stray copy beside them is ignored. */
static void index_names_the_shards(void **state)
{
    folder *f = make("Qwen2ForCausalLM");
    json_object_set(f->tensors[1], "model.norm.weight",
                    json_object_get(f->tensors[0], "model.norm.weight"));
    json_object_del(f->tensors[0], "model.norm.weight");
    write_folder(f);
    write_index(f, NULL);
    char path[128];
    snprintf(path, sizeof path, "%s/model.safetensors", f->dir);
    char stray[128];
    snprintf(stray, sizeof stray, "%s/consolidated.safetensors", f->dir);
    assert_int_equal(link(path, stray), 0);
    sl_err err = { { 0 } };
    sl_model *m = sl_model_load(f->dir, &err);
    if (!m)
        fail_msg("%s", err.msg);
    sl_model_free(m);
    cleanup(f);
}

static void index_names_a_missing_shard(void **state)
{
    folder *f = make("Qwen2ForCausalLM");
    write_folder(f);
    write_index(f, "model-00009-of-00009.safetensors");
    sl_err err = { { 0 } };
    assert_null(sl_model_load(f->dir, &err));
    assert_non_null(strstr(err.msg, "model-00009-of-00009.safetensors"));
    cleanup(f);
}

static void missing_config(void **state)
{
    folder *f = make("Qwen2ForCausalLM");
    write_folder(f);
    char path[128];
    snprintf(path, sizeof path, "%s/config.json", f->dir);
    unlink(path);
    sl_err err = { { 0 } };
    assert_null(sl_model_load(f->dir, &err));
    assert_non_null(strstr(err.msg, path));
    cleanup(f);
}

static void no_safetensors(void **state)
{
    folder *f = make("Qwen2ForCausalLM");
    json_object_clear(f->tensors[0]);
    expect_error(f, "no *.safetensors", "/tmp/sl-model-test-", NULL);
}

static void unsupported_architecture(void **state)
{
    folder *f = make("Qwen2ForCausalLM");
    json_object_set_new(f->config, "architectures", json_pack("[s]", "MistralForCausalLM"));
    expect_error(f, "config.json", "MistralForCausalLM", "not supported", NULL);
}

static void unsupported_rope_scaling(void **state)
{
    folder *f = make("LlamaForCausalLM");
    json_object_set_new(f->config, "rope_scaling", json_pack("{s:s,s:f}", "type", "yarn",
                                                             "factor", 4.0));
    expect_error(f, "config.json", "yarn", NULL);
}

static void missing_required_key(void **state)
{
    folder *f = make("LlamaForCausalLM");
    json_object_del(f->config, "vocab_size");
    expect_error(f, "config.json", "vocab_size", NULL);
}

static void unsupported_dtype(void **state)
{
    folder *f = make("LlamaForCausalLM");
    add(f, 0, "model.layers.0.self_attn.k_proj.weight", "I8", NKV * HD, H);
    expect_error(f, "model.safetensors", "model.layers.0.self_attn.k_proj.weight", "I8", NULL);
}

static void missing_tensor(void **state)
{
    folder *f = make("LlamaForCausalLM");
    json_object_del(f->tensors[0], "model.layers.0.self_attn.v_proj.weight");
    expect_error(f, "model.layers.0.self_attn.v_proj.weight", "missing", NULL);
}

static void missing_lm_head_when_untied(void **state)
{
    folder *f = make("LlamaForCausalLM");
    json_object_del(f->tensors[0], "lm_head.weight");
    expect_error(f, "lm_head.weight", NULL);
}

static void missing_bias(void **state)
{
    folder *f = make("Qwen2ForCausalLM");
    json_object_del(f->tensors[0], "model.layers.0.self_attn.k_proj.bias");
    expect_error(f, "model.layers.0.self_attn.k_proj.bias", NULL);
}

static void wrong_shape(void **state)
{
    folder *f = make("Qwen2ForCausalLM");
    add(f, 0, "model.layers.0.self_attn.q_proj.weight", "F32", H, 2 * H);
    expect_error(f, "model.safetensors", "model.layers.0.self_attn.q_proj.weight",
                 "[8, 16]", "[8, 8]", NULL);
}

static void duplicate_tensor_across_shards(void **state)
{
    folder *f = make("Qwen2ForCausalLM");
    add(f, 1, "model.norm.weight", "F32", H, 0);
    expect_error(f, "model.norm.weight", "model.safetensors", "model-00002-of-00002", NULL);
}

static void truncated_file(void **state)
{
    folder *f = make("Qwen2ForCausalLM");
    write_folder(f);
    char path[128];
    snprintf(path, sizeof path, "%s/model.safetensors", f->dir);
    FILE *fp = fopen(path, "r+b");
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fclose(fp);
    assert_int_equal(truncate(path, n - 10), 0);
    sl_err err = { { 0 } };
    assert_null(sl_model_load(f->dir, &err));
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "truncated"));
    cleanup(f);
}

static void not_a_safetensors_file(void **state)
{
    folder *f = make("Qwen2ForCausalLM");
    write_folder(f);
    char path[128];
    snprintf(path, sizeof path, "%s/model.safetensors", f->dir);
    FILE *fp = fopen(path, "wb");
    fputs("this is not a safetensors file at all", fp);
    fclose(fp);
    sl_err err = { { 0 } };
    assert_null(sl_model_load(f->dir, &err));
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "not a safetensors file"));
    cleanup(f);
}

/* config.json as the published DeepSeek-R1-Distill models write it (config only). */
static void reads_real_model_configs(void **state)
{
    char dir[64] = "/tmp/sl-model-cfg-XXXXXX", path[96];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    fputs("{\"architectures\": [\"Qwen2ForCausalLM\"], \"attention_dropout\": 0.0, "
          "\"bos_token_id\": 151643, \"eos_token_id\": 151643, \"hidden_act\": \"silu\", "
          "\"hidden_size\": 1536, \"initializer_range\": 0.02, \"intermediate_size\": 8960, "
          "\"max_position_embeddings\": 131072, \"max_window_layers\": 21, "
          "\"model_type\": \"qwen2\", \"num_attention_heads\": 12, "
          "\"num_hidden_layers\": 28, \"num_key_value_heads\": 2, \"rms_norm_eps\": 1e-06, "
          "\"rope_scaling\": null, \"rope_theta\": 10000, \"sliding_window\": 4096, "
          "\"tie_word_embeddings\": false, \"torch_dtype\": \"bfloat16\", "
          "\"use_cache\": true, \"use_mrope\": false, \"use_sliding_window\": false, "
          "\"vocab_size\": 151936}", f);
    fclose(f);
    sl_model_config c;
    sl_err err = { { 0 } };
    if (sl_model_config_load(dir, &c, &err) < 0)
        fail_msg("%s", err.msg);
    assert_int_equal(c.arch, SL_ARCH_QWEN2);
    assert_int_equal(c.head_dim, 128);
    assert_int_equal(c.num_kv_heads, 2);
    assert_true(c.attention_bias && !c.tie_word_embeddings);
    assert_true(c.rope_theta == 10000.0f && c.rope_scaling_factor == 0);
    assert_int_equal(c.bos_token_id, 151643);
    assert_int_equal(c.n_eos, 1);
    f = fopen(path, "w");
    fputs("{\"architectures\": [\"LlamaForCausalLM\"], \"attention_bias\": false, "
          "\"bos_token_id\": 128000, \"eos_token_id\": 128001, \"hidden_act\": \"silu\", "
          "\"hidden_size\": 4096, \"intermediate_size\": 14336, "
          "\"max_position_embeddings\": 131072, \"mlp_bias\": false, "
          "\"model_type\": \"llama\", \"num_attention_heads\": 32, "
          "\"num_hidden_layers\": 32, \"num_key_value_heads\": 8, \"pretraining_tp\": 1, "
          "\"rms_norm_eps\": 1e-05, \"rope_scaling\": {\"factor\": 8.0, "
          "\"high_freq_factor\": 4.0, \"low_freq_factor\": 1.0, "
          "\"original_max_position_embeddings\": 8192, \"rope_type\": \"llama3\"}, "
          "\"rope_theta\": 500000.0, \"tie_word_embeddings\": false, "
          "\"torch_dtype\": \"bfloat16\", \"vocab_size\": 128256}", f);
    fclose(f);
    if (sl_model_config_load(dir, &c, &err) < 0)
        fail_msg("%s", err.msg);
    assert_int_equal(c.arch, SL_ARCH_LLAMA);
    assert_int_equal(c.head_dim, 128);
    assert_false(c.attention_bias);
    assert_true(c.rope_theta == 500000.0f && c.rope_scaling_factor == 8.0f);
    assert_int_equal(c.rope_original_max_pos, 8192);
    assert_int_equal(c.eos_token_ids[0], 128001);
    unlink(path);
    rmdir(dir);
}

static void converts_bf16_f16_f32(void **state)
{
    uint16_t bf[3] = { 0x3f80, 0xc040, 0x0000 };          /* 1, -3, 0 */
    uint16_t hf[4] = { 0x3c00, 0xc200, 0x0001, 0x7bff };  /* 1, -3, 2^-24, 65504 */
    float f32[2] = { 1.5f, -2.25f }, out[4];
    sl_tensor t = { .dtype = SL_DTYPE_BF16, .data = bf };
    sl_tensor_to_f32(&t, 0, 3, out);
    assert_true(out[0] == 1.0f && out[1] == -3.0f && out[2] == 0.0f);
    t = (sl_tensor){ .dtype = SL_DTYPE_F16, .data = hf };
    sl_tensor_to_f32(&t, 0, 4, out);
    assert_true(out[0] == 1.0f && out[1] == -3.0f && out[2] == 0x1p-24f && out[3] == 65504.0f);
    t = (sl_tensor){ .dtype = SL_DTYPE_F32, .data = f32 };
    sl_tensor_to_f32(&t, 1, 1, out);
    assert_true(out[0] == -2.25f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(loads_qwen2),
        cmocka_unit_test(loads_llama_sharded_with_legacy_rope),
        cmocka_unit_test(index_names_the_shards),
        cmocka_unit_test(index_names_a_missing_shard),
        cmocka_unit_test(missing_config),
        cmocka_unit_test(no_safetensors),
        cmocka_unit_test(unsupported_architecture),
        cmocka_unit_test(unsupported_rope_scaling),
        cmocka_unit_test(missing_required_key),
        cmocka_unit_test(unsupported_dtype),
        cmocka_unit_test(missing_tensor),
        cmocka_unit_test(missing_lm_head_when_untied),
        cmocka_unit_test(missing_bias),
        cmocka_unit_test(wrong_shape),
        cmocka_unit_test(duplicate_tensor_across_shards),
        cmocka_unit_test(truncated_file),
        cmocka_unit_test(not_a_safetensors_file),
        cmocka_unit_test(reads_real_model_configs),
        cmocka_unit_test(converts_bf16_f16_f32),
    };
    return cmocka_run_group_tests_name("model_load", tests, NULL, NULL);
}
