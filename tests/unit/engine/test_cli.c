/* sluice-engine's command line: defaults, every option, and errors a user can act on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "cli.h"

static sl_cli_result parse(sl_cli *cli, sl_err *err, int argc, ...)
{
    char *argv[32] = { "sluice-engine" };
    va_list ap;
    va_start(ap, argc);
    for (int i = 1; i <= argc; i++)
        argv[i] = va_arg(ap, char *);
    va_end(ap);
    return sl_cli_parse(argc + 1, argv, cli, err);
}

static void defaults(void **state)
{
    sl_cli cli;
    sl_err err = {0};
    assert_int_equal(parse(&cli, &err, 2, "--model", "/m/Qwen"), SL_CLI_RUN);
    assert_string_equal(cli.model_dir, "/m/Qwen");
    assert_string_equal(cli.listen, "127.0.0.1:8000");
    assert_int_equal(cli.backend, SL_BACKEND_AUTO);
    assert_null(cli.served_name);
    assert_int_equal(cli.max_batch, 8);
    assert_int_equal(cli.max_model_len, 0);
    assert_int_equal(cli.threads, 0);
    assert_true(cli.kv_cache_fraction > 0.89f && cli.kv_cache_fraction < 0.91f);
    assert_true(cli.prefix_reuse);
}

static void every_option(void **state)
{
    sl_cli cli;
    sl_err err = {0};
    assert_int_equal(parse(&cli, &err, 13, "--model", "d", "--listen", "unix:/tmp/e.sock",
                           "--backend", "cpu", "--served-model-name=r1", "--max-batch", "4",
                           "--max-model-len", "256", "--threads=2", "--max-num-batched-tokens=64"),
                     SL_CLI_RUN);
    assert_string_equal(cli.listen, "unix:/tmp/e.sock");
    assert_int_equal(cli.backend, SL_BACKEND_CPU);
    assert_string_equal(cli.served_name, "r1");
    assert_int_equal(cli.max_batch, 4);
    assert_int_equal(cli.max_model_len, 256);
    assert_int_equal(cli.threads, 2);
    assert_int_equal(cli.step_tokens, 64);
    assert_int_equal(parse(&cli, &err, 6, "--model", "d", "--backend", "cuda",
                           "--kv-cache-fraction", "0.5"), SL_CLI_RUN);
    assert_int_equal(cli.backend, SL_BACKEND_CUDA);
    assert_true(cli.kv_cache_fraction > 0.49f && cli.kv_cache_fraction < 0.51f);
    assert_int_equal(parse(&cli, &err, 4, "--model", "d", "--prefix-reuse", "off"), SL_CLI_RUN);
    assert_false(cli.prefix_reuse);
    assert_int_equal(parse(&cli, &err, 3, "--model", "d", "--prefix-reuse=on"), SL_CLI_RUN);
    assert_true(cli.prefix_reuse);
}

static void help_and_version(void **state)
{
    sl_cli cli;
    sl_err err = {0};
    assert_int_equal(parse(&cli, &err, 1, "--help"), SL_CLI_HELP);
    assert_int_equal(parse(&cli, &err, 1, "--version"), SL_CLI_VERSION);
}

static void expect_error(const char *want, sl_cli_result got, const sl_err *err)
{
    assert_int_equal(got, SL_CLI_ERROR);
    if (!strstr(err->msg, want))
        fail_msg("error '%s' does not mention '%s'", err->msg, want);
}

static void errors(void **state)
{
    sl_cli cli;
    sl_err err = {0};
    expect_error("--model DIR is required", parse(&cli, &err, 0), &err);
    expect_error("--backend must be auto, cpu or cuda", parse(&cli, &err, 4, "--model", "d", "--backend", "tpu"), &err);
    expect_error("--max-batch wants a whole number >= 1", parse(&cli, &err, 4, "--model", "d", "--max-batch", "0"), &err);
    expect_error("--max-batch wants", parse(&cli, &err, 4, "--model", "d", "--max-batch", "3x"), &err);
    expect_error("--kv-cache-fraction wants a number in (0, 1]", parse(&cli, &err, 4, "--model", "d", "--kv-cache-fraction", "0"), &err);
    expect_error("--kv-cache-fraction wants", parse(&cli, &err, 4, "--model", "d", "--kv-cache-fraction", "1.5"), &err);
    expect_error("--kv-cache-fraction wants", parse(&cli, &err, 4, "--model", "d", "--kv-cache-fraction", "x"), &err);
    expect_error("--prefix-reuse must be on or off, got 'yes'", parse(&cli, &err, 4, "--model", "d", "--prefix-reuse", "yes"), &err);
    expect_error("unknown option '--frobnicate'", parse(&cli, &err, 3, "--model", "d", "--frobnicate=1"), &err);
    expect_error("--listen needs a value", parse(&cli, &err, 3, "--model", "d", "--listen"), &err);
    expect_error("expected unix:PATH or HOST:PORT", parse(&cli, &err, 4, "--model", "d", "--listen", "8000"), &err);
    expect_error("port must be 0..65535", parse(&cli, &err, 4, "--model", "d", "--listen", "h:70000"), &err);
    expect_error("needs a socket path", parse(&cli, &err, 4, "--model", "d", "--listen", "unix:"), &err);
    expect_error("unexpected argument 'extra'", parse(&cli, &err, 3, "--model", "d", "extra"), &err);
}

static void hostport(void **state)
{
    char host[64];
    int port;
    sl_err err = {0};
    assert_int_equal(sl_cli_split_hostport("0.0.0.0:0", host, sizeof host, &port, &err), 0);
    assert_string_equal(host, "0.0.0.0");
    assert_int_equal(port, 0);
    assert_int_equal(sl_cli_split_hostport("[::1]:8080", host, sizeof host, &port, &err), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 8080);
    assert_int_equal(sl_cli_split_hostport(":80", host, sizeof host, &port, &err), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults),
        cmocka_unit_test(every_option),
        cmocka_unit_test(help_and_version),
        cmocka_unit_test(errors),
        cmocka_unit_test(hostport),
    };
    return cmocka_run_group_tests_name("engine_cli", tests, NULL, NULL);
}
