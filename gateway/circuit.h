/* A circuit breaker per upstream, shared by all worker threads and kept across config
 * reloads (looked up by upstream name). closed → open after N consecutive failures;
 * open → half-open after the cool-down, when one probe request is let through; the probe's
 * success closes it, its failure opens it again. */
#ifndef SL_CIRCUIT_H
#define SL_CIRCUIT_H

#include <stdbool.h>
#include <jansson.h>

typedef enum sl_circuit_state { SL_CIRCUIT_CLOSED, SL_CIRCUIT_OPEN, SL_CIRCUIT_HALF_OPEN } sl_circuit_state;

typedef struct sl_circuit sl_circuit;

/* The breaker of upstream name (created on first use; lives for the process). Main thread
 * (config load) only; the pointer is then used from any thread. */
sl_circuit *sl_circuit_get(const char *name);
void sl_circuit_configure(sl_circuit *c, int failures, long long cooldown_ms);

/* May a request go to this upstream now? A true answer in half-open state makes this
 * request the probe; its result must be reported with sl_circuit_report. */
bool sl_circuit_allow(sl_circuit *c);
void sl_circuit_report(sl_circuit *c, bool ok);
/* The request let through ended without a verdict (the client went away): free the
 * probe slot without changing the state. */
void sl_circuit_release(sl_circuit *c);
sl_circuit_state sl_circuit_state_now(sl_circuit *c);
const char *sl_circuit_state_name(sl_circuit_state s);

/* {"name":..., "state":..., "consecutive_failures":..., "requests":..., "failures":...,
 *  "opened_at": ISO time or null} — new reference. */
json_t *sl_circuit_json(sl_circuit *c);
/* Every breaker, as an array — new reference. */
json_t *sl_circuit_all_json(void);

#endif
