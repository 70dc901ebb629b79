/* route: the client-facing model name → an attempt plan of targets {upstream, model}:
 * a weighted (canary) choice — smooth and lock-free, or sticky per consumer — then the
 * model's other targets, then its fallback models'. Applies the model's profile to the
 * request. Always the last plugin of the chain; its options are the retry policy. */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "circuit.h"
#include "config.h"
#include "config_int.h"
#include "exchange.h"
#include "plugin.h"

#define MAX_SEQ 10000
#define MAX_PLAN 64

typedef struct route_model {
    uint16_t *seq;          /* target indices in smooth weighted order, one period */
    size_t n_seq;
    atomic_ulong next;
} route_model;

typedef struct route_conf {
    sl_retry_policy policy;
    int circuit_failures;
    long long circuit_cooldown_ms;
    char *pin_header;
    const sl_config *cfg;
    route_model *models;    /* parallel to cfg->models */
    sl_circuit **circuits;  /* parallel to cfg->upstreams */
} route_conf;

static long gcd(long a, long b)
{
    while (b) {
        long t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* nginx's smooth weighted round robin, unrolled over one period. */
static int build_seq(route_model *rm, const sl_model_conf *m)
{
    long total = 0, g = 0;
    for (size_t i = 0; i < m->n_targets; i++) {
        total += m->targets[i].weight;
        g = gcd(g, m->targets[i].weight);
    }
    if (total <= 0 || g <= 0)
        return 0;
    total /= g;
    if (total > MAX_SEQ)
        return 0; /* weighted random instead */
    rm->seq = calloc((size_t)total, sizeof *rm->seq);
    long *cur = calloc(m->n_targets, sizeof *cur);
    if (!rm->seq || !cur) {
        free(cur);
        return -1;
    }
    for (long k = 0; k < total; k++) {
        size_t best = 0;
        for (size_t i = 0; i < m->n_targets; i++) {
            cur[i] += m->targets[i].weight / g;
            if (cur[i] > cur[best])
                best = i;
        }
        cur[best] -= total;
        rm->seq[k] = (uint16_t)best;
    }
    rm->n_seq = (size_t)total;
    free(cur);
    return 0;
}

static size_t weighted_random(const sl_model_conf *m, unsigned long r)
{
    long total = 0;
    for (size_t i = 0; i < m->n_targets; i++)
        total += m->targets[i].weight;
    if (total <= 0)
        return 0;
    long x = (long)(r % (unsigned long)total);
    for (size_t i = 0; i < m->n_targets; i++) {
        x -= m->targets[i].weight;
        if (x < 0)
            return i;
    }
    return m->n_targets - 1;
}

static uint64_t fnv1a(const char *a, const char *b)
{
    uint64_t h = 1469598103934665603ull;
    for (const char *s = a; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    h = (h ^ 0xff) * 1099511628211ull;
    for (const char *s = b; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static size_t choose(route_conf *rc, const sl_model_conf *m, const char *consumer)
{
    if (m->n_targets == 1)
        return 0;
    route_model *rm = &rc->models[m - rc->cfg->models];
    bool sticky = m->sticky && consumer;
    unsigned long k = sticky ? (unsigned long)fnv1a(consumer, m->name) : atomic_fetch_add(&rm->next, 1);
    if (rm->n_seq)
        return rm->seq[k % rm->n_seq];
    return weighted_random(m, sticky ? k : (unsigned long)random());
}

static int add_attempt(route_conf *rc, sl_attempt *plan, size_t *n, const sl_model_conf *m, size_t ti)
{
    const sl_target_conf *t = &m->targets[ti];
    for (size_t i = 0; i < *n; i++)
        if (plan[i].target->up == t->up && strcmp(plan[i].target->model, t->model) == 0)
            return 0; /* never the same target twice */
    if (*n == MAX_PLAN)
        return 0;
    plan[*n] = (sl_attempt){.model = m, .target = t, .circuit = rc->circuits[t->up - rc->cfg->upstreams]};
    (*n)++;
    return 0;
}

/* The chosen target first, then the rest by weight (weight 0 = out of rotation). */
static void add_model(route_conf *rc, sl_attempt *plan, size_t *n, const sl_model_conf *m, const char *consumer)
{
    if (!m || m->n_targets == 0)
        return;
    size_t first = choose(rc, m, consumer);
    add_attempt(rc, plan, n, m, first);
    bool used[256] = {0};
    used[first < 256 ? first : 0] = true;
    for (;;) {
        size_t best = SIZE_MAX;
        for (size_t i = 0; i < m->n_targets && i < 256; i++)
            if (!used[i] && m->targets[i].weight > 0 && (best == SIZE_MAX || m->targets[i].weight > m->targets[best].weight))
                best = i;
        if (best == SIZE_MAX)
            break;
        used[best] = true;
        add_attempt(rc, plan, n, m, best);
    }
}

/* ---- the hook ---- */

static const sl_target_conf *find_pinned(const sl_model_conf *m, const char *pin)
{
    for (size_t i = 0; i < m->n_targets; i++) {
        const sl_target_conf *t = &m->targets[i];
        size_t ul = strlen(t->upstream);
        if (strcmp(pin, t->upstream) == 0 ||
            (strncmp(pin, t->upstream, ul) == 0 && pin[ul] == '/' && strcmp(pin + ul + 1, t->model) == 0))
            return t;
    }
    return NULL;
}

static sl_step route_on_request(sl_exchange *ex, void *conf)
{
    route_conf *rc = conf;
    sl_endpoint ep = sl_ex_endpoint(ex);
    if (ep == SL_EP_MODELS || ep == SL_EP_OTHER)
        return SL_STEP_CONTINUE;
    const sl_config *cfg = sl_ex_config(ex);
    const char *asked = sl_ex_model(ex);
    const sl_model_conf *m = sl_config_model(cfg, asked);
    if (!m || m->n_targets == 0) {
        sl_ex_respond_error(ex, 404, "invalid_request_error", "model_not_found", "model",
                            "The model `%s` does not exist or you do not have access to it.", asked);
        return SL_STEP_RESPOND;
    }
    sl_attempt plan[MAX_PLAN];
    size_t n = 0;
    const char *pin = sl_ex_header(ex, rc->pin_header);
    if (pin) {
        const sl_consumer_conf *cc = sl_ex_consumer_conf(ex);
        if (!cc || !cc->allow_target_pin) {
            sl_ex_respond_error(ex, 403, "invalid_request_error", "target_pin_not_allowed", NULL,
                                "the %s header is only for consumers with allow_target_pin", rc->pin_header);
            return SL_STEP_RESPOND;
        }
        const sl_target_conf *t = find_pinned(m, pin);
        if (!t) {
            sl_ex_respond_error(ex, 400, "invalid_request_error", "invalid_request", NULL,
                                "model `%s` has no target `%s` (give upstream or upstream/model)", m->name, pin);
            return SL_STEP_RESPOND;
        }
        add_attempt(rc, plan, &n, m, (size_t)(t - m->targets));
    } else {
        const char *consumer = sl_ex_consumer(ex);
        add_model(rc, plan, &n, m, consumer);
        for (size_t i = 0; i < m->n_fallback; i++)
            add_model(rc, plan, &n, sl_config_model(cfg, m->fallback[i]), consumer);
    }
    sl_ex_set_plan(ex, plan, n, &rc->policy);
    return SL_STEP_CONTINUE;
}

/* ---- config ---- */

static void route_free(void *conf)
{
    route_conf *rc = conf;
    if (!rc)
        return;
    for (size_t i = 0; rc->models && i < rc->cfg->n_models; i++)
        free(rc->models[i].seq);
    free(rc->models);
    free(rc->circuits);
    free(rc->pin_header);
    free(rc);
}

static const char *const route_keys[] = {"fallback_on", "max_attempts", "backoff", "max_retry_after",
                                         "retry_budget", "circuit", "pin_header", NULL};
static const char *const backoff_keys[] = {"base", "max", NULL};
static const char *const circuit_keys[] = {"failures", "cooldown", NULL};

static int parse_fallback_on(const sl_ynode *n, sl_diag *d, unsigned *out)
{
    char **v = NULL, w[512];
    size_t k = 0;
    if (sl_cfg_str_list(n, d, &v, &k) < 0)
        return -1;
    int rc = 0;
    *out = 0;
    for (size_t i = 0; i < k; i++) {
        const sl_ynode *at = n->type == SL_Y_SEQ ? n->items[i] : n;
        if (strcmp(v[i], "connect") == 0)
            *out |= SL_FAIL_CONNECT;
        else if (strcmp(v[i], "timeout") == 0)
            *out |= SL_FAIL_TIMEOUT;
        else if (strcmp(v[i], "429") == 0)
            *out |= SL_FAIL_429;
        else if (strcmp(v[i], "5xx") == 0)
            *out |= SL_FAIL_5XX;
        else {
            sl_diag_add(d, at, "%sunknown failure '%s' (one of: connect, timeout, 429, 5xx; other 4xx never fall back)",
                        sl_cfg_where(at, w, sizeof w), v[i]);
            rc = -1;
        }
    }
    sl_cfg_free_strings(v, k);
    return rc;
}

static int route_parse(const sl_ynode *node, sl_plugin_ctx *ctx, void **out)
{
    route_conf *rc = calloc(1, sizeof *rc);
    if (!rc)
        return -1;
    *out = rc;
    sl_config *cfg = ctx->config;
    sl_diag *d = ctx->diag;
    rc->cfg = cfg;
    rc->policy = (sl_retry_policy){
        .fail_on = SL_FAIL_CONNECT | SL_FAIL_TIMEOUT | SL_FAIL_429 | SL_FAIL_5XX,
        .max_attempts = 4,
        .backoff_base_ms = 50,
        .backoff_max_ms = 2000,
        .max_retry_after_ms = 5000,
        .budget_ms = 60000,
    };
    rc->circuit_failures = 5;
    rc->circuit_cooldown_ms = 30000;
    rc->pin_header = strdup("x-sluice-target");
    int r = 0;
    if (node && !sl_ynode_is_null(node)) {
        if (sl_ymap_check_keys(node, route_keys, d) < 0)
            r = -1;
        const sl_ynode *f = sl_ymap_get(node, "fallback_on");
        if (f)
            r |= parse_fallback_on(f, d, &rc->policy.fail_on);
        long long v = rc->policy.max_attempts;
        r |= sl_cfg_int(node, "max_attempts", d, 1, MAX_PLAN, &v);
        rc->policy.max_attempts = (int)v;
        const sl_ynode *b = sl_cfg_section(node, "backoff", backoff_keys, d);
        if (b) {
            r |= sl_cfg_duration(b, "base", d, 0, &rc->policy.backoff_base_ms);
            r |= sl_cfg_duration(b, "max", d, 0, &rc->policy.backoff_max_ms);
        }
        r |= sl_cfg_duration(node, "max_retry_after", d, 0, &rc->policy.max_retry_after_ms);
        r |= sl_cfg_duration(node, "retry_budget", d, 0, &rc->policy.budget_ms);
        const sl_ynode *c = sl_cfg_section(node, "circuit", circuit_keys, d);
        if (c) {
            long long fl = rc->circuit_failures;
            r |= sl_cfg_int(c, "failures", d, 0, 1000000, &fl);
            rc->circuit_failures = (int)fl;
            r |= sl_cfg_duration(c, "cooldown", d, 1, &rc->circuit_cooldown_ms);
        }
        r |= sl_cfg_str(node, "pin_header", d, &rc->pin_header);
        for (char *p = rc->pin_header; p && *p; p++)
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p + 32);
    }
    rc->models = calloc(cfg->n_models + 1, sizeof *rc->models);
    rc->circuits = calloc(cfg->n_upstreams + 1, sizeof *rc->circuits);
    if (!rc->models || !rc->circuits)
        return -1;
    for (size_t i = 0; i < cfg->n_models; i++)
        if (build_seq(&rc->models[i], &cfg->models[i]) < 0)
            return -1;
    for (size_t i = 0; i < cfg->n_upstreams; i++) {
        rc->circuits[i] = sl_circuit_get(cfg->upstreams[i].name);
        if (rc->circuits[i] && r == 0)
            sl_circuit_configure(rc->circuits[i], rc->circuit_failures, rc->circuit_cooldown_ms);
    }
    return r ? -1 : 0;
}

const sl_plugin sl_plugin_route = {
    .name = "route",
    .api_version = SL_PLUGIN_API_VERSION,
    .config_parse = route_parse,
    .config_free = route_free,
    .on_request = route_on_request,
};
