/* OpenAI response bodies: whole responses, SSE chunks, the usage chunk, the model list.
 * Pure formatting; every function returns a malloc'd NUL-terminated string the caller
 * frees (NULL only when out of memory). */
#ifndef SL_RESP_H
#define SL_RESP_H

#include <stdbool.h>
#include <stddef.h>

#include "request.h"

typedef struct sl_resp_meta {
    sl_req_kind kind;
    char id[64];            /* chatcmpl-... / cmpl-... */
    long long created;      /* unix seconds */
    const char *model;
} sl_resp_meta;

typedef struct sl_usage {
    int prompt_tokens;
    int completion_tokens;
    int cached_tokens;      /* of prompt_tokens, reused from the engine's prefix cache */
} sl_usage;

/* Fills id (random hex after the kind's prefix) and created. */
void sl_resp_meta_init(sl_resp_meta *m, sl_req_kind kind, const char *model);

/* One text piece (len bytes; NULL/0 for none). */
typedef struct sl_text {
    const char *s;
    size_t len;
} sl_text;

/* Non-streamed response. reasoning.s == NULL leaves reasoning_content out. */
char *sl_resp_full(const sl_resp_meta *m, sl_text content, sl_text reasoning,
                   const char *finish_reason, sl_usage usage);

/* One SSE event "data: {...}\n\n". first: the chat delta carries role "assistant".
 * finish_reason NULL = null. Empty content/reasoning are left out of a chat delta. */
char *sl_resp_chunk(const sl_resp_meta *m, bool first, sl_text content, sl_text reasoning,
                    const char *finish_reason);
/* The usage event (choices: []). */
char *sl_resp_usage_chunk(const sl_resp_meta *m, sl_usage usage);
/* An error event inside a stream: "data: {"error":{...}}\n\n". */
char *sl_resp_error_chunk(const sl_api_error *e);
#define SL_SSE_DONE "data: [DONE]\n\n"

char *sl_resp_models(const char *model, long long created, int max_model_len);

#endif
