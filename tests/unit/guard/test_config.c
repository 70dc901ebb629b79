/* guard options: what is accepted, and every mistake reported at FILE:LINE:COL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "guard_int.h"
#include "plugin.h"

/* Parse yaml as the guard's options (file name `file`); returns the conf or NULL, and the
 * first error (or warning) line in *first (caller frees). */
static sl_guard_conf *parse(const char *file, const char *yaml, char **first, bool *warned)
{
    sl_diag d;
    sl_diag_init(&d, file);
    d.quiet = true;
    sl_ynode *root = sl_yaml_load_string(yaml, strlen(yaml), file, &d);
    assert_non_null(root);
    sl_plugin_ctx ctx = {.config = NULL, .diag = &d};
    void *conf = NULL;
    int rc = sl_guard_config_parse(root, &ctx, &conf);
    *first = d.n ? strdup(d.lines[0]) : d.n_warnings ? strdup(d.warnings[0]) : NULL;
    if (warned)
        *warned = d.n_warnings > 0;
    sl_ynode_free(root);
    sl_diag_free(&d);
    if (rc != 0) {
        sl_guard_config_free(conf);
        return NULL;
    }
    return conf;
}

static void expect_error(const char *yaml, const char *want)
{
    char *first = NULL;
    sl_guard_conf *c = parse("sluice.yaml", yaml, &first, NULL);
    assert_null(c);
    assert_non_null(first);
    if (!strstr(first, want))
        fail_msg("error '%s' does not contain '%s'", first, want);
    free(first);
}

static void test_full_options(void **state)
{
    (void)state;
    char *first = NULL;
    sl_guard_conf *c = parse("sluice.yaml",
                             "deny: [foo, barbaz]\n"
                             "deny_regex: ['x[0-9]{3}']\n"
                             "mask: [email, phone, cn_mobile, cn_id, card, {regex: 'p-[0-9]+', replace: '[P]'}]\n"
                             "apply_to: request\n"
                             "on_request_hit: refuse\n"
                             "refusal_message: No.\n"
                             "holdback: 10\n",
                             &first, NULL);
    assert_non_null(c);
    assert_null(first);
    assert_int_equal(c->rules.n_words, 2);
    assert_int_equal(c->rules.n_re, 1);
    assert_int_equal(c->n_masks, 6);
    assert_true(c->on_request);
    assert_false(c->on_response);
    assert_true(c->refuse);
    assert_string_equal(c->refusal, "No.");
    assert_int_equal(c->holdback, 10);
    sl_guard_config_free(c);
}

static void test_errors_have_positions(void **state)
{
    (void)state;
    expect_error("deny_regex: [ok, '(open']\n",
                 "sluice.yaml:1:18: deny_regex[1]: bad regex at offset 5: missing closing parenthesis");
    expect_error("deny: [a]\nmask: [emails]\n", "sluice.yaml:2:8: mask[0]: unknown mask 'emails'");
    expect_error("deny: [a]\napply_to: all\n", "sluice.yaml:2:11: apply_to: expected one of both, request, response");
    expect_error("deny: [a]\non_request_hit: drop\n", "sluice.yaml:2:17: on_request_hit: expected one of error, refuse");
    expect_error("deny: [a]\nholdback: 100000\n", "sluice.yaml:2:11: holdback: expected a number from 0 to 4096");
    expect_error("deny: [a]\nmask: [{regex: 'a('}]\n", "a custom mask needs both regex and replace");
    expect_error("deny: [a]\nmask: [{regex: 'a(', replace: x}]\n", "mask[0].regex: bad regex");
    expect_error("deny: ['\xE2\x80\x8B']\n", "sluice.yaml:1:8: deny[0]: a deny keyword must not be empty");
    expect_error("deny: [a]\ndenny: [b]\n", "sluice.yaml:2:1:");
    expect_error("apply_to: both\n", "the guard has nothing to do");
    expect_error("deny_file: /nonexistent/words.txt\n", "sluice.yaml:1:12: deny_file: cannot read /nonexistent/words.txt");
}

static void test_deny_file_relative_to_config(void **state)
{
    (void)state;
    char dir[] = "/tmp/sl-guard-test.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256], conf[256];
    snprintf(path, sizeof path, "%s/words.txt", dir);
    snprintf(conf, sizeof conf, "%s/sluice.yaml", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("# comment\nalpha\n\n  Beta  \n\xE5\x9D\x8F\xE4\xBA\x8B\r\n", f);
    fclose(f);
    char *first = NULL;
    sl_guard_conf *c = parse(conf, "deny: [x]\ndeny_file: words.txt\n", &first, NULL);
    assert_non_null(c);
    assert_int_equal(c->rules.n_words, 4);
    sl_guard_hit h;
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    assert_true(sl_guard_rules_scan(&c->rules, "zz beta", 7, 0, false, false, md, &h));
    char name[64];
    assert_string_equal(sl_guard_rule_name(&c->rules, &h, name, sizeof name), "deny_file:4");
    assert_true(sl_guard_rules_scan(&c->rules, "x", 1, 0, false, false, md, &h));
    assert_string_equal(sl_guard_rule_name(&c->rules, &h, name, sizeof name), "deny[0]");
    pcre2_match_data_free(md);
    sl_guard_config_free(c);
    unlink(path);
    rmdir(dir);
}

static void test_holdback_defaults_and_warnings(void **state)
{
    (void)state;
    char *first = NULL;
    bool warned;
    sl_guard_conf *c = parse("sluice.yaml", "deny: [abc, abcdefgh]\n", &first, &warned);
    assert_int_equal(c->holdback, 8);
    assert_false(warned);
    sl_guard_config_free(c);
    c = parse("sluice.yaml", "deny_regex: ['a+']\n", &first, &warned);
    assert_int_equal(c->holdback, SL_GUARD_HOLDBACK_DEFAULT_CAP);
    assert_true(warned);
    if (!strstr(first, "sluice.yaml:1:14: warning: deny_regex[0]: a deny rule can match more than 256"))
        fail_msg("warning: %s", first);
    free(first);
    sl_guard_config_free(c);
    c = parse("sluice.yaml", "deny: [abcdefgh]\nholdback: 3\n", &first, &warned);
    assert_true(warned);
    assert_non_null(strstr(first, "holdback 3 is shorter than the longest deny rule (8 characters)"));
    free(first);
    sl_guard_config_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_options),
        cmocka_unit_test(test_errors_have_positions),
        cmocka_unit_test(test_deny_file_relative_to_config),
        cmocka_unit_test(test_holdback_defaults_and_warnings),
    };
    return cmocka_run_group_tests_name("guard_config", tests, NULL, NULL);
}
