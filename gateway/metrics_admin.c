/* GET /metrics on the admin listener: the summed counters and histograms, then the gauges
 * read now — circuit breakers and engine processes of the admin's current config. */
#include "metrics_admin.h"

#include <stdlib.h>
#include <string.h>

#include "circuit.h"
#include "engine_scrape.h"
#include "metrics.h"
#include "pool.h"

static void circuit_gauges(FILE *out, const sl_config *cfg)
{
    sl_metrics_family(out, "sluice_upstream_circuit_state", "gauge",
                      "Circuit breaker of each upstream: 0 closed, 1 open, 2 half-open.");
    for (size_t i = 0; i < cfg->n_upstreams; i++) {
        sl_circuit *cb = sl_circuit_get(cfg->upstreams[i].name);
        if (!cb)
            continue;
        int v = 0;
        switch (sl_circuit_state_now(cb)) {
        case SL_CIRCUIT_CLOSED: v = 0; break;
        case SL_CIRCUIT_OPEN: v = 1; break;
        case SL_CIRCUIT_HALF_OPEN: v = 2; break;
        }
        fputs("sluice_upstream_circuit_state{upstream=", out);
        sl_metrics_label_value(out, cfg->upstreams[i].name);
        fprintf(out, "} %d\n", v);
    }
}

static const char *const states[] = {"starting", "ready", "backoff", "stopping", "draining"};
enum { N_STATES = sizeof states / sizeof states[0] };

/* Counts upstream's engine processes by state; returns their requests outstanding. */
static long long engine_counts(sl_pool *pool, const char *upstream, int count[N_STATES])
{
    long long outstanding = 0;
    json_t *procs = sl_pool_json(pool, upstream), *p;
    size_t k;
    json_array_foreach(procs, k, p)
    {
        const char *st = json_string_value(json_object_get(p, "state"));
        for (int s = 0; st && s < N_STATES; s++)
            if (strcmp(st, states[s]) == 0)
                count[s]++;
        outstanding += json_integer_value(json_object_get(p, "outstanding"));
    }
    json_decref(procs);
    return outstanding;
}

static void engine_gauges(FILE *out, const sl_config *cfg, sl_pool *pool)
{
    sl_metrics_family(out, "sluice_engine_workers", "gauge", "Engine worker processes of each upstream, by state.");
    for (size_t i = 0; i < cfg->n_upstreams; i++) {
        const sl_upstream_conf *u = &cfg->upstreams[i];
        int count[N_STATES] = {0};
        if (u->type != SL_UPSTREAM_ENGINE)
            continue;
        engine_counts(pool, u->name, count);
        for (int s = 0; s < N_STATES; s++) {
            fputs("sluice_engine_workers{upstream=", out);
            sl_metrics_label_value(out, u->name);
            fprintf(out, ",state=\"%s\"} %d\n", states[s], count[s]);
        }
    }
    sl_metrics_family(out, "sluice_engine_outstanding_requests", "gauge",
                      "Requests the gateway has in flight to the engine workers of each upstream.");
    for (size_t i = 0; i < cfg->n_upstreams; i++) {
        const sl_upstream_conf *u = &cfg->upstreams[i];
        int count[N_STATES] = {0};
        if (u->type != SL_UPSTREAM_ENGINE)
            continue;
        fputs("sluice_engine_outstanding_requests{upstream=", out);
        sl_metrics_label_value(out, u->name);
        fprintf(out, "} %lld\n", engine_counts(pool, u->name, count));
    }
}

/* One GET /metrics waiting on the engine workers; the client may leave meanwhile. */
typedef struct pending {
    sl_admin *a;
    sl_http_conn *conn;
} pending;

static void pending_gone(void *arg) { ((pending *)arg)->conn = NULL; }

static void respond(pending *p, char *engines)
{
    sl_http_conn *c = p->conn;
    sl_admin *a = p->a;
    free(p);
    if (!c) {
        free(engines);
        return;
    }
    sl_http_watch none = {0};
    sl_http_set_watch(c, &none);
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    if (!out) {
        free(engines);
        sl_http_respond_error(c, 500, "api_error", "internal_error", NULL, "out of memory rendering the metrics");
        return;
    }
    int rc = sl_metrics_render(out);
    circuit_gauges(out, sl_admin_config(a));
    engine_gauges(out, sl_admin_config(a), sl_admin_pool(a));
    if (engines)
        fputs(engines, out);
    free(engines);
    if (fclose(out) != 0 || rc != 0) {
        free(text);
        sl_http_respond_error(c, 500, "api_error", "internal_error", NULL, "out of memory rendering the metrics");
        return;
    }
    sl_http_respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
    free(text);
}

static void engines_scraped(void *arg, char *text) { respond(arg, text); }

static void metrics_handler(sl_admin *a, sl_http_conn *c, sl_http_request *req, const char *tail, void *arg)
{
    (void)req;
    (void)tail;
    (void)arg;
    pending *p = calloc(1, sizeof *p);
    if (!p) {
        sl_http_respond_error(c, 500, "api_error", "internal_error", NULL, "out of memory rendering the metrics");
        return;
    }
    p->a = a;
    p->conn = c;
    sl_http_watch w = {.on_close = pending_gone, .arg = p};
    sl_http_set_watch(c, &w);
    /* the workers' own gauges (queue, KV cache, tokens/s); a slow one is left out after 1 s */
    sl_engine_scrape(sl_admin_base(a), sl_admin_pool(a), sl_admin_config(a), 1000, engines_scraped, p);
}

void sl_metrics_admin_install(sl_admin *a) { sl_admin_route(a, "GET", "/metrics", false, metrics_handler, NULL); }
