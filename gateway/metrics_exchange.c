/* What a finished exchange adds to the metrics, with every label bounded by the config the
 * request ran on: consumers not declared there count as "other" (or "anonymous" without
 * auth), unknown models as "other", no upstream as "none". */
#include "metrics_exchange.h"

#include <string.h>

#include "exchange_int.h"
#include "metrics.h"

static const char *consumer_label(const sl_exchange *ex)
{
    if (!ex->consumer)
        return "anonymous";
    return sl_config_consumer(ex->cfg, ex->consumer) ? ex->consumer : "other";
}

static const char *model_label(const sl_exchange *ex)
{
    if (!ex->model_name)
        return "none";
    return sl_config_model(ex->cfg, ex->model_name) ? ex->model_name : "other";
}

/* The served count as the access log has it: a plugin's field (a cache hit), else the
 * upstream's usage. */
static long long tokens(const sl_exchange *ex, const char *key)
{
    const json_t *v = sl_log_fields_get(&ex->log, key);
    if (!json_is_integer(v) && ex->usage)
        v = json_object_get(ex->usage, key);
    return json_is_integer(v) ? (long long)json_integer_value(v) : -1;
}

void sl_metrics_exchange(const sl_exchange *ex, double duration_ms)
{
    const char *model = model_label(ex);
    double overhead_ms = duration_ms - ex->read_ms - ex->upstream_ms; /* neither the client's time nor the upstream's */
    sl_metrics_sample m = {
        .consumer = consumer_label(ex),
        .model = model,
        .upstream = ex->target ? ex->target->upstream : "none",
        .status = ex->status,
        .prompt_tokens = tokens(ex, "prompt_tokens"),
        .completion_tokens = tokens(ex, "completion_tokens"),
        .duration_s = duration_ms / 1000.0,
        .overhead_s = (overhead_ms > 0 ? overhead_ms : 0) / 1000.0,
        .ttft_s = ex->ttft_ms > 0 ? ex->ttft_ms / 1000.0 : -1,
        .itl = ex->up_stream ? &ex->itl : NULL,
    };
    const json_t *cache = sl_log_fields_get(&ex->log, "cache");
    m.cache = json_is_string(cache) ? json_string_value(cache) : NULL;
    if (m.cache && strcmp(m.cache, "hit") != 0 && strcmp(m.cache, "miss") != 0)
        m.cache = "bypass";
    if (ex->n_failed > 0) {
        m.fallback_from = model;
        m.fallback_to = ex->upstream_ok && ex->model ? ex->model->name : "none";
    }
    const json_t *g = sl_log_fields_get(&ex->log, "guard");
    const json_t *stage = json_object_get(g, "stage"), *rule = json_object_get(g, "rule");
    if (json_is_string(stage) && json_is_string(rule)) {
        m.guard_stage = json_string_value(stage);
        /* a deny file may hold thousands of words: one label for all of them */
        m.guard_rule = strncmp(json_string_value(rule), "deny_file", 9) == 0 ? "deny_file" : json_string_value(rule);
    }
    sl_metrics_record(&m);
}
