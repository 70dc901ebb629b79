/* A Hugging Face model folder: config.json + *.safetensors (mmap'd, header parsed once).
 * Qwen2 and Llama are one code path; QKV bias, tied embeddings and GQA are flags. */
#ifndef SL_MODEL_H
#define SL_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

typedef enum sl_arch { SL_ARCH_QWEN2, SL_ARCH_LLAMA } sl_arch;
typedef enum sl_dtype { SL_DTYPE_F32, SL_DTYPE_F16, SL_DTYPE_BF16 } sl_dtype;

typedef struct sl_model_config {
    sl_arch arch;
    int hidden_size;
    int intermediate_size;
    int num_layers;
    int num_heads;
    int num_kv_heads;
    int head_dim;               /* hidden_size / num_heads unless config says otherwise */
    int vocab_size;
    int max_position_embeddings;
    float rope_theta;
    float rms_norm_eps;
    bool tie_word_embeddings;
    bool attention_bias;        /* q/k/v projections have bias (Qwen2) */
    /* Llama 3 rope_scaling (type "llama3"); factor 0 when absent. */
    float rope_scaling_factor, rope_low_freq_factor, rope_high_freq_factor;
    int rope_original_max_pos;
    int32_t bos_token_id;       /* -1 when absent */
    int32_t eos_token_ids[4];   /* from config.json (and generation_config.json) */
    int n_eos;
} sl_model_config;

/* One tensor as stored: points into the mmap'd file. */
typedef struct sl_tensor {
    const char *name;
    sl_dtype dtype;
    int ndim;
    int64_t shape[4];
    const void *data;
    size_t nbytes;
} sl_tensor;

typedef struct sl_layer_weights {
    const sl_tensor *input_norm, *post_attn_norm;
    const sl_tensor *q_proj, *k_proj, *v_proj, *o_proj;
    const sl_tensor *q_bias, *k_bias, *v_bias;       /* NULL unless attention_bias */
    const sl_tensor *gate_proj, *up_proj, *down_proj;
} sl_layer_weights;

typedef struct sl_model {
    sl_model_config cfg;
    char *dir;
    const sl_tensor *embed_tokens, *final_norm, *lm_head;   /* lm_head == embed when tied */
    sl_layer_weights *layers;                               /* cfg.num_layers */
    void *impl;                                             /* mmaps, tensor table */
} sl_model;

/* Parse dir/config.json (and dir/generation_config.json's eos ids, if present) alone. */
int sl_model_config_load(const char *dir, sl_model_config *cfg, sl_err *err);

/* Load dir/config.json and every .safetensors file in dir; checks every tensor's presence, dtype
 * and shape against the config. Errors name the file and tensor. Caller frees. */
sl_model *sl_model_load(const char *dir, sl_err *err);
void sl_model_free(sl_model *m);

/* Convert n elements of a stored tensor to float32. */
void sl_tensor_to_f32(const sl_tensor *t, size_t offset, size_t n, float *out);

#endif
