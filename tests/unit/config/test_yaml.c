/* YAML tree: positions, anchors, merge keys, duplicate keys, syntax errors, and the
 * unit parsers (sizes, durations) the CLI uses too. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "yaml_tree.h"

static sl_ynode *parse(const char *text, sl_diag *d)
{
    sl_diag_init(d, "t.yaml");
    d->quiet = true;
    return sl_yaml_load_string(text, strlen(text), "t.yaml", d);
}

static void assert_diag(const sl_diag *d, const char *const *want, size_t n)
{
    bool same = d->n == n;
    for (size_t i = 0; same && i < n; i++)
        same = strcmp(d->lines[i], want[i]) == 0;
    if (!same) {
        for (size_t i = 0; i < n; i++)
            print_message("# want: %s\n", want[i]);
        for (size_t i = 0; i < d->n; i++)
            print_message("# got:  %s\n", d->lines[i]);
        fail_msg("diagnostics differ");
    }
}
#define ASSERT_DIAG(d, ...)                                                                     \
    do {                                                                                        \
        const char *const want_[] = {__VA_ARGS__};                                              \
        assert_diag((d), want_, sizeof want_ / sizeof *want_);                                  \
    } while (0)

static void positions_are_one_based(void **state)
{
    sl_diag d;
    sl_ynode *root = parse("a: 1\nlist:\n  - x\n  - { k: \"v\" }\n", &d);
    assert_non_null(root);
    assert_int_equal(d.n, 0);
    assert_int_equal(root->type, SL_Y_MAP);
    const sl_ynode *a = sl_ymap_get(root, "a");
    assert_int_equal(a->line, 1);
    assert_int_equal(a->col, 4);
    assert_false(a->quoted);
    const sl_ynode *list = sl_ymap_get(root, "list");
    assert_int_equal(list->type, SL_Y_SEQ);
    assert_int_equal(list->n, 2);
    assert_int_equal(list->items[0]->line, 3);
    assert_int_equal(list->items[0]->col, 5);
    const sl_ynode *v = sl_ymap_get(list->items[1], "k");
    assert_string_equal(v->scalar, "v");
    assert_true(v->quoted);
    assert_int_equal(v->line, 4);
    assert_int_equal(v->col, 10);
    char path[128];
    assert_string_equal(sl_ynode_path(v, path, sizeof path), "list[1].k");
    sl_ynode_free(root);
    sl_diag_free(&d);
}

static void anchors_and_merge_keys(void **state)
{
    sl_diag d;
    sl_ynode *root = parse("base: &b { x: 1, y: 2 }\n"
                           "one: *b\n"
                           "two: { <<: *b, y: 3 }\n", &d);
    assert_non_null(root);
    assert_int_equal(d.n, 0);
    const sl_ynode *one = sl_ymap_get(root, "one"), *two = sl_ymap_get(root, "two");
    assert_string_equal(sl_ymap_get(one, "x")->scalar, "1");
    assert_int_equal(two->n, 2);
    assert_string_equal(sl_ymap_get(two, "x")->scalar, "1");
    assert_string_equal(sl_ymap_get(two, "y")->scalar, "3");
    assert_null(sl_ymap_get(two, "<<"));
    /* a copied node keeps where it was written, and knows its new place */
    assert_int_equal(sl_ymap_get(one, "x")->line, 1);
    char path[128];
    assert_string_equal(sl_ynode_path(sl_ymap_get(two, "x"), path, sizeof path), "two.x");
    sl_ynode_free(root);
    sl_diag_free(&d);
}

static void duplicate_key_is_diagnosed(void **state)
{
    sl_diag d;
    sl_ynode *root = parse("server:\n  workers: 2\n  workers: 4\n", &d);
    assert_non_null(root);   /* the tree survives, so validation can report more */
    ASSERT_DIAG(&d, "t.yaml:3:3: server: duplicate key 'workers' (first written at line 2)");
    sl_ynode_free(root);
    sl_diag_free(&d);
}

static void complex_key_is_diagnosed(void **state)
{
    sl_diag d;
    sl_ynode *root = parse("? [a, b]\n: 1\nc: 2\n", &d);
    assert_non_null(root);
    ASSERT_DIAG(&d, "t.yaml:1:3: a key must be a plain string, not a list");
    assert_int_equal(root->keys[0]->type, SL_Y_SCALAR);
    assert_string_equal(sl_ymap_get(root, "c")->scalar, "2");
    sl_ynode_free(root);
    sl_diag_free(&d);
}

static void syntax_error_has_position(void **state)
{
    sl_diag d;
    assert_null(parse("a: 1\n  b: 2\n", &d));
    ASSERT_DIAG(&d, "t.yaml:2:4: YAML syntax error: mapping values are not allowed in this context");
    sl_diag_free(&d);
    assert_null(parse("a:\n\tb: 1\n", &d));
    ASSERT_DIAG(&d, "t.yaml:2:1: YAML syntax error: a tab character here: YAML indents with spaces only "
                    "(while scanning for the next token at line 2)");
    sl_diag_free(&d);
    assert_null(parse("a: [1, 2\nb: 3\n", &d));
    ASSERT_DIAG(&d, "t.yaml:2:2: YAML syntax error: did not find expected ',' or ']' "
                    "(while parsing a flow sequence at line 1)");
    sl_diag_free(&d);
}

static void unknown_alias_is_diagnosed(void **state)
{
    sl_diag d;
    sl_ynode *root = parse("a: *nope\n", &d);
    ASSERT_DIAG(&d, "t.yaml:1:4: alias *nope: no anchor &nope is defined before it "
                    "(an anchor cannot refer to itself)");
    sl_ynode_free(root);
    sl_diag_free(&d);
}

static void alias_bomb_is_refused(void **state)
{
    /* each level doubles: 2^30 nodes once expanded */
    char text[4096];
    size_t off = (size_t)snprintf(text, sizeof text, "a0: &a0 [x, x]\n");
    for (int i = 1; i <= 30; i++)
        off += (size_t)snprintf(text + off, sizeof text - off, "a%d: &a%d [*a%d, *a%d]\n", i, i, i - 1, i - 1);
    sl_diag d;
    assert_null(parse(text, &d));
    ASSERT_DIAG(&d, "t.yaml: the document is too large once its aliases are expanded");
    sl_diag_free(&d);
}

static void empty_document_is_an_empty_map(void **state)
{
    sl_diag d;
    sl_ynode *root = parse("# nothing\n", &d);
    assert_non_null(root);
    assert_int_equal(root->type, SL_Y_MAP);
    assert_int_equal(root->n, 0);
    sl_ynode_free(root);
    sl_diag_free(&d);
}

static void two_documents_are_refused(void **state)
{
    sl_diag d;
    assert_null(parse("a: 1\n---\nb: 2\n", &d));
    ASSERT_DIAG(&d, "t.yaml:2:1: only one YAML document is allowed in a config file");
    sl_diag_free(&d);
}

static void sizes(void **state)
{
    long long b = -1;
    assert_int_equal(sl_parse_size("512", &b), 0);
    assert_int_equal(b, 512);
    assert_int_equal(sl_parse_size("64KiB", &b), 0);
    assert_int_equal(b, 65536);
    assert_int_equal(sl_parse_size("256 MiB", &b), 0);
    assert_int_equal(b, 256LL << 20);
    assert_int_equal(sl_parse_size("1GiB", &b), 0);
    assert_int_equal(b, 1LL << 30);
    assert_int_equal(sl_parse_size("1.5KiB", &b), 0);
    assert_int_equal(b, 1536);
    assert_int_equal(sl_parse_size("10MB", &b), 0);
    assert_int_equal(b, 10000000);
    assert_int_equal(sl_parse_size("1_000", &b), 0);
    assert_int_equal(b, 1000);
    assert_int_equal(sl_parse_size("12XB", &b), -1);
    assert_int_equal(sl_parse_size("-1", &b), -1);
    assert_int_equal(sl_parse_size("", &b), -1);
    assert_int_equal(sl_parse_size("KiB", &b), -1);
    assert_int_equal(sl_parse_size("99999999TiB", &b), -1);
}

static void durations(void **state)
{
    long long ms = -1;
    assert_int_equal(sl_parse_duration_ms("250ms", &ms), 0);
    assert_int_equal(ms, 250);
    assert_int_equal(sl_parse_duration_ms("5s", &ms), 0);
    assert_int_equal(ms, 5000);
    assert_int_equal(sl_parse_duration_ms("2m", &ms), 0);
    assert_int_equal(ms, 120000);
    assert_int_equal(sl_parse_duration_ms("1h30m", &ms), 0);
    assert_int_equal(ms, 5400000);
    assert_int_equal(sl_parse_duration_ms("30d", &ms), 0);
    assert_int_equal(ms, 30LL * 86400000);
    assert_int_equal(sl_parse_duration_ms("1.5s", &ms), 0);
    assert_int_equal(ms, 1500);
    assert_int_equal(sl_parse_duration_ms("10", &ms), 0);   /* plain number: seconds */
    assert_int_equal(ms, 10000);
    assert_int_equal(sl_parse_duration_ms("ten", &ms), -1);
    assert_int_equal(sl_parse_duration_ms("5x", &ms), -1);
    assert_int_equal(sl_parse_duration_ms("-5s", &ms), -1);
    assert_int_equal(sl_parse_duration_ms("5s3", &ms), -1);
    assert_int_equal(sl_parse_duration_ms("", &ms), -1);
}

static void typed_readers_name_the_key(void **state)
{
    sl_diag d;
    sl_ynode *root = parse("t:\n  connect: ten\n  n: [1]\n  b: maybe\n  s: { a: 1 }\n  big: 99\n"
                           "  ok: yes\n  num: 1_000\n  q: \"7\"\n", &d);
    assert_non_null(root);
    const sl_ynode *t = sl_ymap_get(root, "t");
    long long v;
    bool b;
    char *s = NULL;
    assert_int_equal(sl_ynode_duration_ms(sl_ymap_get(t, "connect"), &d, &v), -1);
    assert_int_equal(sl_ynode_int(sl_ymap_get(t, "n"), &d, 0, 10, &v), -1);
    assert_int_equal(sl_ynode_bool(sl_ymap_get(t, "b"), &d, &b), -1);
    assert_int_equal(sl_ynode_string(sl_ymap_get(t, "s"), &d, &s), -1);
    assert_int_equal(sl_ynode_int(sl_ymap_get(t, "big"), &d, 0, 10, &v), -1);
    assert_int_equal(sl_ynode_size(sl_ymap_get(t, "connect"), &d, &v), -1);
    ASSERT_DIAG(&d,
        "t.yaml:2:12: t.connect: expected a duration like 500ms, 10s, 2m (got \"ten\")",
        "t.yaml:3:6: t.n: expected a whole number (got a list)",
        "t.yaml:4:6: t.b: expected true or false (got \"maybe\")",
        "t.yaml:5:6: t.s: expected a string (got a map)",
        "t.yaml:6:8: t.big: expected a number from 0 to 10 (got 99)",
        "t.yaml:2:12: t.connect: expected a size like 512, 64KiB, 256MiB, 1GiB (got \"ten\")");
    assert_int_equal(sl_ynode_bool(sl_ymap_get(t, "ok"), &d, &b), 0);
    assert_true(b);
    assert_int_equal(sl_ynode_int(sl_ymap_get(t, "num"), &d, 0, 10000, &v), 0);
    assert_int_equal(v, 1000);
    assert_int_equal(sl_ynode_int(sl_ymap_get(t, "q"), &d, 0, 10, &v), 0);
    assert_int_equal(v, 7);
    assert_int_equal(sl_ynode_string(sl_ymap_get(t, "q"), &d, &s), 0);
    assert_string_equal(s, "7");
    free(s);
    sl_ynode_free(root);
    sl_diag_free(&d);
}

static void unknown_keys_suggest(void **state)
{
    static const char *const allowed[] = {"timeouts", "base_url", "api_key_env", NULL};
    sl_diag d;
    sl_ynode *root = parse("u:\n  timout: 1\n  api_key: sk-x\n  zzz: 1\n", &d);
    assert_int_equal(sl_ymap_check_keys(sl_ymap_get(root, "u"), allowed, &d), -1);
    ASSERT_DIAG(&d,
        "t.yaml:2:3: u: unknown key 'timout' (did you mean 'timeouts'?)",
        "t.yaml:3:3: u: 'api_key' must not be written in the file: put the secret in an environment "
        "variable and name that variable with api_key_env",
        "t.yaml:4:3: u: unknown key 'zzz' (known keys: timeouts, base_url, api_key_env)");
    sl_ynode_free(root);
    sl_diag_free(&d);
}

static void diag_sorts_by_position(void **state)
{
    sl_diag d;
    sl_diag_init(&d, "f.yaml");
    d.quiet = true;
    sl_diag_add_at(&d, 9, 1, "late");
    sl_diag_add_at(&d, 2, 5, "early");
    sl_diag_add_at(&d, 2, 5, "early, second");
    sl_diag_sort(&d);
    ASSERT_DIAG(&d, "f.yaml:2:5: early", "f.yaml:2:5: early, second", "f.yaml:9:1: late");
    sl_diag_warn(&d, NULL, "careful");
    assert_int_equal(d.n_warnings, 1);
    assert_string_equal(d.warnings[0], "f.yaml: warning: careful");
    sl_diag_free(&d);
    assert_int_equal(d.n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(positions_are_one_based),
        cmocka_unit_test(anchors_and_merge_keys),
        cmocka_unit_test(duplicate_key_is_diagnosed),
        cmocka_unit_test(complex_key_is_diagnosed),
        cmocka_unit_test(syntax_error_has_position),
        cmocka_unit_test(unknown_alias_is_diagnosed),
        cmocka_unit_test(alias_bomb_is_refused),
        cmocka_unit_test(empty_document_is_an_empty_map),
        cmocka_unit_test(two_documents_are_refused),
        cmocka_unit_test(sizes),
        cmocka_unit_test(durations),
        cmocka_unit_test(typed_readers_name_the_key),
        cmocka_unit_test(unknown_keys_suggest),
        cmocka_unit_test(diag_sorts_by_position),
    };
    return cmocka_run_group_tests_name("yaml_tree", tests, NULL, NULL);
}
