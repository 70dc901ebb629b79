/* Fuzz target: what the gateway does with an OpenAI request body — parse it as the
 * exchange does (object, model string, stream boolean), apply a model profile (defaults,
 * system-prompt merge, thinking prefill), add stream_options.include_usage as proxy.c does,
 * estimate prompt tokens and the completion cap (quota), compute the cache key, and turn a
 * body into replayed chunks and back (cache). The first byte picks the endpoint. The body is
 * also read and written by the gateway's own JSON reader/writer: both must agree with jansson
 * (and what the quota counts of it, read through the view, with what it counts in the tree);
 * and read into a tree of its own shape (sl_json_reload), it must come out the same. Read
 * through a view as the exchange reads requests, its estimates, cap and cache key must be
 * the tree's. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "cache/cache.h"
#include "json_dump.h"
#include "json_parse.h"
#include "json_view.h"
#include "plugin.h"
#include "profile.h"
#include "text_edits.h"
#include "token_count.h"

/* The view reads only what jansson reads (flags 0: duplicate keys allowed, the last kept),
 * into the same value; what the quota counts through it is what it counts in the tree; and
 * a member added through it leaves it as reading the new text would. */
static void check_view(const char *text, size_t len)
{
    static sl_jview v;
    if (sl_jview_read(&v, text, len) < 0)
        return;
    json_t *want = json_loadb(text, len, 0, NULL), *got = sl_jview_json(&v, 0);
    if (!want || !json_equal(want, got))
        abort();
    json_decref(got);
    /* the quota's count of an event read through its view's summary (plugin.h) is its
     * count read from the tree */
    static sl_jview ev_view;
    static sl_resp_summary sum;
    sl_resp_event ev = {.stream = true, .status = 200, .text = text, .text_len = len, .view = &ev_view,
                        .summary = &sum};
    char *a = NULL, *b = NULL;
    size_t al = 0, bl = 0, acap = 0, bcap = 0;
    sl_token_collect_view(sl_resp_event_view(&ev), sl_resp_event_summary(&ev), &a, &al, &acap);
    sl_token_collect_text(want, &b, &bl, &bcap);
    if (al != bl || (al && memcmp(a, b, al) != 0))
        abort();
    free(a);
    free(b);
    json_decref(want);
    /* a member added through the view to the last object in the text: the view's tokens are
     * then those of reading the new text */
    int obj = -1;
    for (uint32_t i = 0; i < v.n; i++)
        if (v.tok[i].type == SL_JV_OBJECT)
            obj = (int)i;
    if (obj < 0)
        return;
    size_t at = v.tok[obj].end - 1, comma = v.tok[obj].size > 0;
    char *t2 = malloc(len + 16);
    memcpy(t2, text, at);
    memcpy(t2 + at, &",\"k\":\"v\""[!comma], 7 + comma);
    memcpy(t2 + at + 7 + comma, text + at, len - at);
    size_t len2 = len + 7 + comma;
    sl_jv_span ks = {at + comma, at + comma + 3}, vs = {at + comma + 4, at + comma + 7};
    static sl_jview fresh;
    if (sl_jview_member_added(&v, obj, t2, len2, ks, "k", 1, vs, "v", 1) < 0 || sl_jview_read(&fresh, t2, len2) < 0 ||
        fresh.n != v.n)
        abort();
    for (uint32_t i = 0; i < v.n; i++) {
        const sl_jv_tok *x = &v.tok[i], *y = &fresh.tok[i];
        size_t xn = 0, yn = 0;
        const char *xs = sl_jview_str(&v, (int)i, &xn), *ys = sl_jview_str(&fresh, (int)i, &yn);
        if (x->type != y->type || x->start != y->start || x->end != y->end || x->next != y->next ||
            x->size != y->size || x->escaped != y->escaped || (xs && (xn != yn || memcmp(xs, ys, xn) != 0)))
            abort();
    }
    free(t2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    check_view((const char *)data + 1, size - 1);
    sl_endpoint ep = (sl_endpoint)(data[0] % 3); /* chat, completions, embeddings */
    json_error_t jerr;
    json_t *body = json_loadb((const char *)data + 1, size - 1, JSON_REJECT_DUPLICATES, &jerr);
    /* the gateway's own reader and writer must agree with jansson's, value for value */
    json_error_t ferr;
    json_t *fast = sl_json_loadb((const char *)data + 1, size - 1, JSON_REJECT_DUPLICATES, &ferr);
    if (!body != !fast || (!body && strcmp(jerr.text, ferr.text) != 0))
        abort();
    if (body) {
        char *x = json_dumps(body, JSON_COMPACT), *y = sl_json_dumps(fast, NULL), *z = sl_json_dumps(body, NULL);
        if (!x || !y || !z || strcmp(x, y) != 0 || strcmp(x, z) != 0 || !json_equal(body, fast))
            abort();
        free(x);
        free(y);
        free(z);
        /* a stream's next event read into the last one's tree: the input read into a tree of
         * its own shape comes out as the same value, and so does one read into a chunk's */
        static const char chunk[] = "{\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"},\"finish_reason\":null}]}";
        json_t *into = sl_json_loadb(chunk, sizeof chunk - 1, 0, NULL);
        if (sl_json_reload(into, (const char *)data + 1, size - 1, NULL) && !json_equal(into, body))
            abort();
        json_decref(into);
        if (sl_json_reload(fast, (const char *)data + 1, size - 1, NULL) && !json_equal(fast, body))
            abort(); /* (a number the reader leaves to jansson, past 18 digits, refuses) */
    }
    json_decref(fast);
    /* the request read through a view, as the exchange reads it: a duplicate key is seen where
     * jansson sees one (an object past 64 members is left to jansson), and what the quota,
     * the rate limit and the cache make of it is what they make of the tree */
    static sl_jview rv;
    if (sl_jview_read(&rv, (const char *)data + 1, size - 1) == 0) {
        bool large = false;
        for (uint32_t i = 0; i < rv.n; i++)
            large |= rv.tok[i].type == SL_JV_OBJECT && rv.tok[i].size > 64;
        int unique = sl_jview_keys_unique(&rv);
        if ((unique && !body) || (!unique && body && !large))
            abort();
        if (unique && json_is_object(body)) {
            char h1[65], h2[65];
            sl_err e1, e2;
            if (sl_token_estimate_prompt_view(NULL, ep, &rv) != sl_token_estimate_prompt(NULL, ep, body) ||
                sl_token_request_cap_view(&rv) != sl_token_request_cap(body) ||
                sl_cache_key_view(&rv, "m", ep, "acme", h1, &e1) < 0 || sl_cache_key(body, "m", ep, "acme", h2, &e2) < 0 ||
                strcmp(h1, h2) != 0)
                abort();
        }
    }
    if (!body)
        return 0;
    json_t *model = json_object_get(body, "model");
    json_t *stream = json_object_get(body, "stream");
    if (!json_is_object(body) || !json_is_string(model) || (stream && !json_is_boolean(stream) && !json_is_null(stream))) {
        json_decref(body);
        return 0;
    }
    char *model_name = strdup(json_string_value(model));

    sl_token_estimate_prompt(NULL, ep, body);
    sl_token_request_cap(body);
    char hex[65];
    sl_err err;
    sl_cache_key(body, model_name, ep, (data[0] & 0x80) ? NULL : "acme", hex, &err);

    sl_profile_conf prof = {.has_temperature = true, .temperature = 0.6, .max_tokens = 512, .max_tokens_limit = 1024,
                            .system_prompt_merge = true, .force_thinking = (data[0] & 0x40) != 0};
    json_t *req = json_deep_copy(body);
    sl_profile_apply(&prof, ep, req);
    json_object_set_new(req, "model", json_string("upstream-model"));
    /* the same profile as edits of the text (what goes upstream from a viewed request) reads
     * as that tree */
    if (sl_jview_read(&rv, (const char *)data + 1, size - 1) == 0 && sl_jview_keys_unique(&rv)) {
        sl_text_edits t;
        sl_strbuf edit_buf = {0};
        sl_text_edits_init(&t, &rv, &edit_buf);
        sl_text_edit_member(&t, "model", "\"upstream-model\"", 16);
        sl_profile_apply_view(&prof, ep, &rv, &t);
        sl_upstream_part parts[2 * SL_TEXT_EDITS_MAX + 1];
        int n = sl_text_edits_parts(&t, parts, 2 * SL_TEXT_EDITS_MAX + 1);
        sl_strbuf out = {0};
        for (int i = 0; i < n; i++)
            sl_strbuf_add(&out, parts[i].s, parts[i].len);
        json_t *edited = n > 0 ? json_loadb(out.s, out.len, 0, NULL) : NULL;
        if (!edited || !json_equal(edited, req))
            abort();
        json_decref(edited);
        free(out.s);
        free(edit_buf.s);
    }
    if (json_is_true(stream)) {
        json_t *so = json_object_get(req, "stream_options");
        if (!json_is_object(so)) {
            so = json_object();
            json_object_set_new(req, "stream_options", so);
        }
        json_object_set_new(so, "include_usage", json_true());
    }
    free(json_dumps(req, JSON_COMPACT));
    free(sl_cache_canonical(req));

    /* the same bytes read as an upstream's answer: counted, replayed as chunks, reassembled */
    char *text = NULL;
    size_t tlen = 0, tcap = 0;
    sl_token_collect_text(body, &text, &tlen, &tcap);
    free(text);
    json_t *chunks = sl_cache_to_chunks(body, ep, true);
    if (chunks) {
        size_t i;
        json_t *ch;
        json_array_foreach(chunks, i, ch) {
            sl_cache_is_usage_chunk(ch);
        }
        json_t *again = sl_cache_assemble(chunks, ep);
        json_decref(again);
        json_decref(chunks);
    }
    json_decref(req);
    json_decref(body);
    free(model_name);
    return 0;
}
