/* Token counting in the gateway, with the engine's byte-level BPE tokenizer (engine/text),
 * for prompt estimates at admission and for completions whose upstream reported no usage.
 * Tokenizers are loaded once per path and kept for the life of the process. Without one,
 * counts fall back to an upper-bound estimate of one token per 3 bytes. */
#ifndef SL_TOKEN_COUNT_H
#define SL_TOKEN_COUNT_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "err.h"
#include "plugin.h"

struct sl_tokenizer;

/* Main thread (config load). NULL path → NULL (the estimate), no error. */
const struct sl_tokenizer *sl_token_counter_get(const char *path, sl_err *err);

int64_t sl_token_count(const struct sl_tokenizer *tok, const char *text, size_t len);

/* Prompt tokens of a request body, an upper bound of what the upstream will count: the
 * messages (and tools) as JSON text, or prompt / input. */
int64_t sl_token_estimate_prompt(const struct sl_tokenizer *tok, sl_endpoint ep, const json_t *body);

/* The same, and sl_token_request_cap, of a request read into a view (json_view.h): equal to
 * theirs of the tree jansson reads of that text. */
struct sl_jview;
int64_t sl_token_estimate_prompt_view(const struct sl_tokenizer *tok, sl_endpoint ep, const struct sl_jview *v);
int64_t sl_token_request_cap_view(const struct sl_jview *v);

/* sl_token_estimate_prompt of the exchange's request body, worked out once for both the
 * rate limit and the quota: again only where the tokenizer differs or a plugin may have
 * changed the body since (it took it with sl_ex_body). */
int64_t sl_ex_prompt_estimate(sl_exchange *ex, const struct sl_tokenizer *tok);

/* The completion cap the request asks for (max_completion_tokens, max_tokens), or 0. */
int64_t sl_token_request_cap(const json_t *body);

/* The generated text in a response event or body (chat deltas/messages: content,
 * reasoning_content, tool-call arguments; completions: text), appended to *buf (grown
 * with realloc; *len its length). */
void sl_token_collect_text(const json_t *event, char **buf, size_t *len, size_t *cap);
/* The same, read from an event's view (json_view.h) as summed up (plugin.h; NULL: nothing). */
struct sl_resp_summary;
void sl_token_collect_view(const struct sl_jview *v, const struct sl_resp_summary *sum, char **buf, size_t *len,
                           size_t *cap);

#endif
