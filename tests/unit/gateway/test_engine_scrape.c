/* Merging the engine workers' expositions into the gateway's /metrics: each family once
 * (HELP, TYPE, then every worker's samples), every sample labelled upstream and worker,
 * only sluice_engine_* families, histogram samples kept with their family. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "engine_scrape.h"

static const char *const worker0 =
    "# HELP sluice_engine_queue_length Requests waiting.\n"
    "# TYPE sluice_engine_queue_length gauge\n"
    "sluice_engine_queue_length{model=\"m\"} 3\n"
    "# HELP go_threads Not ours.\n"
    "# TYPE go_threads gauge\n"
    "go_threads 7\n"
    "# TYPE sluice_engine_step_seconds histogram\n"
    "sluice_engine_step_seconds_bucket{le=\"0.1\"} 1\n"
    "sluice_engine_step_seconds_bucket{le=\"+Inf\"} 2\n"
    "sluice_engine_step_seconds_sum 0.3\n"
    "sluice_engine_step_seconds_count 2\n";
static const char *const worker1 =
    "# HELP sluice_engine_queue_length Requests waiting.\n"
    "# TYPE sluice_engine_queue_length gauge\n"
    "sluice_engine_queue_length{model=\"m\"} 5\n";

static void families_merge_with_labels(void **state)
{
    (void)state;
    const char *bodies[] = {worker0, worker1};
    const char *labels[] = {"upstream=\"local\",worker=\"0\"", "upstream=\"local\",worker=\"1\""};
    char *text = sl_engine_scrape_merge(bodies, labels, 2);
    assert_non_null(text);
    assert_string_equal(text,
                        "# HELP sluice_engine_queue_length Requests waiting.\n"
                        "# TYPE sluice_engine_queue_length gauge\n"
                        "sluice_engine_queue_length{upstream=\"local\",worker=\"0\",model=\"m\"} 3\n"
                        "sluice_engine_queue_length{upstream=\"local\",worker=\"1\",model=\"m\"} 5\n"
                        "# HELP sluice_engine_step_seconds Engine worker metric.\n"
                        "# TYPE sluice_engine_step_seconds histogram\n"
                        "sluice_engine_step_seconds_bucket{upstream=\"local\",worker=\"0\",le=\"0.1\"} 1\n"
                        "sluice_engine_step_seconds_bucket{upstream=\"local\",worker=\"0\",le=\"+Inf\"} 2\n"
                        "sluice_engine_step_seconds_sum{upstream=\"local\",worker=\"0\"} 0.3\n"
                        "sluice_engine_step_seconds_count{upstream=\"local\",worker=\"0\"} 2\n");
    free(text);
}

static void a_missing_worker_is_left_out(void **state)
{
    (void)state;
    const char *bodies[] = {NULL, worker1};
    const char *labels[] = {"worker=\"0\"", "worker=\"1\""};
    char *text = sl_engine_scrape_merge(bodies, labels, 2);
    assert_non_null(text);
    assert_non_null(strstr(text, "sluice_engine_queue_length{worker=\"1\",model=\"m\"} 5\n"));
    assert_null(strstr(text, "worker=\"0\""));
    free(text);
    const char *none[] = {NULL};
    text = sl_engine_scrape_merge(none, labels, 1);
    assert_non_null(text);
    assert_string_equal(text, "");
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(families_merge_with_labels),
        cmocka_unit_test(a_missing_worker_is_left_out),
    };
    return cmocka_run_group_tests_name("gateway_engine_scrape", tests, NULL, NULL);
}
