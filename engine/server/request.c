#include "request.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* Optional number field within [lo, hi]; leaves *out untouched when absent or null. */
static int get_number(const json_t *root, const char *key, double lo, double hi, double *out,
                      sl_api_error *err)
{
    const json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_number(v)) {
        sl_api_error_bad(err, key, "'%s' must be a number", key);
        return -1;
    }
    double d = json_number_value(v);
    if (!isfinite(d) || d < lo || d > hi) {
        sl_api_error_bad(err, key, "'%s' must be between %g and %g, got %g", key, lo, hi, d);
        return -1;
    }
    *out = d;
    return 0;
}

static int get_int(const json_t *root, const char *key, long long lo, long long hi,
                   long long *out, sl_api_error *err)
{
    const json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_integer(v)) {
        sl_api_error_bad(err, key, "'%s' must be an integer", key);
        return -1;
    }
    long long i = json_integer_value(v);
    if (i < lo || i > hi) {
        sl_api_error_bad(err, key, "'%s' must be between %lld and %lld, got %lld", key, lo, hi, i);
        return -1;
    }
    *out = i;
    return 0;
}

static int get_bool(const json_t *root, const char *key, bool *out, sl_api_error *err)
{
    const json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_boolean(v)) {
        sl_api_error_bad(err, key, "'%s' must be true or false", key);
        return -1;
    }
    *out = json_is_true(v);
    return 0;
}

static int add_stop(sl_request *r, const json_t *s, sl_api_error *err)
{
    if (!json_is_string(s)) {
        sl_api_error_bad(err, "stop", "'stop' must be a string or an array of strings");
        return -1;
    }
    if (json_string_length(s) == 0)
        return 0;
    if (r->n_stop == SL_REQ_MAX_STOP) {
        sl_api_error_bad(err, "stop", "'stop' takes at most %d strings", SL_REQ_MAX_STOP);
        return -1;
    }
    r->stop[r->n_stop++] = json_string_value(s);
    return 0;
}

static int parse_stop(sl_request *r, sl_api_error *err)
{
    const json_t *v = json_object_get(r->root, "stop");
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_array(v))
        return add_stop(r, v, err);
    size_t i;
    const json_t *s;
    json_array_foreach(v, i, s)
        if (add_stop(r, s, err) < 0)
            return -1;
    return 0;
}

static int parse_messages(sl_request *r, sl_api_error *err)
{
    const json_t *m = json_object_get(r->root, "messages");
    if (!m || json_is_null(m)) {
        sl_api_error_bad(err, "messages", "'messages' is required");
        return -1;
    }
    if (!json_is_array(m) || json_array_size(m) == 0) {
        sl_api_error_bad(err, "messages", "'messages' must be a non-empty array");
        return -1;
    }
    size_t i;
    const json_t *msg;
    json_array_foreach(m, i, msg) {
        if (!json_is_object(msg) || !json_is_string(json_object_get(msg, "role"))) {
            sl_api_error_bad(err, "messages", "messages[%zu] must be an object with a string 'role'", i);
            return -1;
        }
    }
    r->messages = m;
    return 0;
}

/* prompt: a string, or an array holding exactly one string. */
static int parse_prompt(sl_request *r, sl_api_error *err)
{
    const json_t *p = json_object_get(r->root, "prompt");
    if (json_is_array(p) && json_array_size(p) == 1)
        p = json_array_get(p, 0);
    if (!p || json_is_null(p)) {
        sl_api_error_bad(err, "prompt", "'prompt' is required");
        return -1;
    }
    if (!json_is_string(p)) {
        sl_api_error_bad(err, "prompt", "'prompt' must be a string (or an array of one string)");
        return -1;
    }
    if (json_string_length(p) == 0) {
        sl_api_error_bad(err, "prompt", "'prompt' must not be empty");
        return -1;
    }
    r->prompt = json_string_value(p);
    r->prompt_len = json_string_length(p);
    return 0;
}

static int parse_fields(sl_request *r, sl_api_error *err)
{
    const json_t *model = json_object_get(r->root, "model");
    if (model && !json_is_null(model)) {
        if (!json_is_string(model)) {
            sl_api_error_bad(err, "model", "'model' must be a string");
            return -1;
        }
        r->model = json_string_value(model);
    }
    if (r->kind == SL_REQ_CHAT ? parse_messages(r, err) : parse_prompt(r, err))
        return -1;

    long long n = 1;
    if (get_int(r->root, "n", 1, 1 << 20, &n, err))
        return -1;
    if (n != 1) {
        sl_api_error_bad(err, "n", "only n=1 is supported");
        return -1;
    }

    long long max_tokens = -1;
    if (get_int(r->root, "max_tokens", 1, 1 << 30, &max_tokens, err) ||
        get_int(r->root, "max_completion_tokens", 1, 1 << 30, &max_tokens, err))
        return -1;
    r->max_tokens = (int)max_tokens;

    double temperature = 1.0, top_p = 1.0, presence = 0, frequency = 0;
    long long top_k = 0, seed = 0;
    if (get_number(r->root, "temperature", 0, 2, &temperature, err) ||
        get_number(r->root, "top_p", 0, 1, &top_p, err) ||
        get_int(r->root, "top_k", -1, 1 << 30, &top_k, err) ||
        get_number(r->root, "presence_penalty", -2, 2, &presence, err) ||
        get_number(r->root, "frequency_penalty", -2, 2, &frequency, err) ||
        get_int(r->root, "seed", INT64_MIN, INT64_MAX, &seed, err))
        return -1;
    if (top_p <= 0) {
        sl_api_error_bad(err, "top_p", "'top_p' must be greater than 0");
        return -1;
    }
    const json_t *seed_v = json_object_get(r->root, "seed");
    r->sampling = (sl_sampling_params){
        .temperature = (float)temperature,
        .top_p = (float)top_p,
        .top_k = top_k < 0 ? 0 : (int)top_k,
        .presence_penalty = (float)presence,
        .frequency_penalty = (float)frequency,
        .seed = (uint64_t)seed,
        .has_seed = seed_v && !json_is_null(seed_v),
    };

    if (parse_stop(r, err) || get_bool(r->root, "stream", &r->stream, err))
        return -1;
    const json_t *so = json_object_get(r->root, "stream_options");
    if (so && !json_is_null(so)) {
        if (!json_is_object(so)) {
            sl_api_error_bad(err, "stream_options", "'stream_options' must be an object");
            return -1;
        }
        if (get_bool(so, "include_usage", &r->include_usage, err))
            return -1;
    }
    if (!r->stream)
        r->include_usage = false;
    return 0;
}

int sl_request_parse(sl_req_kind kind, const char *body, size_t len, sl_request *r,
                     sl_api_error *err)
{
    memset(r, 0, sizeof *r);
    r->kind = kind;
    json_error_t jerr;
    r->root = json_loadb(body, len, 0, &jerr);
    if (!r->root) {
        sl_api_error_bad(err, NULL, "request body is not valid JSON: %s (line %d, column %d)",
                         jerr.text, jerr.line, jerr.column);
        return -1;
    }
    if (!json_is_object(r->root)) {
        sl_api_error_bad(err, NULL, "request body must be a JSON object");
        goto fail;
    }
    if (parse_fields(r, err) < 0)
        goto fail;
    return 0;
fail:
    sl_request_clear(r);
    return -1;
}

void sl_request_clear(sl_request *r)
{
    json_decref(r->root);
    memset(r, 0, sizeof *r);
}
