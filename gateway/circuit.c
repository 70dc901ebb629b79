#include "circuit.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct sl_circuit {
    char *name;
    pthread_mutex_t mu;      /* per upstream: taken at attempt start and end only */
    int threshold;
    long long cooldown_ms;
    sl_circuit_state state;
    int consecutive;
    bool probe_in_flight;
    long long opened_ms;     /* monotonic */
    time_t opened_wall;
    unsigned long long requests, failures;
    sl_circuit *next;
};

static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static sl_circuit *registry;

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

sl_circuit *sl_circuit_get(const char *name)
{
    pthread_mutex_lock(&registry_mu);
    sl_circuit *c = registry;
    while (c && strcmp(c->name, name) != 0)
        c = c->next;
    if (!c && (c = calloc(1, sizeof *c))) {
        c->name = strdup(name);
        pthread_mutex_init(&c->mu, NULL);
        c->threshold = 5;
        c->cooldown_ms = 30000;
        c->next = registry;
        registry = c;
    }
    pthread_mutex_unlock(&registry_mu);
    return c;
}

void sl_circuit_configure(sl_circuit *c, int failures, long long cooldown_ms)
{
    pthread_mutex_lock(&c->mu);
    c->threshold = failures;
    c->cooldown_ms = cooldown_ms;
    pthread_mutex_unlock(&c->mu);
}

bool sl_circuit_allow(sl_circuit *c)
{
    bool ok = true;
    pthread_mutex_lock(&c->mu);
    c->requests++;
    if (c->threshold > 0 && c->state != SL_CIRCUIT_CLOSED) {
        if (c->state == SL_CIRCUIT_OPEN && now_ms() - c->opened_ms >= c->cooldown_ms)
            c->state = SL_CIRCUIT_HALF_OPEN;
        if (c->state == SL_CIRCUIT_HALF_OPEN && !c->probe_in_flight)
            c->probe_in_flight = true;
        else
            ok = false;
    }
    if (!ok)
        c->requests--;
    pthread_mutex_unlock(&c->mu);
    return ok;
}

void sl_circuit_report(sl_circuit *c, bool ok)
{
    pthread_mutex_lock(&c->mu);
    if (ok) {
        c->consecutive = 0;
        c->state = SL_CIRCUIT_CLOSED;
        c->probe_in_flight = false;
    } else {
        c->failures++;
        c->consecutive++;
        if (c->threshold > 0 && (c->state == SL_CIRCUIT_HALF_OPEN || c->consecutive >= c->threshold)) {
            c->state = SL_CIRCUIT_OPEN;
            c->opened_ms = now_ms();
            c->opened_wall = time(NULL);
            c->probe_in_flight = false;
        }
    }
    pthread_mutex_unlock(&c->mu);
}

void sl_circuit_release(sl_circuit *c)
{
    pthread_mutex_lock(&c->mu);
    c->probe_in_flight = false;
    pthread_mutex_unlock(&c->mu);
}

sl_circuit_state sl_circuit_state_now(sl_circuit *c)
{
    pthread_mutex_lock(&c->mu);
    sl_circuit_state s = c->state;
    if (s == SL_CIRCUIT_OPEN && now_ms() - c->opened_ms >= c->cooldown_ms)
        s = SL_CIRCUIT_HALF_OPEN; /* the next request will probe */
    pthread_mutex_unlock(&c->mu);
    return s;
}

const char *sl_circuit_state_name(sl_circuit_state s)
{
    return s == SL_CIRCUIT_CLOSED ? "closed" : s == SL_CIRCUIT_OPEN ? "open" : "half_open";
}

json_t *sl_circuit_json(sl_circuit *c)
{
    sl_circuit_state s = sl_circuit_state_now(c);
    pthread_mutex_lock(&c->mu);
    json_t *o = json_pack("{s:s, s:s, s:i, s:I, s:I, s:i, s:I}", "name", c->name, "circuit",
                          sl_circuit_state_name(s), "consecutive_failures", c->consecutive, "requests",
                          (json_int_t)c->requests, "failures", (json_int_t)c->failures, "failure_threshold",
                          c->threshold, "cooldown_ms", (json_int_t)c->cooldown_ms);
    if (o && c->state != SL_CIRCUIT_CLOSED) {
        char ts[32];
        struct tm tm;
        gmtime_r(&c->opened_wall, &tm);
        strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
        json_object_set_new(o, "opened_at", json_string(ts));
    }
    pthread_mutex_unlock(&c->mu);
    return o;
}

json_t *sl_circuit_all_json(void)
{
    json_t *a = json_array();
    pthread_mutex_lock(&registry_mu);
    for (sl_circuit *c = registry; c; c = c->next)
        json_array_append_new(a, sl_circuit_json(c));
    pthread_mutex_unlock(&registry_mu);
    return a;
}
