/* Model profiles (models.NAME.profile): default temperature, default and maximum
 * max_tokens, system_prompt: merge (fold system messages into the first user message, as
 * DeepSeek-R1 asks), force_thinking (an assistant prefill "<think>\n" with
 * continue_final_message, as vLLM and sluice-engine take it). */
#ifndef SL_PROFILE_H
#define SL_PROFILE_H

#include <stdbool.h>
#include <jansson.h>

#include "config.h"
#include "json_view.h"
#include "plugin.h"

bool sl_profile_is_empty(const sl_profile_conf *p);
/* Applies p to a request body of endpoint ep, in place. */
void sl_profile_apply(const sl_profile_conf *p, sl_endpoint ep, json_t *body);
/* The same as edits of the text of a request read into view v (its top-level object): the
 * text they make reads as the tree sl_profile_apply makes of it. */
struct sl_text_edits;
void sl_profile_apply_view(const sl_profile_conf *p, sl_endpoint ep, const sl_jview *v, struct sl_text_edits *t);

#endif
