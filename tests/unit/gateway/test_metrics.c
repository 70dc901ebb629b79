/* The metrics exposition: counts recorded on several threads sum into one series, every
 * family has HELP and TYPE, label values are escaped, histograms are cumulative with +Inf
 * equal to _count, and absent values leave their family empty. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "metrics.h"

/* The exposition as a string; the caller frees it. */
static char *render(void)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    assert_int_equal(sl_metrics_render(f), 0);
    assert_int_equal(fclose(f), 0);
    return text;
}

static void assert_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
        if ((p == text || p[-1] == '\n') && p[n] == '\n')
            return;
    fail_msg("line not found: %s\n--- exposition:\n%s", line, text);
}

static sl_metrics_sample sample(const char *consumer, const char *model, int status)
{
    return (sl_metrics_sample){.consumer = consumer, .model = model, .upstream = "up1", .status = status,
                               .prompt_tokens = 10, .completion_tokens = 3, .duration_s = 0.2, .overhead_s = 0.0003,
                               .ttft_s = -1};
}

static void *record_many(void *arg)
{
    (void)arg;
    sl_metrics_sample s = sample("acme", "threaded", 200);
    for (int i = 0; i < 1000; i++)
        sl_metrics_record(&s);
    return NULL;
}

static void threads_sum_into_one_series(void **state)
{
    (void)state;
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, record_many, NULL), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    char *text = render();
    assert_line(text, "sluice_requests_total{consumer=\"acme\",model=\"threaded\",upstream=\"up1\",status=\"200\"} 4000");
    assert_line(text, "sluice_prompt_tokens_total{consumer=\"acme\",model=\"threaded\"} 40000");
    assert_line(text, "sluice_completion_tokens_total{consumer=\"acme\",model=\"threaded\"} 12000");
    assert_line(text, "sluice_request_duration_seconds_count{model=\"threaded\"} 4000");
    assert_line(text, "sluice_request_duration_seconds_sum{model=\"threaded\"} 800.000000");
    assert_line(text, "sluice_gateway_overhead_seconds_count{model=\"threaded\"} 4000");
    assert_line(text, "sluice_gateway_overhead_seconds_sum{model=\"threaded\"} 1.200000");
    free(text);
}

static void families_have_help_and_type(void **state)
{
    (void)state;
    char *text = render();
    static const char *const fams[][2] = {
        {"sluice_requests_total", "counter"},          {"sluice_prompt_tokens_total", "counter"},
        {"sluice_completion_tokens_total", "counter"}, {"sluice_request_duration_seconds", "histogram"},
        {"sluice_gateway_overhead_seconds", "histogram"},
        {"sluice_time_to_first_token_seconds", "histogram"}, {"sluice_cache_hits_total", "counter"},
        {"sluice_cache_misses_total", "counter"},      {"sluice_fallbacks_total", "counter"},
        {"sluice_guard_blocks_total", "counter"},
    };
    for (size_t i = 0; i < sizeof fams / sizeof fams[0]; i++) {
        char l[160];
        snprintf(l, sizeof l, "# TYPE %s %s", fams[i][0], fams[i][1]);
        assert_line(text, l);
        snprintf(l, sizeof l, "# HELP %s ", fams[i][0]);
        assert_non_null(strstr(text, l));
    }
    assert_int_equal(text[strlen(text) - 1], '\n');
    free(text);
}

static void label_values_are_escaped(void **state)
{
    (void)state;
    sl_metrics_sample s = sample("we\"ird\\name", "multi\nline", 404);
    sl_metrics_record(&s);
    char *text = render();
    assert_line(text,
                "sluice_requests_total{consumer=\"we\\\"ird\\\\name\",model=\"multi\\nline\",upstream=\"up1\",status=\"404\"} 1");
    free(text);
}

static void histogram_buckets_are_cumulative(void **state)
{
    (void)state;
    const double d[] = {0.003, 0.04, 0.04, 7, 1000};
    for (size_t i = 0; i < 5; i++) {
        sl_metrics_sample s = sample("acme", "hist", 200);
        s.duration_s = d[i];
        s.ttft_s = d[i] / 10;
        sl_metrics_record(&s);
    }
    char *text = render();
    assert_line(text, "sluice_request_duration_seconds_bucket{model=\"hist\",le=\"0.005\"} 1");
    assert_line(text, "sluice_request_duration_seconds_bucket{model=\"hist\",le=\"0.025\"} 1");
    assert_line(text, "sluice_request_duration_seconds_bucket{model=\"hist\",le=\"0.05\"} 3");
    assert_line(text, "sluice_request_duration_seconds_bucket{model=\"hist\",le=\"10\"} 4");
    assert_line(text, "sluice_request_duration_seconds_bucket{model=\"hist\",le=\"600\"} 4");
    assert_line(text, "sluice_request_duration_seconds_bucket{model=\"hist\",le=\"+Inf\"} 5");
    assert_line(text, "sluice_request_duration_seconds_count{model=\"hist\"} 5");
    assert_line(text, "sluice_request_duration_seconds_sum{model=\"hist\"} 1007.083000");
    assert_line(text, "sluice_time_to_first_token_seconds_bucket{model=\"hist\",le=\"0.005\"} 3");
    assert_line(text, "sluice_time_to_first_token_seconds_count{model=\"hist\"} 5");
    free(text);
}

/* The gateway's own part of a request has buckets from 100 µs: what a proxy adds is that small. */
static void overhead_buckets_start_below_a_millisecond(void **state)
{
    (void)state;
    const double o[] = {0.00004, 0.0002, 0.0002, 0.0008, 0.03, -1};
    for (size_t i = 0; i < 6; i++) {
        sl_metrics_sample s = sample("acme", "overhead", 200);
        s.overhead_s = o[i];
        sl_metrics_record(&s);
    }
    char *text = render();
    assert_line(text, "sluice_gateway_overhead_seconds_bucket{model=\"overhead\",le=\"0.0001\"} 1");
    assert_line(text, "sluice_gateway_overhead_seconds_bucket{model=\"overhead\",le=\"0.00025\"} 3");
    assert_line(text, "sluice_gateway_overhead_seconds_bucket{model=\"overhead\",le=\"0.0005\"} 3");
    assert_line(text, "sluice_gateway_overhead_seconds_bucket{model=\"overhead\",le=\"0.001\"} 4");
    assert_line(text, "sluice_gateway_overhead_seconds_bucket{model=\"overhead\",le=\"0.025\"} 4");
    assert_line(text, "sluice_gateway_overhead_seconds_bucket{model=\"overhead\",le=\"0.05\"} 5");
    assert_line(text, "sluice_gateway_overhead_seconds_bucket{model=\"overhead\",le=\"+Inf\"} 5");
    assert_line(text, "sluice_gateway_overhead_seconds_count{model=\"overhead\"} 5"); /* -1: not known, not counted */
    assert_line(text, "sluice_request_duration_seconds_count{model=\"overhead\"} 6");
    free(text);
}

static void optional_parts_count_only_when_present(void **state)
{
    (void)state;
    char *before = render();
    assert_line(before, "sluice_cache_hits_total 0");
    assert_null(strstr(before, "sluice_fallbacks_total{"));
    assert_null(strstr(before, "sluice_guard_blocks_total{"));
    free(before);

    sl_metrics_sample s = sample("acme", "opt", 200);
    s.prompt_tokens = s.completion_tokens = -1;
    s.cache = "hit";
    s.fallback_from = "opt";
    s.fallback_to = "small";
    s.guard_stage = "response";
    s.guard_rule = "deny_regex[2]";
    sl_metrics_record(&s);
    s.cache = "miss";
    s.fallback_from = NULL;
    s.guard_stage = NULL;
    sl_metrics_record(&s);
    char *text = render();
    assert_line(text, "sluice_cache_hits_total 1");
    assert_line(text, "sluice_cache_misses_total 1");
    assert_line(text, "sluice_fallbacks_total{from=\"opt\",to=\"small\"} 1");
    assert_line(text, "sluice_guard_blocks_total{stage=\"response\",rule=\"deny_regex[2]\"} 1");
    assert_null(strstr(text, "sluice_prompt_tokens_total{consumer=\"acme\",model=\"opt\"}"));
    assert_null(strstr(text, "sluice_time_to_first_token_seconds_count{model=\"opt\"}"));
    free(text);
}

static void inter_token_gaps_of_a_stream(void **state)
{
    (void)state;
    sl_metrics_itl itl;
    sl_metrics_itl_init(&itl);
    const double at_ms[] = {500, 500.5, 504, 524, 1524, 5524}; /* gaps: 0.5, 3.5, 20, 1000, 4000 ms */
    for (size_t i = 0; i < 6; i++)
        sl_metrics_itl_event(&itl, at_ms[i]);
    sl_metrics_sample s = sample("acme", "itl", 200);
    s.itl = &itl;
    sl_metrics_record(&s);
    char *text = render();
    assert_line(text, "sluice_inter_token_latency_seconds_bucket{model=\"itl\",le=\"0.001\"} 1");
    assert_line(text, "sluice_inter_token_latency_seconds_bucket{model=\"itl\",le=\"0.005\"} 2");
    assert_line(text, "sluice_inter_token_latency_seconds_bucket{model=\"itl\",le=\"0.02\"} 3");
    assert_line(text, "sluice_inter_token_latency_seconds_bucket{model=\"itl\",le=\"1\"} 4");
    assert_line(text, "sluice_inter_token_latency_seconds_bucket{model=\"itl\",le=\"2.5\"} 4");
    assert_line(text, "sluice_inter_token_latency_seconds_bucket{model=\"itl\",le=\"+Inf\"} 5");
    assert_line(text, "sluice_inter_token_latency_seconds_count{model=\"itl\"} 5");
    assert_line(text, "sluice_inter_token_latency_seconds_sum{model=\"itl\"} 5.024000");
    /* a request that was not streamed adds nothing */
    s = sample("acme", "itl2", 200);
    sl_metrics_record(&s);
    free(text);
    text = render();
    assert_null(strstr(text, "sluice_inter_token_latency_seconds_count{model=\"itl2\"}"));
    free(text);
}

/* One thread, label sets taking turns (the thread keeps the last one's series): each
 * count goes to its own series; a series first needed on a repeat is made then. */
static void label_sets_in_turn(void **state)
{
    (void)state;
    sl_metrics_sample a = sample("turn-a", "turn", 200), b = sample("turn-b", "turn", 200),
                      c = sample("turn-a", "turn", 429), d = sample("turn-a", "turn2", 200);
    a.prompt_tokens = -1; /* the first time: no prompt series yet */
    sl_metrics_record(&a);
    a.prompt_tokens = 10;
    const sl_metrics_sample *order[] = {&a, &a, &b, &a, &c, &c, &d, &a, &b};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
        sl_metrics_record(order[i]);
    d.upstream = NULL; /* as "" */
    sl_metrics_record(&d);
    char *text = render();
    assert_line(text, "sluice_requests_total{consumer=\"turn-a\",model=\"turn\",upstream=\"up1\",status=\"200\"} 5");
    assert_line(text, "sluice_requests_total{consumer=\"turn-b\",model=\"turn\",upstream=\"up1\",status=\"200\"} 2");
    assert_line(text, "sluice_requests_total{consumer=\"turn-a\",model=\"turn\",upstream=\"up1\",status=\"429\"} 2");
    assert_line(text, "sluice_requests_total{consumer=\"turn-a\",model=\"turn2\",upstream=\"up1\",status=\"200\"} 1");
    assert_line(text, "sluice_requests_total{consumer=\"turn-a\",model=\"turn2\",upstream=\"\",status=\"200\"} 1");
    assert_line(text, "sluice_prompt_tokens_total{consumer=\"turn-a\",model=\"turn\"} 60");
    assert_line(text, "sluice_completion_tokens_total{consumer=\"turn-a\",model=\"turn\"} 21");
    assert_line(text, "sluice_prompt_tokens_total{consumer=\"turn-b\",model=\"turn\"} 20");
    assert_line(text, "sluice_request_duration_seconds_count{model=\"turn\"} 9");
    assert_line(text, "sluice_request_duration_seconds_count{model=\"turn2\"} 2");
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(families_have_help_and_type),
        cmocka_unit_test(threads_sum_into_one_series),
        cmocka_unit_test(label_values_are_escaped),
        cmocka_unit_test(histogram_buckets_are_cumulative),
        cmocka_unit_test(overhead_buckets_start_below_a_millisecond),
        cmocka_unit_test(optional_parts_count_only_when_present),
        cmocka_unit_test(inter_token_gaps_of_a_stream),
        cmocka_unit_test(label_sets_in_turn),
    };
    return cmocka_run_group_tests_name("gateway_metrics", tests, NULL, NULL);
}
