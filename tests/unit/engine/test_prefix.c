/* Prefix reuse bookkeeping: which free slot a prompt takes, how much of it is reused, and
 * which kept cache goes first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "prefix.h"

static void ids_from(int32_t *ids, int n, int base)
{
    for (int i = 0; i < n; i++)
        ids[i] = base + i;
}

static void longest_shared_prefix_wins(void **state)
{
    sl_prefix *p = sl_prefix_new(4, 4);
    int32_t a[20], b[20], q[20];
    ids_from(a, 20, 100);
    ids_from(b, 20, 100);
    b[6] = 7;
    assert_int_equal(sl_prefix_keep(p, 1, a, 10, a + 10, 10), 0);   /* kept in two parts */
    assert_int_equal(sl_prefix_keep(p, 2, b, 20, NULL, 0), 0);
    assert_int_equal(sl_prefix_kept(p, 1), 20);
    int free_slots[] = { 0, 1, 2, 3 }, common = -1;
    ids_from(q, 20, 100);
    q[15] = 0;
    assert_int_equal(sl_prefix_best(p, free_slots, 4, q, 20, &common), 1);
    assert_int_equal(common, 15);
    /* the whole prompt kept: all but its last token */
    assert_int_equal(sl_prefix_best(p, free_slots, 4, a, 12, &common), 1);
    assert_int_equal(common, 11);
    /* only slots in the free list count */
    int some[] = { 0, 2, 3 };
    assert_int_equal(sl_prefix_best(p, some, 3, q, 20, &common), 1);
    assert_int_equal(common, 6);
    sl_prefix_free(p);
}

static void short_prefixes_are_not_reused(void **state)
{
    sl_prefix *p = sl_prefix_new(2, 16);
    int32_t a[40], q[40];
    ids_from(a, 40, 100);
    ids_from(q, 40, 100);
    q[15] = 1;
    sl_prefix_keep(p, 0, a, 40, NULL, 0);
    int free_slots[] = { 0, 1 }, common = -1;
    assert_int_equal(sl_prefix_best(p, free_slots, 2, q, 40, &common), -1);
    assert_int_equal(common, 0);
    /* 16 shared but a 16-token prompt: its last token is computed, 15 is too few */
    assert_int_equal(sl_prefix_best(p, free_slots, 2, a, 16, &common), -1);
    assert_int_equal(sl_prefix_best(p, free_slots, 2, a, 17, &common), 0);
    assert_int_equal(common, 16);
    sl_prefix_free(p);
}

static void ties_go_to_the_most_recent(void **state)
{
    sl_prefix *p = sl_prefix_new(3, 1);
    int32_t a[8];
    ids_from(a, 8, 100);
    sl_prefix_keep(p, 2, a, 8, NULL, 0);
    sl_prefix_keep(p, 0, a, 8, NULL, 0);
    int free_slots[] = { 0, 1, 2 }, common;
    assert_int_equal(sl_prefix_best(p, free_slots, 3, a, 8, &common), 0);
    sl_prefix_keep(p, 2, a, 8, NULL, 0);
    assert_int_equal(sl_prefix_best(p, free_slots, 3, a, 8, &common), 2);
    sl_prefix_free(p);
}

static void victims_unused_first_then_least_recent(void **state)
{
    sl_prefix *p = sl_prefix_new(3, 1);
    int32_t a[4] = { 1, 2, 3, 4 };
    int free_slots[] = { 0, 1, 2 };
    assert_int_equal(sl_prefix_oldest(p, free_slots, 3), -1);
    sl_prefix_keep(p, 1, a, 4, NULL, 0);
    sl_prefix_keep(p, 0, a, 4, NULL, 0);
    assert_int_equal(sl_prefix_victim(p, free_slots, 3), 2);   /* keeps nothing */
    assert_int_equal(sl_prefix_oldest(p, free_slots, 3), 1);
    sl_prefix_keep(p, 2, a, 4, NULL, 0);
    assert_int_equal(sl_prefix_victim(p, free_slots, 3), 1);
    sl_prefix_drop(p, 1);
    assert_int_equal(sl_prefix_kept(p, 1), 0);
    assert_int_equal(sl_prefix_oldest(p, free_slots, 3), 0);
    assert_int_equal(sl_prefix_victim(p, free_slots, 3), 1);
    sl_prefix_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(longest_shared_prefix_wins),
        cmocka_unit_test(short_prefixes_are_not_reused),
        cmocka_unit_test(ties_go_to_the_most_recent),
        cmocka_unit_test(victims_unused_first_then_least_recent),
    };
    return cmocka_run_group_tests_name("engine_prefix", tests, NULL, NULL);
}
