/* An OpenAI generation request (/v1/chat/completions or /v1/completions), parsed and
 * validated. Pure: no model needed, so the unit tests drive it directly. */
#ifndef SL_REQUEST_H
#define SL_REQUEST_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "api_error.h"
#include "sampling.h"

typedef enum sl_req_kind { SL_REQ_CHAT, SL_REQ_COMPLETION } sl_req_kind;

#define SL_REQ_MAX_STOP 16

typedef struct sl_request {
    sl_req_kind kind;
    json_t *root;                    /* the parsed body; the pointers below point into it */
    const char *model;               /* NULL when absent */
    const json_t *messages;          /* chat: non-empty array of {role, content} objects */
    const char *prompt;              /* completion */
    size_t prompt_len;
    int max_tokens;                  /* -1 when absent */
    sl_sampling_params sampling;
    const char *stop[SL_REQ_MAX_STOP];
    int n_stop;
    bool stream;
    bool include_usage;
} sl_request;

/* Parse and validate len bytes of JSON body. On error fills *err (400 with the offending
 * param) and returns -1; *r then holds nothing to free. On success release with
 * sl_request_clear. */
int sl_request_parse(sl_req_kind kind, const char *body, size_t len, sl_request *r,
                     sl_api_error *err);
void sl_request_clear(sl_request *r);

#endif
