/* Model profiles: defaults and limits a model's config sets on requests before they leave. */
#include "profile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static char *content_text(const json_t *content)
{
    if (json_is_string(content))
        return strdup(json_string_value(content));
    if (!json_is_array(content))
        return strdup("");
    size_t i;
    json_t *part;
    char *out = strdup("");
    json_array_foreach(content, i, part) {
        json_t *t = json_object_get(part, "text");
        if (!json_is_string(t))
            continue;
        char *grown;
        if (asprintf(&grown, "%s%s%s", out, out[0] ? "\n" : "", json_string_value(t)) < 0)
            break;
        free(out);
        out = grown;
    }
    return out;
}

/* Fold system messages into the first user message, as DeepSeek-R1 asks. */
static void merge_system(json_t *messages)
{
    char *sys = NULL;
    for (size_t i = 0; i < json_array_size(messages);) {
        json_t *m = json_array_get(messages, i);
        json_t *role = json_object_get(m, "role");
        if (json_is_string(role) && (strcmp(json_string_value(role), "system") == 0 ||
                                     strcmp(json_string_value(role), "developer") == 0)) {
            char *t = content_text(json_object_get(m, "content"));
            char *joined;
            if (asprintf(&joined, "%s%s%s", sys ? sys : "", sys ? "\n\n" : "", t ? t : "") >= 0) {
                free(sys);
                sys = joined;
            }
            free(t);
            json_array_remove(messages, i);
            continue;
        }
        i++;
    }
    if (!sys)
        return;
    for (size_t i = 0; i < json_array_size(messages); i++) {
        json_t *m = json_array_get(messages, i);
        json_t *role = json_object_get(m, "role");
        if (json_is_string(role) && strcmp(json_string_value(role), "user") == 0) {
            char *t = content_text(json_object_get(m, "content"));
            char *joined;
            if (asprintf(&joined, "%s\n\n%s", sys, t ? t : "") >= 0) {
                json_object_set_new(m, "content", json_string(joined));
                free(joined);
            }
            free(t);
            free(sys);
            return;
        }
    }
    json_array_insert_new(messages, 0, json_pack("{s:s, s:s}", "role", "user", "content", sys));
    free(sys);
}

bool sl_profile_is_empty(const sl_profile_conf *p)
{
    return !p->has_temperature && !p->max_tokens && !p->max_tokens_limit && !p->system_prompt_merge &&
           !p->force_thinking;
}

void sl_profile_apply(const sl_profile_conf *p, sl_endpoint ep, json_t *body)
{
    if (ep != SL_EP_CHAT && ep != SL_EP_COMPLETIONS)
        return;
    if (p->has_temperature && !json_object_get(body, "temperature"))
        json_object_set_new(body, "temperature", json_real(p->temperature));
    const char *key = json_object_get(body, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
    json_t *mt = json_object_get(body, key);
    if (!json_is_integer(mt) && p->max_tokens > 0)
        json_object_set_new(body, "max_tokens", json_integer(p->max_tokens));
    else if (json_is_integer(mt) && p->max_tokens_limit > 0 && json_integer_value(mt) > p->max_tokens_limit)
        json_object_set_new(body, key, json_integer(p->max_tokens_limit));
    json_t *messages = json_object_get(body, "messages");
    if (ep != SL_EP_CHAT || !json_is_array(messages))
        return;
    if (p->system_prompt_merge)
        merge_system(messages);
    if (p->force_thinking) {
        json_t *last = json_array_get(messages, json_array_size(messages) - 1);
        json_t *role = json_object_get(last, "role");
        if (!json_is_string(role) || strcmp(json_string_value(role), "assistant") != 0) {
            json_array_append_new(messages, json_pack("{s:s, s:s, s:b}", "role", "assistant", "content", "<think>\n",
                                                      "prefix", 1));
            json_object_set_new(body, "continue_final_message", json_true());
            json_object_set_new(body, "add_generation_prompt", json_false());
        }
    }
}

