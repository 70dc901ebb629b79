/* Model profiles: defaults and limits a model's config sets on requests before they leave. */
#include "profile.h"
#include "json_dump.h"
#include "text_edits.h"

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


/* ---- the same on a request's text (a view of it) ---- */

static bool role_is(const sl_jview *v, int m, const char *role)
{
    size_t n;
    const char *s = sl_jview_str(v, sl_jview_get(v, m, "role"), &n);
    return s && n == strlen(role) && memcmp(s, role, n) == 0;
}

/* content_text of a message's content token, appended to b. */
static int add_content_text(sl_strbuf *b, const sl_jview *v, int content)
{
    size_t n;
    const char *s = sl_jview_str(v, content, &n);
    if (s)
        return sl_strbuf_add(b, s, n);
    size_t base = b->len; /* parts joined by a newline once the text so far is not empty */
    for (int part = sl_jview_items(v, content); part >= 0; part = sl_jview_next(v, content, part)) {
        if (!(s = sl_jview_str(v, sl_jview_get(v, part, "text"), &n)))
            continue;
        if ((b->len > base && sl_strbuf_add(b, "\n", 1) < 0) || sl_strbuf_add(b, s, n) < 0)
            return -1;
    }
    return 0;
}

static void add_json(sl_strbuf *b, json_t *x, int *failed)
{
    if (!x || sl_json_dump(b, x) < 0)
        *failed = 1;
    json_decref(x);
}

/* The messages array written again (merge_system, then the thinking prefill) into b. */
static int messages_edited(const sl_profile_conf *p, const sl_jview *v, int messages, sl_strbuf *b)
{
    sl_strbuf sys = {0};
    bool have_sys = false;
    int failed = 0, user = -1, last = -1;
    if (p->system_prompt_merge)
        for (int m = sl_jview_items(v, messages); m >= 0; m = sl_jview_next(v, messages, m)) {
            if (role_is(v, m, "system") || role_is(v, m, "developer")) {
                if (have_sys)
                    failed |= sl_strbuf_add(&sys, "\n\n", 2);
                failed |= sl_strbuf_add(&sys, "", 0) | add_content_text(&sys, v, sl_jview_get(v, m, "content"));
                have_sys = true;
            } else if (user < 0 && role_is(v, m, "user")) {
                user = m;
            }
        }
    failed |= sl_strbuf_add(b, "[", 1);
    bool any = false;
    if (have_sys && user < 0) { /* no user message: the system text becomes one, first */
        static const char head[] = "{\"role\":\"user\",\"content\":";
        failed |= sl_strbuf_add(b, head, sizeof head - 1);
        failed |= sl_json_dump_string(b, sys.s, sys.len) | sl_strbuf_add(b, "}", 1);
        any = true;
        last = -2; /* a user message */
    }
    for (int m = sl_jview_items(v, messages); m >= 0; m = sl_jview_next(v, messages, m)) {
        if (have_sys && (role_is(v, m, "system") || role_is(v, m, "developer")))
            continue;
        if (any)
            failed |= sl_strbuf_add(b, ",", 1);
        any = true;
        last = m;
        const sl_jv_tok *t = &v->tok[m];
        if (m != user || !have_sys) {
            failed |= sl_strbuf_add(b, v->text + t->start, t->end - t->start);
            continue;
        }
        /* the first user message with the system text before its own */
        sl_strbuf joined = {0};
        failed |= sl_strbuf_add(&joined, sys.s, sys.len) | sl_strbuf_add(&joined, "\n\n", 2) |
                  add_content_text(&joined, v, sl_jview_get(v, m, "content"));
        json_t *msg = sl_jview_json(v, m);
        json_object_set_new(msg, "content", json_stringn(joined.s ? joined.s : "", joined.len));
        add_json(b, msg, &failed);
        free(joined.s);
    }
    bool prefill = p->force_thinking && !(last >= 0 && role_is(v, last, "assistant"));
    if (prefill) {
        if (any)
            failed |= sl_strbuf_add(b, ",", 1);
        static const char think[] = "{\"role\":\"assistant\",\"content\":\"<think>\\n\",\"prefix\":true}";
        failed |= sl_strbuf_add(b, think, sizeof think - 1);
    }
    failed |= sl_strbuf_add(b, "]", 1);
    free(sys.s);
    return failed ? -1 : prefill;
}

static void set_member(struct sl_text_edits *t, const char *key, json_t *value)
{
    sl_strbuf b = {0};
    int failed = 0;
    add_json(&b, value, &failed);
    if (failed)
        t->failed = 1;
    else
        sl_text_edit_member(t, key, b.s, b.len);
    free(b.s);
}

void sl_profile_apply_view(const sl_profile_conf *p, sl_endpoint ep, const sl_jview *v, struct sl_text_edits *t)
{
    if (ep != SL_EP_CHAT && ep != SL_EP_COMPLETIONS)
        return;
    if (p->has_temperature && sl_jview_get(v, 0, "temperature") < 0)
        set_member(t, "temperature", json_real(p->temperature));
    const char *key = sl_jview_get(v, 0, "max_completion_tokens") >= 0 ? "max_completion_tokens" : "max_tokens";
    long long mt;
    bool is_int = sl_jview_int(v, sl_jview_get(v, 0, key), &mt);
    if (!is_int && p->max_tokens > 0)
        set_member(t, "max_tokens", json_integer(p->max_tokens));
    else if (is_int && p->max_tokens_limit > 0 && mt > p->max_tokens_limit)
        set_member(t, key, json_integer(p->max_tokens_limit));
    int messages = sl_jview_get(v, 0, "messages");
    if (ep != SL_EP_CHAT || sl_jview_type(v, messages) != SL_JV_ARRAY || (!p->system_prompt_merge && !p->force_thinking))
        return;
    sl_strbuf b = {0};
    int prefill = messages_edited(p, v, messages, &b);
    if (prefill < 0)
        t->failed = 1;
    else
        sl_text_edit_span(t, v->tok[messages].start, v->tok[messages].end, b.s, b.len);
    free(b.s);
    if (prefill > 0) {
        sl_text_edit_member(t, "continue_final_message", "true", 4);
        sl_text_edit_member(t, "add_generation_prompt", "false", 5);
    }
}
