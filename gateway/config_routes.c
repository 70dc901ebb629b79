/* The routing part of the config: upstreams, models (targets, aliases, fallbacks,
 * profiles) and consumers, with every reference between them checked. */
#include "config_int.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void sl_cfg_free_upstream(sl_upstream_conf *u)
{
    free(u->name);
    free(u->base_url);
    free(u->api_key_env);
    free(u->api_key);
    for (size_t i = 0; i < u->n_headers; i++) {
        free(u->headers[i].name);
        free(u->headers[i].value);
    }
    free(u->headers);
    free(u->model_dir);
    free(u->served_model_name);
    for (int i = 0; u->gpus && i < u->workers; i++)
        free(u->gpus[i]);
    free(u->gpus);
    free(u->n_gpus);
    free(u->backend);
    sl_cfg_free_strings(u->args, u->n_args);
}

void sl_cfg_free_model(sl_model_conf *m)
{
    free(m->name);
    free(m->alias);
    for (size_t i = 0; i < m->n_targets; i++) {
        free(m->targets[i].upstream);
        free(m->targets[i].model);
    }
    free(m->targets);
    sl_cfg_free_strings(m->fallback, m->n_fallback);
}

void sl_cfg_free_consumer(sl_consumer_conf *k)
{
    free(k->name);
    sl_cfg_free_strings(k->models, k->n_models);
    free(k->jwt_alg);
    free(k->jwt_secret_env);
    free(k->jwt_secret);
    free(k->jwt_public_key);
    sl_cfg_free_strings(k->key_hashes, k->n_key_hashes);
}

/* A named section (upstreams, models, consumers) must be a map of NAME: {...}. */
static bool named_map(const sl_ynode *n, const char *what, sl_diag *d)
{
    if (!n || sl_ynode_is_null(n))
        return false;
    if (n->type != SL_Y_MAP) {
        sl_diag_add(d, n, "%s: expected a map of NAME: {...} (got a %s)", what,
                    n->type == SL_Y_SEQ ? "list" : "string");
        return false;
    }
    return true;
}

/* A name written twice: the loader reported it; the second is skipped. */
static bool seen_before(const sl_ynode *map, size_t i)
{
    for (size_t j = 0; j < i; j++)
        if (strcmp(map->keys[j]->scalar, map->keys[i]->scalar) == 0)
            return true;
    return false;
}

/* After "no upstream named 'x'": "did you mean 'y'?" when x is a typo of a name, else
 * "known: a, b, c". names: n strings. */
static void name_hint(char *buf, size_t size, const char *word, const char **names, size_t n)
{
    const char *near = names ? sl_closest_word(word, names) : NULL;
    if (near) {
        snprintf(buf, size, "did you mean '%s'?", near);
        return;
    }
    size_t off = (size_t)snprintf(buf, size, "known: %s", n ? "" : "none are defined");
    for (size_t i = 0; i < n && off < size; i++)
        off += (size_t)snprintf(buf + off, size - off, "%s%s", i ? ", " : "", names[i]);
}

/* NULL-terminated arrays of the names (pointing into c), for name_hint; caller frees. */
static const char **upstream_names(const sl_config *c)
{
    const char **v = calloc(c->n_upstreams + 1, sizeof *v);
    for (size_t i = 0; v && i < c->n_upstreams; i++)
        v[i] = c->upstreams[i].name;
    return v;
}

static const char **model_names(const sl_config *c)
{
    const char **v = calloc(c->n_models + 1, sizeof *v);
    for (size_t i = 0; v && i < c->n_models; i++)
        v[i] = c->models[i].name;
    return v;
}

/* ---- upstreams ---- */

static const char *const openai_keys[] = {"type", "base_url", "api_key_env", "headers", "timeouts",
                                          "pool_size", NULL};
static const char *const engine_keys[] = {"type", "model", "served_model_name", "workers", "gpus",
                                          "backend", "args", "prefix_affinity", NULL};
static const char *const timeout_keys[] = {"connect", "first_byte", "total", "stream_idle", NULL};

static int parse_headers(sl_upstream_conf *u, const sl_ynode *n, sl_diag *d)
{
    char w[512];
    if (sl_ynode_is_null(n))
        return 0;
    if (n->type != SL_Y_MAP) {
        sl_diag_add(d, n, "%sexpected a map of Header-Name: value", sl_cfg_where(n, w, sizeof w));
        return -1;
    }
    if (!(u->headers = calloc(n->n ? n->n : 1, sizeof *u->headers)))
        return -1;
    int rc = 0;
    for (size_t i = 0; i < n->n; i++) {
        const char *name = n->keys[i]->scalar;
        if (strcasecmp(name, "authorization") == 0 || strcasecmp(name, "api-key") == 0 ||
            strcasecmp(name, "x-api-key") == 0) {
            sl_diag_add(d, n->keys[i], "%sheader '%s' carries a secret and must not be written in the "
                        "file: put the key in an environment variable and name it with api_key_env",
                        sl_cfg_where(n, w, sizeof w), name);
            rc = -1;
            continue;
        }
        for (const char *p = name; *p; p++)
            if (*p <= ' ' || *p == ':' || *p >= 127) {
                sl_diag_add(d, n->keys[i], "%s'%s' is not a valid header name", sl_cfg_where(n, w, sizeof w), name);
                rc = -1;
                break;
            }
        sl_header_conf *h = &u->headers[u->n_headers];
        if (!(h->name = strdup(name)))
            return -1;
        u->n_headers++;
        if (sl_ynode_string(n->items[i], d, &h->value) < 0)
            rc = -1;
    }
    return rc;
}

static int parse_openai(sl_upstream_conf *u, const sl_ynode *n, sl_diag *d)
{
    char w[512];
    int rc = sl_ymap_check_keys(n, openai_keys, d);
    u->connect_timeout_ms = 10000;
    u->first_byte_timeout_ms = 120000;
    u->total_timeout_ms = 600000;
    u->stream_idle_timeout_ms = 60000;
    u->pool_size = 64;
    const sl_ynode *b = sl_ymap_get(n, "base_url");
    if (!b) {
        sl_diag_add(d, n, "%sbase_url is missing (like https://api.deepseek.com/v1)", sl_cfg_where(n, w, sizeof w));
        rc = -1;
    } else if (sl_ynode_string(b, d, &u->base_url) < 0) {
        rc = -1;
    } else if (strncmp(u->base_url, "http://", 7) != 0 && strncmp(u->base_url, "https://", 8) != 0) {
        sl_diag_add(d, b, "%sexpected an http:// or https:// URL (got \"%s\")", sl_cfg_where(b, w, sizeof w),
                    u->base_url);
        rc = -1;
    } else {
        size_t len = strlen(u->base_url);
        while (len > 8 && u->base_url[len - 1] == '/')
            u->base_url[--len] = '\0';
    }
    rc |= sl_cfg_env(n, "api_key_env", d, &u->api_key_env, &u->api_key);
    const sl_ynode *h = sl_ymap_get(n, "headers");
    if (h)
        rc |= parse_headers(u, h, d);
    const sl_ynode *t = sl_cfg_section(n, "timeouts", timeout_keys, d);
    rc |= sl_cfg_duration(t, "connect", d, 1, &u->connect_timeout_ms);
    rc |= sl_cfg_duration(t, "first_byte", d, 1, &u->first_byte_timeout_ms);
    rc |= sl_cfg_duration(t, "total", d, 1, &u->total_timeout_ms);
    rc |= sl_cfg_duration(t, "stream_idle", d, 1, &u->stream_idle_timeout_ms);
    rc |= sl_cfg_int32(n, "pool_size", d, 1, 100000, &u->pool_size);
    return rc ? -1 : 0;
}

static int parse_gpus(sl_upstream_conf *u, const sl_ynode *g, bool workers_given, sl_diag *d)
{
    char w[512];
    if (g->type != SL_Y_SEQ || g->n == 0) {
        sl_diag_add(d, g, "%sexpected one list of GPU ids per worker, like [[0], [1]] or [[0, 1]]",
                    sl_cfg_where(g, w, sizeof w));
        return -1;
    }
    if (workers_given && (size_t)u->workers != g->n) {
        sl_diag_add(d, g, "%sgives %zu GPU list%s for %d worker%s: give one list per worker",
                    sl_cfg_where(g, w, sizeof w), g->n, g->n == 1 ? "" : "s", u->workers, u->workers == 1 ? "" : "s");
        return -1;
    }
    u->workers = (int)g->n;
    if (!(u->gpus = calloc(g->n, sizeof *u->gpus)) || !(u->n_gpus = calloc(g->n, sizeof *u->n_gpus)))
        return -1;
    int rc = 0;
    for (size_t i = 0; i < g->n; i++) {
        const sl_ynode *set = g->items[i];
        size_t count = set->type == SL_Y_SEQ ? set->n : 1;   /* [0, 1] means worker i on GPU i */
        if (set->type == SL_Y_MAP || count == 0) {
            sl_diag_add(d, set, "%sexpected a list of GPU ids like [0, 1]", sl_cfg_where(set, w, sizeof w));
            rc = -1;
            continue;
        }
        if (!(u->gpus[i] = calloc(count, sizeof **u->gpus)))
            return -1;
        u->n_gpus[i] = (int)count;
        for (size_t j = 0; j < count; j++) {
            long long id = 0;
            if (sl_ynode_int(set->type == SL_Y_SEQ ? set->items[j] : set, d, 0, 1023, &id) < 0)
                rc = -1;
            u->gpus[i][j] = (int)id;
        }
    }
    return rc;
}

static int parse_engine(sl_upstream_conf *u, const sl_ynode *n, sl_diag *d)
{
    static const char *const backends[] = {"auto", "cuda", "cpu", NULL};
    char w[512];
    int rc = sl_ymap_check_keys(n, engine_keys, d), backend = 0;
    u->workers = 1;
    u->prefix_affinity = 4;
    if (!sl_ymap_get(n, "model")) {
        sl_diag_add(d, n, "%smodel is missing (the model folder, like /models/DeepSeek-R1-Distill-Qwen-7B)",
                    sl_cfg_where(n, w, sizeof w));
        rc = -1;
    }
    rc |= sl_cfg_str(n, "model", d, &u->model_dir);
    rc |= sl_cfg_str(n, "served_model_name", d, &u->served_model_name);
    if (u->model_dir && !u->served_model_name) {
        char *dir = strdup(u->model_dir);
        if (!dir)
            return -1;
        size_t len = strlen(dir);
        while (len > 1 && dir[len - 1] == '/')
            dir[--len] = '\0';
        const char *base = strrchr(dir, '/');
        u->served_model_name = strdup(base ? base + 1 : dir);
        free(dir);
        if (!u->served_model_name)
            return -1;
    }
    rc |= sl_cfg_int32(n, "workers", d, 1, 1024, &u->workers);
    rc |= sl_cfg_int32(n, "prefix_affinity", d, 0, 100000, &u->prefix_affinity);
    const sl_ynode *g = sl_ymap_get(n, "gpus");
    if (g && !sl_ynode_is_null(g))
        rc |= parse_gpus(u, g, sl_ymap_get(n, "workers") != NULL, d);
    rc |= sl_cfg_enum(n, "backend", d, backends, &backend);
    if (!(u->backend = strdup(backends[backend])))
        return -1;
    const sl_ynode *a = sl_ymap_get(n, "args");
    if (a && !sl_ynode_is_null(a))
        rc |= sl_cfg_str_list(a, d, &u->args, &u->n_args);
    return rc ? -1 : 0;
}

int sl_cfg_upstreams(sl_config *c, const sl_ynode *node, sl_diag *d)
{
    static const char *const types[] = {"openai", "engine", NULL};
    if (!named_map(node, "upstreams", d))
        return node && !sl_ynode_is_null(node) ? -1 : 0;
    if (!(c->upstreams = calloc(node->n ? node->n : 1, sizeof *c->upstreams)))
        return -1;
    int rc = 0;
    for (size_t i = 0; i < node->n; i++) {
        if (node->keys[i]->type != SL_Y_SCALAR || seen_before(node, i))
            continue;
        sl_upstream_conf *u = &c->upstreams[c->n_upstreams];
        const sl_ynode *n = node->items[i];
        char w[512];
        if (!(u->name = strdup(node->keys[i]->scalar)))
            return -1;
        c->n_upstreams++;
        if (n->type != SL_Y_MAP) {
            sl_diag_add(d, n, "%sexpected a map like { type: openai, base_url: ... }", sl_cfg_where(n, w, sizeof w));
            rc = -1;
            continue;
        }
        int type = -1;
        if (!sl_ymap_get(n, "type")) {
            sl_diag_add(d, n, "%stype is missing (openai or engine)", sl_cfg_where(n, w, sizeof w));
            rc = -1;
            continue;
        }
        if (sl_cfg_enum(n, "type", d, types, &type) < 0) {
            rc = -1;
            continue;
        }
        u->type = type == 0 ? SL_UPSTREAM_OPENAI : SL_UPSTREAM_ENGINE;
        rc |= type == 0 ? parse_openai(u, n, d) : parse_engine(u, n, d);
    }
    return rc ? -1 : 0;
}

/* ---- models ---- */

static const char *const model_keys[] = {"targets", "upstream", "model", "weight", "alias", "fallback",
                                         "sticky", "profile", NULL};
static const char *const target_keys[] = {"upstream", "model", "weight", NULL};
static const char *const profile_keys[] = {"temperature", "max_tokens", "max_tokens_limit", "system_prompt",
                                           "force_thinking", NULL};

static int parse_target(sl_config *c, sl_model_conf *m, sl_target_conf *t, const sl_ynode *n, sl_diag *d)
{
    char w[512], known[512];
    int rc = 0;
    t->weight = 1;
    const sl_ynode *up = sl_ymap_get(n, "upstream");
    if (!up) {
        sl_diag_add(d, n, "%supstream is missing (the name of one of upstreams)", sl_cfg_where(n, w, sizeof w));
        rc = -1;
    } else if (sl_ynode_string(up, d, &t->upstream) < 0) {
        rc = -1;
    } else {
        for (size_t i = 0; i < c->n_upstreams && !t->up; i++)
            if (strcmp(c->upstreams[i].name, t->upstream) == 0)
                t->up = &c->upstreams[i];
        if (!t->up) {
            const char **names = upstream_names(c);
            name_hint(known, sizeof known, t->upstream, names, names ? c->n_upstreams : 0);
            free(names);
            sl_diag_add(d, up, "%sno upstream named '%s' (%s)", sl_cfg_where(up, w, sizeof w),
                        t->upstream, known);
            rc = -1;
        }
    }
    rc |= sl_cfg_str(n, "model", d, &t->model);
    rc |= sl_cfg_int32(n, "weight", d, 0, 1000000, &t->weight);
    if (!t->model && t->up) {
        const char *def = t->up->type == SL_UPSTREAM_ENGINE ? t->up->served_model_name : m->name;
        if (def && !(t->model = strdup(def)))
            return -1;
    }
    return rc;
}

static int parse_profile(sl_profile_conf *p, const sl_ynode *n, sl_diag *d)
{
    static const char *const modes[] = {"keep", "merge", NULL};
    char w[512];
    int rc = 0, mode = 0;
    const sl_ynode *t = sl_ymap_get(n, "temperature");
    if (t) {
        if (sl_ynode_double(t, d, &p->temperature) < 0)
            rc = -1;
        else if (p->temperature < 0 || p->temperature > 2) {
            sl_diag_add(d, t, "%sexpected a number from 0 to 2 (got %s)", sl_cfg_where(t, w, sizeof w), t->scalar);
            rc = -1;
        } else
            p->has_temperature = true;
    }
    rc |= sl_cfg_int(n, "max_tokens", d, 1, LLONG_MAX, &p->max_tokens);
    rc |= sl_cfg_int(n, "max_tokens_limit", d, 1, LLONG_MAX, &p->max_tokens_limit);
    if (!rc && p->max_tokens && p->max_tokens_limit && p->max_tokens > p->max_tokens_limit) {
        const sl_ynode *mt = sl_ymap_get(n, "max_tokens");
        sl_diag_add(d, mt, "%s%lld is above max_tokens_limit (%lld)", sl_cfg_where(mt, w, sizeof w),
                    p->max_tokens, p->max_tokens_limit);
        rc = -1;
    }
    rc |= sl_cfg_enum(n, "system_prompt", d, modes, &mode);
    p->system_prompt_merge = mode == 1;
    rc |= sl_cfg_bool(n, "force_thinking", d, &p->force_thinking);
    return rc;
}

static int parse_model(sl_config *c, sl_model_conf *m, const sl_ynode *n, sl_diag *d)
{
    char w[512];
    if (n->type != SL_Y_MAP) {
        sl_diag_add(d, n, "%sexpected a map like { targets: [...] } or { alias: OTHER }", sl_cfg_where(n, w, sizeof w));
        return -1;
    }
    int rc = sl_ymap_check_keys(n, model_keys, d);
    const sl_ynode *alias = sl_ymap_get(n, "alias");
    if (alias) {
        if (n->n > 1) {
            sl_diag_add(d, n->keys[n->keys[0]->scalar && strcmp(n->keys[0]->scalar, "alias") == 0 ? 1 : 0],
                        "%san alias takes no other keys (it uses the settings of the model it names)",
                        sl_cfg_where(n, w, sizeof w));
            rc = -1;
        }
        return sl_ynode_string(alias, d, &m->alias) < 0 ? -1 : rc;
    }
    const sl_ynode *targets = sl_ymap_get(n, "targets"), *up = sl_ymap_get(n, "upstream");
    if (targets && up) {
        sl_diag_add(d, up, "%swrite either targets: [...] or upstream: (one target), not both",
                    sl_cfg_where(n, w, sizeof w));
        rc = -1;
    } else if (up) {
        if (!(m->targets = calloc(1, sizeof *m->targets)))
            return -1;
        m->n_targets = 1;
        rc |= parse_target(c, m, &m->targets[0], n, d);
    } else if (!targets || targets->type != SL_Y_SEQ || targets->n == 0) {
        if (targets && targets->type != SL_Y_SEQ && !sl_ynode_is_null(targets))
            sl_diag_add(d, targets, "%sexpected a list of { upstream, model, weight }",
                        sl_cfg_where(targets, w, sizeof w));
        else
            sl_diag_add(d, targets ? targets : n, "%sno targets: give targets: [{ upstream: NAME, model: NAME }], "
                        "upstream: NAME, or alias: MODEL", sl_cfg_where(n, w, sizeof w));
        rc = -1;
    } else {
        if (!(m->targets = calloc(targets->n, sizeof *m->targets)))
            return -1;
        m->n_targets = targets->n;
        long long sum = 0;
        for (size_t i = 0; i < targets->n; i++) {
            const sl_ynode *t = targets->items[i];
            if (sl_ymap_check_keys(t, target_keys, d) < 0 && t->type != SL_Y_MAP) {
                rc = -1;
                continue;
            }
            rc |= parse_target(c, m, &m->targets[i], t, d);
            sum += m->targets[i].weight;
        }
        if (!rc && sum == 0) {
            sl_diag_add(d, targets, "%severy weight is 0: give at least one target a weight above 0",
                        sl_cfg_where(targets, w, sizeof w));
            rc = -1;
        }
    }
    rc |= sl_cfg_bool(n, "sticky", d, &m->sticky);
    const sl_ynode *f = sl_ymap_get(n, "fallback");
    if (f && !sl_ynode_is_null(f))
        rc |= sl_cfg_str_list(f, d, &m->fallback, &m->n_fallback);
    const sl_ynode *p = sl_cfg_section(n, "profile", profile_keys, d);
    if (p)
        rc |= parse_profile(&m->profile, p, d);
    return rc;
}

static const sl_model_conf *find_model(const sl_config *c, const char *name)
{
    for (size_t i = 0; name && i < c->n_models; i++)
        if (strcmp(c->models[i].name, name) == 0)
            return &c->models[i];
    return NULL;
}

static int check_model_name(const sl_config *c, const sl_ynode *n, const char *name, const char *what,
                            sl_diag *d)
{
    char w[512], known[512];
    if (find_model(c, name))
        return 0;
    const char **names = model_names(c);
    name_hint(known, sizeof known, name, names, names ? c->n_models : 0);
    free(names);
    sl_diag_add(d, n, "%s%sno model named '%s' (%s)", sl_cfg_where(n, w, sizeof w), what, name, known);
    return -1;
}

/* Each alias cycle is reported once, at the alias of its first model in file order. */
static int check_alias(const sl_config *c, size_t i, const sl_ynode *at, sl_diag *d)
{
    const sl_model_conf *start = &c->models[i], *m = start;
    for (size_t hops = 0; hops < c->n_models; hops++) {
        m = find_model(c, m->alias);
        if (m == start)
            break;
        if (!m || !m->alias)
            return 0;
    }
    if (m != start)
        return 0;   /* a cycle that start only leads into: reported at that cycle */
    char chain[512], w[512];
    size_t off = (size_t)snprintf(chain, sizeof chain, "%s", start->name);
    const sl_model_conf *x = start;
    do {
        x = find_model(c, x->alias);
        if (x < start)
            return 0;
        if (off < sizeof chain)
            off += (size_t)snprintf(chain + off, sizeof chain - off, " -> %s", x->name);
    } while (x != start);
    sl_diag_add(d, at, "%salias cycle: %s", sl_cfg_where(at, w, sizeof w), chain);
    return -1;
}

int sl_cfg_models(sl_config *c, const sl_ynode *node, sl_diag *d)
{
    if (!named_map(node, "models", d))
        return node && !sl_ynode_is_null(node) ? -1 : 0;
    if (!(c->models = calloc(node->n ? node->n : 1, sizeof *c->models)))
        return -1;
    int rc = 0;
    for (size_t i = 0; i < node->n; i++) {
        if (node->keys[i]->type != SL_Y_SCALAR || seen_before(node, i))
            continue;
        sl_model_conf *m = &c->models[c->n_models];
        if (!(m->name = strdup(node->keys[i]->scalar)))
            return -1;
        c->n_models++;
        rc |= parse_model(c, m, node->items[i], d);
    }
    /* references between models, now that every name is known */
    for (size_t i = 0; i < c->n_models; i++) {
        const sl_model_conf *m = &c->models[i];
        const sl_ynode *n = sl_ymap_get(node, m->name);
        if (m->alias) {
            const sl_ynode *a = sl_ymap_get(n, "alias");
            if (check_model_name(c, a, m->alias, "", d) < 0 || check_alias(c, i, a, d) < 0)
                rc = -1;
        }
        const sl_ynode *f = sl_ymap_get(n, "fallback");
        for (size_t j = 0; j < m->n_fallback; j++) {
            const sl_ynode *at = f->type == SL_Y_SEQ ? f->items[j] : f;
            if (strcmp(m->fallback[j], m->name) == 0) {
                char w[512];
                sl_diag_add(d, at, "%sa model cannot fall back to itself", sl_cfg_where(at, w, sizeof w));
                rc = -1;
            } else
                rc |= check_model_name(c, at, m->fallback[j], "", d);
        }
    }
    return rc ? -1 : 0;
}

/* ---- consumers ---- */

static const char *const consumer_keys[] = {"models", "quota", "rate", "allow_target_pin", "jwt", "keys", NULL};
static const char *const quota_keys[] = {"tokens", "window", NULL};
static const char *const rate_keys[] = {"rpm", "tpm", "per_model", NULL};
static const char *const jwt_keys[] = {"alg", "secret_env", "public_key", NULL};

static int parse_consumer(sl_config *c, sl_consumer_conf *k, const sl_ynode *n, sl_diag *d)
{
    static const char *const windows[] = {"minute", "hour", "day", "month", "total", NULL};
    static const char *const algs[] = {"HS256", "RS256", NULL};
    char w[512];
    if (sl_ynode_is_null(n))
        return 0;   /* `acme:` alone: a consumer with no limits */
    int rc = sl_ymap_check_keys(n, consumer_keys, d);
    if (n->type != SL_Y_MAP)
        return -1;
    const sl_ynode *models = sl_ymap_get(n, "models");
    if (models && !sl_ynode_is_null(models)) {
        if (sl_cfg_str_list(models, d, &k->models, &k->n_models) < 0)
            rc = -1;
        for (size_t i = 0; i < k->n_models; i++)
            rc |= check_model_name(c, models->type == SL_Y_SEQ ? models->items[i] : models, k->models[i], "", d);
    }
    const sl_ynode *q = sl_cfg_section(n, "quota", quota_keys, d);
    if (q) {
        int window = 3;
        if (!sl_ymap_get(q, "tokens")) {
            sl_diag_add(d, q, "%stokens is missing (the token quota per window)", sl_cfg_where(q, w, sizeof w));
            rc = -1;
        }
        rc |= sl_cfg_int(q, "tokens", d, 1, LLONG_MAX, &k->quota_tokens);
        rc |= sl_cfg_enum(q, "window", d, windows, &window);
        k->quota_window = (sl_window)window;
    } else
        k->quota_window = SL_WINDOW_MONTH;
    const sl_ynode *r = sl_cfg_section(n, "rate", rate_keys, d);
    rc |= sl_cfg_int(r, "rpm", d, 0, LLONG_MAX, &k->rpm);
    rc |= sl_cfg_int(r, "tpm", d, 0, LLONG_MAX, &k->tpm);
    rc |= sl_cfg_bool(r, "per_model", d, &k->rate_per_model);
    rc |= sl_cfg_bool(n, "allow_target_pin", d, &k->allow_target_pin);
    const sl_ynode *j = sl_cfg_section(n, "jwt", jwt_keys, d);
    if (j) {
        int alg = 0;
        if (!sl_ymap_get(j, "alg")) {
            sl_diag_add(d, j, "%salg is missing (HS256 or RS256)", sl_cfg_where(j, w, sizeof w));
            rc = -1;
        } else if (sl_cfg_enum(j, "alg", d, algs, &alg) < 0)
            rc = -1;
        else if (!(k->jwt_alg = strdup(algs[alg])))
            return -1;
        rc |= sl_cfg_env(j, "secret_env", d, &k->jwt_secret_env, &k->jwt_secret);
        rc |= sl_cfg_str(j, "public_key", d, &k->jwt_public_key);
        if (k->jwt_alg && alg == 0 && !sl_ymap_get(j, "secret_env")) {
            sl_diag_add(d, j, "%sHS256 needs secret_env (the variable holding the shared secret)",
                        sl_cfg_where(j, w, sizeof w));
            rc = -1;
        }
        if (k->jwt_alg && alg == 1 && !sl_ymap_get(j, "public_key")) {
            sl_diag_add(d, j, "%sRS256 needs public_key (a PEM file path)", sl_cfg_where(j, w, sizeof w));
            rc = -1;
        }
    }
    const sl_ynode *keys = sl_ymap_get(n, "keys");
    if (keys && !sl_ynode_is_null(keys)) {
        if (sl_cfg_str_list(keys, d, &k->key_hashes, &k->n_key_hashes) < 0)
            rc = -1;
        for (size_t i = 0; i < k->n_key_hashes; i++)
            if (strncmp(k->key_hashes[i], "sk-", 3) == 0) {
                const sl_ynode *at = keys->type == SL_Y_SEQ ? keys->items[i] : keys;
                sl_diag_add(d, at, "%sthis is a key, not its hash: a key must not be written in the file; "
                            "write the output of `sluice key hash` instead", sl_cfg_where(at, w, sizeof w));
                rc = -1;
            }
    }
    return rc;
}

int sl_cfg_consumers(sl_config *c, const sl_ynode *node, sl_diag *d)
{
    if (!named_map(node, "consumers", d))
        return node && !sl_ynode_is_null(node) ? -1 : 0;
    if (!(c->consumers = calloc(node->n ? node->n : 1, sizeof *c->consumers)))
        return -1;
    int rc = 0;
    for (size_t i = 0; i < node->n; i++) {
        if (node->keys[i]->type != SL_Y_SCALAR || seen_before(node, i))
            continue;
        sl_consumer_conf *k = &c->consumers[c->n_consumers];
        if (!(k->name = strdup(node->keys[i]->scalar)))
            return -1;
        c->n_consumers++;
        k->quota_window = SL_WINDOW_MONTH;
        rc |= parse_consumer(c, k, node->items[i], d);
    }
    return rc ? -1 : 0;
}
