/* cache: exact-match response cache (SPEC policy 5). on_request looks the request up (memory,
 * or Redis while the exchange waits) and replays a hit in the shape the client asked for;
 * on a miss it captures the response events and, when the exchange ends complete and
 * unaltered, stores them. A stored entry is {"body": completion} or {"stream": [chunks]}.
 * Chat and completions are cached when deterministic (or mode: always); embeddings always.
 * Replays keep the stored id and created: they are the same answer, served again. */
#include "cache.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "json_dump.h"
#include "json_parse.h"
#include "json_view.h"
#include "str_copy.h"
#include "strbuf.h"

#define REDIS_MAX_ENTRY (8u << 20)

typedef struct cache_conf {
    long long ttl_ms;               /* 0 = no expiry (memory: LRU only) */
    bool scope_global;
    long long max_bytes;
    bool redis;
    bool always;                    /* mode: always (else only when temperature is 0) */
    bool charge_hits;
    char *redis_url, *redis_prefix;
    struct shared_mem *shared;      /* memory backend */
    sl_cache_mem *mem;              /* shared->mem */
} cache_conf;

typedef struct cache_state {
    cache_conf *conf;
    char key[320];                  /* memory: the hex digest; redis: prefix + "cache:" + digest */
    bool capture;                   /* a miss: keep what the upstream answers */
    bool failed;                    /* not storable (too big, an error event, not JSON) */
    bool stream, saw_usage, saw_finish, saw_data;
    size_t n_events, limit;
    size_t first_len;               /* the first event's bytes, after the entry's opening */
    sl_strbuf text;                 /* the entry being written (a growing string: an
                                       open_memstream zeroed 8 KiB a request);
                                       empty until the first event */
} cache_state;

extern const sl_plugin sl_plugin_cache;

/* ---- config ---- */

/* The memory cache outlives a config reload: the new config takes the current one when its
 * max_bytes is the same. Configs are freed from any thread, hence the lock. */
static pthread_mutex_t mem_lock = PTHREAD_MUTEX_INITIALIZER;
static struct shared_mem {
    sl_cache_mem *mem;
    long long max_bytes;
    int refs;
} *current_mem;

static struct shared_mem *mem_acquire(long long max_bytes)
{
    pthread_mutex_lock(&mem_lock);
    struct shared_mem *sm = current_mem;
    if (sm && sm->max_bytes == max_bytes) {
        sm->refs++;
    } else if ((sm = calloc(1, sizeof *sm)) && (sm->mem = sl_cache_mem_new((size_t)max_bytes, 0))) {
        sm->max_bytes = max_bytes;
        sm->refs = 1;
        current_mem = sm; /* the old one lives on while older configs use it */
    } else {
        free(sm);
        sm = NULL;
    }
    pthread_mutex_unlock(&mem_lock);
    return sm;
}

static void mem_release(struct shared_mem *sm)
{
    if (!sm)
        return;
    pthread_mutex_lock(&mem_lock);
    bool last = --sm->refs == 0;
    if (last && current_mem == sm)
        current_mem = NULL;
    pthread_mutex_unlock(&mem_lock);
    if (last) {
        sl_cache_mem_free(sm->mem);
        free(sm);
    }
}

static void cache_config_free(void *p)
{
    cache_conf *c = p;
    if (!c)
        return;
    mem_release(c->shared);
    free(c->redis_url);
    free(c->redis_prefix);
    free(c);
}

static int read_choice(const sl_ynode *map, const char *key, const char *a, const char *b, bool *is_b, sl_diag *d)
{
    const sl_ynode *n = sl_ymap_get(map, key);
    char *v = NULL;
    if (!n)
        return 0;
    if (sl_ynode_string(n, d, &v) < 0)
        return -1;
    int rc = 0;
    if (strcmp(v, a) == 0 || strcmp(v, b) == 0) {
        *is_b = strcmp(v, b) == 0;
    } else {
        char where[256];
        sl_diag_add(d, n, "%s: expected %s or %s (got \"%s\")", sl_ynode_path(n, where, sizeof where), a, b, v);
        rc = -1;
    }
    free(v);
    return rc;
}

static int cache_config_parse(const sl_ynode *node, sl_plugin_ctx *ctx, void **out)
{
    static const char *const keys[] = {"ttl", "scope", "max_bytes", "backend", "mode", "charge_hits", NULL};
    sl_diag *d = ctx->diag;
    cache_conf *c = calloc(1, sizeof *c);
    if (!c)
        return -1;
    *out = c;
    c->ttl_ms = 3600 * 1000LL;
    c->max_bytes = 64LL << 20;
    int rc = 0;
    if (node) {
        if (sl_ymap_check_keys(node, keys, d) < 0)
            return -1;
        const sl_ynode *n;
        if ((n = sl_ymap_get(node, "ttl")))
            rc |= sl_ynode_duration_ms(n, d, &c->ttl_ms);
        if ((n = sl_ymap_get(node, "max_bytes")))
            rc |= sl_ynode_size(n, d, &c->max_bytes);
        if ((n = sl_ymap_get(node, "charge_hits")))
            rc |= sl_ynode_bool(n, d, &c->charge_hits);
        rc |= read_choice(node, "scope", "consumer", "global", &c->scope_global, d);
        rc |= read_choice(node, "backend", "memory", "redis", &c->redis, d);
        rc |= read_choice(node, "mode", "deterministic", "always", &c->always, d);
        if (rc == 0 && (n = sl_ymap_get(node, "max_bytes")) && c->max_bytes < (64LL << 10)) {
            char where[256];
            sl_diag_add(d, n, "%s: at least 64KiB, so that one answer fits", sl_ynode_path(n, where, sizeof where));
            rc = -1;
        }
    }
    if (rc)
        return -1;
    const sl_config *cfg = ctx->config;
    if (c->redis) {
        if (!cfg->store.redis_url) {
            sl_diag_add(d, sl_ymap_get(node, "backend"),
                        "plugins.cache.backend: redis needs a Redis server: set store.redis.url "
                        "(and store.backend: redis)");
            return -1;
        }
        c->redis_url = strdup(cfg->store.redis_url);
        c->redis_prefix = strdup(cfg->store.redis_prefix ? cfg->store.redis_prefix : "sluice:");
        if (!c->redis_url || !c->redis_prefix)
            return -1;
    } else {
        if (!(c->shared = mem_acquire(c->max_bytes)))
            return -1;
        c->mem = c->shared->mem;
    }
    return 0;
}

sl_cache_mem *sl_cache_conf_mem(const void *plugin_conf) { return ((const cache_conf *)plugin_conf)->mem; }

/* ---- request side ---- */

static bool header_has_token(const char *v, const char *token)
{
    size_t n = strlen(token);
    for (const char *p = v; p && *p;) {
        while (*p == ' ' || *p == ',' || *p == '\t')
            p++;
        if (strncasecmp(p, token, n) == 0 && (p[n] == '\0' || p[n] == ',' || p[n] == ' ' || p[n] == ';'))
            return true;
        p = strchr(p, ',');
    }
    return false;
}

/* The consumer's allow-list names client-facing models (aliases included). */
static bool consumer_may_use(sl_exchange *ex, const sl_model_conf *model)
{
    const sl_consumer_conf *cc = sl_config_consumer(sl_ex_config(ex), sl_ex_consumer(ex));
    if (!cc || !cc->models)
        return true;
    for (size_t i = 0; i < cc->n_models; i++)
        if (strcmp(cc->models[i], sl_ex_model(ex)) == 0 || strcmp(cc->models[i], model->name) == 0)
            return true;
    return false;
}

/* Why this request is not looked up, or NULL when it is. */
static const char *bypass_reason(sl_exchange *ex, const cache_conf *c, const sl_model_conf **model)
{
    sl_endpoint ep = sl_ex_endpoint(ex);
    if (ep != SL_EP_CHAT && ep != SL_EP_COMPLETIONS && ep != SL_EP_EMBEDDINGS)
        return "endpoint";
    const char *cc = sl_ex_header(ex, "cache-control");
    if (cc && (header_has_token(cc, "no-cache") || header_has_token(cc, "no-store")))
        return "no-cache";
    *model = sl_config_model(sl_ex_config(ex), sl_ex_model(ex));
    if (!*model || !consumer_may_use(ex, *model))
        return "model"; /* route answers 404; a hit must not bypass that */
    if (c->always || ep == SL_EP_EMBEDDINGS) /* embeddings have no sampling */
        return NULL;
    const sl_jview *v = sl_ex_request_view(ex);
    if (v) {
        int t = sl_jview_get(v, 0, "temperature");
        double d;
        if (sl_jview_number(v, t, &d))
            return d == 0 ? NULL : "temperature";
        if (t >= 0 && sl_jview_type(v, t) != SL_JV_NULL)
            return "temperature";
    } else {
        json_t *t = json_object_get(sl_ex_body_view(ex), "temperature");
        if (json_is_number(t))
            return json_number_value(t) == 0 ? NULL : "temperature";
        if (t && !json_is_null(t))
            return "temperature";
    }
    const sl_profile_conf *p = &(*model)->profile;
    return p->has_temperature && p->temperature == 0 ? NULL : "temperature";
}

static void mark(sl_exchange *ex, const char *what)
{
    sl_ex_add_response_header(ex, "x-sluice-cache", what);
    sl_ex_log_field(ex, "cache", json_string(what));
}

static void state_free(cache_state *s)
{
    if (!s)
        return;
    free(s->text.s);
    free(s);
}

static void replay_stream(sl_exchange *ex, json_t *chunks)
{
    bool want_usage = sl_ex_client_wants_usage(ex);
    sl_ex_stream_begin(ex);
    size_t i;
    json_t *chunk;
    json_array_foreach(chunks, i, chunk) {
        if (!want_usage) {
            if (sl_cache_is_usage_chunk(chunk))
                continue;
            json_object_del(chunk, "usage"); /* the null usage of chunks streamed with usage */
        }
        sl_ex_emit_event(ex, chunk);
    }
    sl_ex_stream_end(ex);
}

static const json_t *entry_usage(const json_t *entry)
{
    const json_t *u = json_object_get(json_object_get(entry, "body"), "usage");
    size_t i;
    json_t *chunk;
    const json_t *stream = json_object_get(entry, "stream"); /* the macro reads it each turn */
    json_array_foreach(stream, i, chunk) {
        json_t *cu = json_object_get(chunk, "usage");
        if (json_is_object(cu))
            u = cu;
    }
    return json_is_object(u) ? u : NULL;
}

/* Serve a stored entry; false (nothing sent) when it cannot be read. */
static bool replay(sl_exchange *ex, cache_state *s, const char *text, size_t len)
{
    json_t *entry = sl_json_loadb(text, len, 0, NULL);
    json_t *body = json_object_get(entry, "body"), *chunks = json_object_get(entry, "stream");
    if (!json_is_object(body) && !json_is_array(chunks)) {
        json_decref(entry);
        return false;
    }
    sl_endpoint ep = sl_ex_endpoint(ex);
    mark(ex, "hit");
    sl_ex_log_field(ex, "cache_charge", json_boolean(s->conf->charge_hits));
    const json_t *u = entry_usage(entry);
    if (u) { /* what was served, for the access log (and the quota plugin when charge_hits) */
        json_t *pt = json_object_get(u, "prompt_tokens"), *ct = json_object_get(u, "completion_tokens");
        if (json_is_integer(pt))
            sl_ex_log_field(ex, "prompt_tokens", json_incref(pt));
        if (json_is_integer(ct))
            sl_ex_log_field(ex, "completion_tokens", json_incref(ct));
    }
    if (sl_ex_stream(ex)) {
        json_t *seq = chunks ? json_incref(chunks) : sl_cache_to_chunks(body, ep, sl_ex_client_wants_usage(ex));
        replay_stream(ex, seq);
        json_decref(seq);
    } else {
        json_t *out = body ? json_incref(body) : sl_cache_assemble(chunks, ep);
        if (out)
            sl_ex_respond_json(ex, 200, out);
        else
            sl_ex_respond_error(ex, 500, "api_error", "internal_error", NULL, "cache: could not rebuild the answer");
    }
    json_decref(entry);
    return true;
}

static sl_step miss(sl_exchange *ex, cache_state *s)
{
    /* the core asks streams for usage and hides it from clients that did not ask; the
     * entry keeps it (finish_entry) for clients that ask later */
    mark(ex, "miss");
    s->capture = true;
    s->limit = s->conf->redis ? REDIS_MAX_ENTRY : sl_cache_mem_max_entry(s->conf->mem);
    return SL_STEP_CONTINUE;
}

static void on_redis_reply(void *arg, const char *val, size_t len)
{
    sl_exchange *ex = arg;
    cache_state *s = sl_ex_plugin_state(ex, &sl_plugin_cache);
    if (!s) { /* the exchange ended while Redis answered */
        sl_ex_resume(ex, SL_STEP_CONTINUE);
        return;
    }
    if (val && replay(ex, s, val, len)) {
        sl_ex_resume(ex, SL_STEP_RESPOND);
        return;
    }
    sl_ex_resume(ex, miss(ex, s));
}

static sl_step cache_on_request(sl_exchange *ex, void *conf)
{
    cache_conf *c = conf;
    sl_endpoint ep = sl_ex_endpoint(ex);
    if (ep == SL_EP_MODELS || ep == SL_EP_OTHER)
        return SL_STEP_CONTINUE;
    const sl_model_conf *model = NULL;
    const char *why = bypass_reason(ex, c, &model);
    cache_state *s = why ? NULL : calloc(1, sizeof *s);
    char hex[65];
    sl_err err;
    err.msg[0] = '\0'; /* sl_cache_key fills it on failure; not cleared whole on every request */
    const char *scope = c->scope_global ? NULL : sl_ex_consumer(ex);
    const sl_jview *v = s ? sl_ex_request_view(ex) : NULL;
    if (s && (v ? sl_cache_key_view(v, model->name, ep, scope, hex, &err)
                : sl_cache_key(sl_ex_body_view(ex), model->name, ep, scope, hex, &err)) < 0) {
        sl_ex_log_field(ex, "cache_error", json_string(err.msg));
        free(s);
        s = NULL;
    }
    if (!s) {
        mark(ex, "bypass");
        if (why)
            sl_ex_log_field(ex, "cache_bypass", json_string(why));
        return SL_STEP_CONTINUE;
    }
    s->conf = c;
    if (c->redis)
        snprintf(s->key, sizeof s->key, "%scache:%s", c->redis_prefix, hex);
    else
        sl_str_put(s->key, sizeof s->key, 0, hex);
    sl_ex_set_plugin_state(ex, &sl_plugin_cache, s);

    if (c->redis) {
        if (sl_cache_redis_get(sl_ex_base(ex), c->redis_url, s->key, on_redis_reply, ex) == 0)
            return SL_STEP_PENDING;
        return miss(ex, s);
    }
    size_t len = 0;
    char *val = sl_cache_mem_get(c->mem, s->key, sl_cache_now_ms(), &len);
    bool hit = val && replay(ex, s, val, len);
    free(val);
    return hit ? SL_STEP_RESPOND : miss(ex, s);
}

/* ---- response side ---- */

#define STREAM_OPEN "{\"stream\":["

/* Adds one event: its text as the upstream wrote it when given (JSON already parsed once),
 * else json serialised. */
/* What the last stream this thread captured came to: the next one reserves about that much
 * at its first event (a deployment's answers are much alike in length), not a copy at every
 * doubling on the way there. */
static _Thread_local size_t last_stream_bytes;

static void append_event(cache_state *s, const json_t *json, const char *text, size_t text_len)
{
    size_t n = text_len;
    char *t = text ? NULL : sl_json_dumps(json, &n);
    if (!text && !t) {
        s->failed = true;
        return;
    }
    const char *open = s->stream ? STREAM_OPEN : "{\"body\":";
    if (!s->text.cap) { /* a stream's first event: room for what the last stream came to (or a
                           dozen events like this one), not a realloc an event, nor a shrink at the end */
        size_t room = s->stream ? n * 16 + 64 : n + 16;
        if (s->stream && last_stream_bytes)
            room = last_stream_bytes + last_stream_bytes / 8 + 16;
        room = room < s->limit ? room : s->limit;
        char *t = malloc(room + 1);
        if (t)
            s->text = (sl_strbuf){t, 0, room + 1};
    }
    if (s->text.len + n + 16 > s->limit ||
        (!s->text.len && sl_strbuf_add(&s->text, open, strlen(open)) < 0) ||
        (s->stream && s->n_events && sl_strbuf_add(&s->text, ",", 1) < 0) ||
        sl_strbuf_add(&s->text, text ? text : t, n) < 0) {
        s->failed = true;
    } else {
        if (!s->n_events++)
            s->first_len = n;
    }
    free(t);
}

static void note_finish(cache_state *s, const json_t *choices)
{
    size_t i;
    json_t *c;
    json_array_foreach(choices, i, c)
        if (json_is_string(json_object_get(c, "finish_reason")))
            s->saw_finish = true;
}

/* What an event or a whole answer (not embeddings) tells the entry, read through its view:
 * false where the entry cannot be kept (an error). */
static bool note_event_view(cache_state *s, const sl_jview *v, const sl_resp_summary *sum, bool stream)
{
    if (!sum || sum->error >= 0)
        return false;
    for (size_t i = 0; i < sum->n; i++)
        if (sl_jview_type(v, sum->c[i].finish_reason) == SL_JV_STRING)
            s->saw_finish = true;
    s->saw_usage |= stream && sl_jview_type(v, sum->usage) == SL_JV_OBJECT;
    return true;
}

/* The same, read from the event's tree (a whole answer, or an event the view cannot read). */
static bool note_event_json(sl_exchange *ex, cache_state *s, const sl_resp_event *ev, const json_t *json)
{
    if (!json_is_object(json) || json_object_get(json, "error"))
        return false;
    /* what makes the entry whole: embeddings' data, else a finish_reason */
    json_t *choices = json_object_get(json, "choices");
    if (sl_ex_endpoint(ex) == SL_EP_EMBEDDINGS)
        s->saw_data |= json_is_array(json_object_get(json, "data"));
    else
        note_finish(s, choices);
    /* usage on a chunk of its own or on the last content chunk (as DeepSeek's API sends it):
     * either way the entry has it, and finish_entry must not add a second */
    s->saw_usage |= ev->stream && json_is_object(json_object_get(json, "usage"));
    return true;
}

static sl_event_action cache_on_event(sl_exchange *ex, void *conf, sl_resp_event *ev)
{
    (void)conf;
    cache_state *s = sl_ex_plugin_state(ex, &sl_plugin_cache);
    if (!s || !s->capture || s->failed || ev->done)
        return SL_EVENT_PASS;
    s->stream = ev->stream;
    const sl_jview *v = sl_ex_endpoint(ex) != SL_EP_EMBEDDINGS ? sl_resp_event_view(ev) : NULL;
    if (ev->status < 200 || ev->status >= 300 ||
        !(v ? note_event_view(s, v, sl_resp_event_summary(ev), ev->stream)
            : note_event_json(ex, s, ev, sl_resp_event_json(ev)))) {
        s->failed = true;
        return SL_EVENT_PASS;
    }
    size_t n = 0;
    const char *text = sl_resp_event_text(ev, &n); /* shared with what goes to the client */
    append_event(s, ev->json, text, n);
    return SL_EVENT_PASS;
}

/* The entry's text, or NULL when what was captured is not a whole answer. */
static const char *finish_entry(sl_exchange *ex, cache_state *s)
{
    bool whole = sl_ex_endpoint(ex) == SL_EP_EMBEDDINGS ? s->saw_data : s->saw_finish;
    if (s->failed || !s->n_events || !whole)
        return NULL;
    if (s->stream && !s->saw_usage && sl_ex_usage(ex)) {
        /* the core hid the usage chunk from this client before the hooks: keep it anyway */
        /* from the first event as the entry holds it (rare: no tree kept for it before) */
        json_t *chunk = sl_resp_chunk_like(s->text.s + strlen(STREAM_OPEN), s->first_len);
        if (!chunk)
            return NULL;
        json_object_set_new(chunk, "choices", json_array());
        json_object_set(chunk, "usage", (json_t *)sl_ex_usage(ex));
        append_event(s, chunk, NULL, 0);
        json_decref(chunk);
    }
    const char *close = s->stream ? "]}" : "}";
    if (s->failed || sl_strbuf_add(&s->text, close, strlen(close)) < 0)
        return NULL;
    if (s->stream)
        last_stream_bytes = s->text.len;
    if (s->text.cap > 2 * s->text.len + 64) { /* reserved for a longer one: the entry is counted at its size */
        char *t = realloc(s->text.s, s->text.len + 1);
        if (t) {
            s->text.s = t;
            s->text.cap = s->text.len + 1;
        }
    }
    return s->text.s;
}

static void cache_on_complete(sl_exchange *ex, void *conf)
{
    cache_conf *c = conf;
    cache_state *s = sl_ex_plugin_state(ex, &sl_plugin_cache);
    if (!s)
        return;
    sl_ex_set_plugin_state(ex, &sl_plugin_cache, NULL);
    const char *text = s->capture && sl_ex_complete(ex) ? finish_entry(ex, s) : NULL;
    if (text && c->redis)
        sl_cache_redis_set(sl_ex_base(ex), c->redis_url, s->key, text, s->text.len, c->ttl_ms);
    else if (text) { /* the entry takes the text */
        sl_cache_mem_put_owned(c->mem, s->key, s->text.s, s->text.len, s->text.cap, c->ttl_ms, sl_cache_now_ms());
        s->text = (sl_strbuf){0};
    }
    state_free(s);
}

const sl_plugin sl_plugin_cache = {
    .name = "cache",
    .api_version = SL_PLUGIN_API_VERSION,
    .config_parse = cache_config_parse,
    .config_free = cache_config_free,
    .on_request = cache_on_request,
    .wants_events = true,
    .on_response_event = cache_on_event,
    .on_complete = cache_on_complete,
};
