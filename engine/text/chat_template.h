/* Chat templates for the model families sluice serves, chosen from the model's own
 * tokenizer_config.json (its chat_template and bos/eos tokens): DeepSeek-R1-Distill
 * (Qwen and Llama variants), Qwen ChatML, Llama 3. The output equals what Hugging Face's
 * jinja2 rendering of the real template produces for the same messages. */
#ifndef SL_CHAT_TEMPLATE_H
#define SL_CHAT_TEMPLATE_H

#include <stdbool.h>
#include <jansson.h>

#include "err.h"

typedef enum sl_template_kind {
    SL_TEMPLATE_DEEPSEEK_R1,   /* <｜User｜>/<｜Assistant｜>, drops <think> from history */
    SL_TEMPLATE_CHATML,        /* Qwen <|im_start|> ... <|im_end|> */
    SL_TEMPLATE_LLAMA3,        /* <|start_header_id|> ... <|eot_id|> */
} sl_template_kind;

typedef struct sl_chat_template sl_chat_template;

/* Read tokenizer_config.json and recognise its template. Caller frees. */
sl_chat_template *sl_chat_template_load(const char *tokenizer_config_path, sl_err *err);
void sl_chat_template_free(sl_chat_template *t);
sl_template_kind sl_chat_template_kind(const sl_chat_template *t);

/* Render an OpenAI messages array (role/content; content may be a string or an array of
 * {type:"text"} parts) to the prompt text, including the BOS token as the template writes
 * it. *out is malloc'd, caller frees. Returns 0 or -1 with err (bad role, bad content). */
int sl_chat_template_render(const sl_chat_template *t, const json_t *messages,
                            bool add_generation_prompt, char **out, sl_err *err);

/* The template's tokens as text (bos_token / eos_token of tokenizer_config.json, "" when
 * it names none) and the token that ends an assistant turn in this family
 * (<｜end▁of▁sentence｜>, <|im_end|>, <|eot_id|>). Ids come from the tokenizer:
 * sl_tokenizer_token_id(). The strings live as long as t. Generation should stop on
 * both eos and end-of-turn. */
const char *sl_chat_template_bos_token(const sl_chat_template *t);
const char *sl_chat_template_eos_token(const sl_chat_template *t);
const char *sl_chat_template_end_of_turn(const sl_chat_template *t);

/* True when the model thinks in <think>...</think> first (DeepSeek-R1 family): the
 * server splits that part into reasoning_content. */
bool sl_chat_template_is_reasoning(const sl_chat_template *t);

/* Streaming split of generated text into reasoning and content, as vLLM's deepseek_r1
 * parser does: text before </think> is reasoning (a leading <think> is dropped), text
 * after it is content. Holds back a possible partial tag across pushes. */
typedef struct sl_reasoning_split {
    int state;            /* internal */
    char hold[16];
    size_t n_hold;
} sl_reasoning_split;

void sl_reasoning_split_init(sl_reasoning_split *s);
/* Feed len bytes; writes this push's reasoning and content from the start of the two
 * buffers (each at least len + 16 bytes) and sets their lengths. */
void sl_reasoning_split_push(sl_reasoning_split *s, const char *text, size_t len,
                             char *reasoning, size_t *n_reasoning,
                             char *content, size_t *n_content);
void sl_reasoning_split_finish(sl_reasoning_split *s, char *reasoning, size_t *n_reasoning,
                               char *content, size_t *n_content);

#endif
