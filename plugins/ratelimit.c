/* ratelimit: requests per minute and tokens per minute per consumer (or per consumer and
 * model with rate.per_model), atomic in the store (GCRA). Admission checks one request
 * and the prompt's tokens; the completion's tokens are added when the exchange ends. The
 * OpenAI x-ratelimit-* headers go on every response; a refusal is a 429 with Retry-After. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "config_int.h"
#include "fmt_int.h"
#include "log.h"
#include "plugin.h"
#include "store.h"
#include "str_copy.h"
#include "token_count.h"

extern const sl_plugin sl_plugin_ratelimit;

typedef struct rl_conf {
    const struct sl_tokenizer *tok;
} rl_conf;

typedef struct rl_state {
    sl_exchange *ex;
    const sl_consumer_conf *cc;
    char key[300];
    int64_t prompt;
    bool pending;           /* a store call is out */
    bool completed;         /* the exchange ended meanwhile */
} rl_state;

/* The exchange ended while the store was answering: drop the state, release the hold. */
static bool orphaned(rl_state *s)
{
    if (!s->completed)
        return false;
    sl_exchange *ex = s->ex;
    free(s);
    sl_ex_resume(ex, SL_STEP_RESPOND);
    return true;
}

static void resume(rl_state *s, sl_step step)
{
    s->pending = false;
    sl_ex_resume(s->ex, step);
}

/* what: "requests" or "tokens" */
static void headers(sl_exchange *ex, const char *what, const sl_rate_result *r)
{
    bool req = what[0] == 'r';
    char v[SL_FMT_INT_MAX + 2];
    sl_fmt_int(v, (long long)r->limit);
    sl_ex_add_response_header(ex, req ? "x-ratelimit-limit-requests" : "x-ratelimit-limit-tokens", v);
    sl_fmt_int(v, (long long)(r->remaining > 0 ? r->remaining : 0));
    sl_ex_add_response_header(ex, req ? "x-ratelimit-remaining-requests" : "x-ratelimit-remaining-tokens", v);
    memcpy(v + sl_fmt_int(v, (long long)r->reset_ms), "ms", 3);
    sl_ex_add_response_header(ex, req ? "x-ratelimit-reset-requests" : "x-ratelimit-reset-tokens", v);
}

/* Answers the exchange when the store says no; true when it did (then s is detached from
 * the exchange, which has ended: the caller resumes and frees it). */
static bool refused(rl_state *s, sl_store_status st, const sl_rate_result *r, const sl_err *err, const char *what)
{
    sl_exchange *ex = s->ex;
    if (st == SL_STORE_OK)
        return false;
    sl_ex_set_plugin_state(ex, &sl_plugin_ratelimit, NULL);
    if (st == SL_STORE_DENIED) {
        char ra[32];
        snprintf(ra, sizeof ra, "%lld", (long long)((r->retry_after_ms + 999) / 1000));
        sl_ex_add_response_header(ex, "Retry-After", ra);
        sl_ex_log_field(ex, "ratelimit", json_string(what));
        sl_ex_respond_error(ex, 429, "rate_limit_error", "rate_limit_exceeded", NULL,
                            "Rate limit reached for %s: limit %lld %s per minute. Please try again in %llds.",
                            s->cc->name, (long long)r->limit, what, (long long)((r->retry_after_ms + 999) / 1000));
    } else {
        sl_log_warn("ratelimit: store: %s", err && err->msg[0] ? err->msg : sl_store_status_name(st));
        sl_ex_respond_error(ex, 503, "api_error", "store_unavailable", NULL,
                            "the gateway cannot check rate limits right now; retry shortly");
    }
    return true;
}

static void tokens_checked(void *arg, sl_store_status st, const sl_rate_result *r, const sl_err *err)
{
    rl_state *s = arg;
    if (orphaned(s))
        return;
    if (r)
        headers(s->ex, "tokens", r);
    if (refused(s, st, r, err, "tokens")) {
        resume(s, SL_STEP_RESPOND);
        free(s);
        return;
    }
    resume(s, SL_STEP_CONTINUE);
}

static void check_tokens(rl_state *s)
{
    char k[320];
    sl_str_put(k, sizeof k, sl_str_put(k, sizeof k, 0, "tpm:"), s->key);
    sl_store_rate(sl_ex_store(s->ex), k, s->cc->tpm, s->prompt > 0 ? s->prompt : 1, SL_RATE_CHECK, tokens_checked, s);
}

static void requests_checked(void *arg, sl_store_status st, const sl_rate_result *r, const sl_err *err)
{
    rl_state *s = arg;
    if (orphaned(s))
        return;
    if (r)
        headers(s->ex, "requests", r);
    if (refused(s, st, r, err, "requests")) {
        resume(s, SL_STEP_RESPOND);
        free(s);
        return;
    }
    if (s->cc->tpm > 0)
        check_tokens(s);
    else
        resume(s, SL_STEP_CONTINUE);
}

static sl_step rl_on_request(sl_exchange *ex, void *conf)
{
    rl_conf *rc = conf;
    sl_endpoint ep = sl_ex_endpoint(ex);
    if (ep != SL_EP_CHAT && ep != SL_EP_COMPLETIONS && ep != SL_EP_EMBEDDINGS)
        return SL_STEP_CONTINUE;
    const sl_consumer_conf *cc = sl_ex_consumer(ex) ? sl_config_consumer(sl_ex_config(ex), sl_ex_consumer(ex)) : NULL;
    if (!cc || (cc->rpm <= 0 && cc->tpm <= 0))
        return SL_STEP_CONTINUE;
    rl_state *s = calloc(1, sizeof *s);
    if (!s)
        return SL_STEP_CONTINUE;
    s->ex = ex;
    s->cc = cc;
    if (cc->rate_per_model)
        sl_str_put(s->key, sizeof s->key, sl_str_put(s->key, sizeof s->key, sl_str_put(s->key, sizeof s->key, 0, cc->name), ":"),
                   sl_ex_model(ex));
    else
        sl_str_put(s->key, sizeof s->key, 0, cc->name);
    s->prompt = sl_ex_prompt_estimate(ex, rc->tok);
    sl_ex_set_plugin_state(ex, &sl_plugin_ratelimit, s);
    s->pending = true;
    if (cc->rpm > 0) {
        char k[320];
        sl_str_put(k, sizeof k, sl_str_put(k, sizeof k, 0, "rpm:"), s->key);
        sl_store_rate(sl_ex_store(ex), k, cc->rpm, 1, SL_RATE_CHECK, requests_checked, s);
    } else {
        check_tokens(s);
    }
    return SL_STEP_PENDING;
}

static void ignore_rate(void *arg, sl_store_status st, const sl_rate_result *r, const sl_err *err)
{
    (void)arg;
    (void)st;
    (void)r;
    (void)err;
}

static void rl_on_complete(sl_exchange *ex, void *conf)
{
    (void)conf;
    rl_state *s = sl_ex_plugin_state(ex, &sl_plugin_ratelimit);
    if (!s)
        return;
    sl_ex_set_plugin_state(ex, &sl_plugin_ratelimit, NULL);
    if (s->pending) {
        s->completed = true; /* the callback frees it */
        return;
    }
    const json_t *ct = json_object_get(sl_ex_usage(ex), "completion_tokens");
    if (s->cc->tpm > 0 && json_is_integer(ct) && json_integer_value(ct) > 0) {
        char k[320];
        sl_str_put(k, sizeof k, sl_str_put(k, sizeof k, 0, "tpm:"), s->key);
        sl_store_rate(sl_ex_store(ex), k, s->cc->tpm, json_integer_value(ct), SL_RATE_ADD, ignore_rate, NULL);
    }
    free(s);
}

static void rl_free(void *conf) { free(conf); }

static int rl_parse(const sl_ynode *node, sl_plugin_ctx *ctx, void **out)
{
    static const char *const keys[] = {"tokenizer", NULL};
    rl_conf *rc = calloc(1, sizeof *rc);
    if (!rc)
        return -1;
    *out = rc;
    if (!node || sl_ynode_is_null(node))
        return 0;
    int r = sl_ymap_check_keys(node, keys, ctx->diag);
    char *path = NULL;
    r |= sl_cfg_str(node, "tokenizer", ctx->diag, &path);
    if (path) {
        sl_err err = {{0}};
        if (!(rc->tok = sl_token_counter_get(path, &err)))
            sl_diag_warn(ctx->diag, sl_ymap_get(node, "tokenizer"),
                         "plugins: ratelimit.tokenizer: %s; counting by the estimate (1 token per 3 bytes)", err.msg);
        free(path);
    }
    return r ? -1 : 0;
}

const sl_plugin sl_plugin_ratelimit = {
    .name = "ratelimit",
    .api_version = SL_PLUGIN_API_VERSION,
    .config_parse = rl_parse,
    .config_free = rl_free,
    .on_request = rl_on_request,
    .on_complete = rl_on_complete,
};
