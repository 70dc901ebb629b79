/* Prometheus metrics (names prefixed sluice_). Worker threads record into blocks of their
 * own: no lock on the request path, one relaxed atomic add per value. The main thread sums
 * every thread's block when /metrics is read. Label values must already be bounded (the
 * caller maps undeclared consumers, models and upstreams to fixed words; see
 * metrics_exchange.c). */
#ifndef SL_METRICS_H
#define SL_METRICS_H

#include <stdint.h>
#include <stdio.h>

/* Inter-token latency of one stream, gathered by its exchange (no shared state per event)
 * and added to the histogram once, when the request ends. */
#define SL_METRICS_ITL_BUCKETS 14
typedef struct sl_metrics_itl {
    double last_ms;                         /* < 0 before the first event */
    uint32_t n[SL_METRICS_ITL_BUCKETS + 1]; /* per bucket, the last is +Inf; not cumulative */
    double sum_s;
} sl_metrics_itl;

void sl_metrics_itl_init(sl_metrics_itl *t);
/* An event reached the client now_ms after the request began. */
void sl_metrics_itl_event(sl_metrics_itl *t, double now_ms);

/* What one finished request adds. NULL strings and negative numbers mean "not known". */
typedef struct sl_metrics_sample {
    const char *consumer, *model, *upstream;
    int status;
    long long prompt_tokens, completion_tokens;
    double duration_s;
    double overhead_s;                      /* duration_s less the client's sending and the upstream attempts */
    double ttft_s;                          /* < 0: no first token was streamed */
    const char *cache;                      /* "hit", "miss", "bypass" or NULL */
    const char *fallback_from, *fallback_to;
    const char *guard_stage, *guard_rule;
    const sl_metrics_itl *itl;              /* NULL: not streamed */
} sl_metrics_sample;

/* Any thread. The first call on a thread registers that thread's block (kept for the
 * life of the process). */
void sl_metrics_record(const sl_metrics_sample *s);

/* The counters and histograms, summed over every thread, in the Prometheus text format
 * (version 0.0.4), every family with its HELP and TYPE lines. Returns 0, or -1 when out of
 * memory. */
int sl_metrics_render(FILE *out);

/* Helpers for families rendered elsewhere (gauges read at scrape time). */
void sl_metrics_family(FILE *out, const char *name, const char *type, const char *help);
/* Writes the label value between quotes, escaped (\\, \", \n). */
void sl_metrics_label_value(FILE *out, const char *v);

#endif
