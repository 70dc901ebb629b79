/* sluice: the gateway binary and its command line. */
#include <getopt.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_admin.h"
#include "config.h"
#include "log.h"
#include "server.h"
#include "sl_build_config.h"

#define DEFAULT_CONFIG "conf/sluice.yaml"

static const char usage_main[] =
    "usage: sluice COMMAND [options]\n"
    "\n"
    "commands:\n"
    "  serve -c FILE    run the gateway (default FILE: " DEFAULT_CONFIG ")\n"
    "  check -c FILE    validate a config; print every error as FILE:LINE:COL: message\n"
    "  key issue|list|revoke|hash   manage API keys (sluice key --help)\n"
    "  usage [--consumer NAME]      token usage and remaining quota (sluice usage --help)\n"
    "\n"
    "options:\n"
    "  -h, --help       this help (also: sluice COMMAND --help)\n"
    "  -V, --version    print the version\n";

static const char usage_serve[] =
    "usage: sluice serve [-c FILE]\n"
    "\n"
    "Runs the gateway with the config FILE (default " DEFAULT_CONFIG "). SIGTERM or SIGINT\n"
    "stops accepting connections, lets requests in flight finish (server.shutdown_timeout),\n"
    "then exits 0.\n";

static const char usage_check[] =
    "usage: sluice check [-c FILE]\n"
    "\n"
    "Validates the config FILE as a whole and prints every error as FILE:LINE:COL: message.\n"
    "Exit status: 0 when the file is valid, 1 when it has errors, 2 on bad usage.\n";

static int parse_config_flag(int argc, char **argv, const char *usage, const char **path)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            *path = optarg;
            break;
        case 'h':
            fputs(usage, stdout);
            exit(0);
        default:
            fputs(usage, stderr);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "sluice: unexpected argument '%s'\n%s", argv[optind], usage);
        return -1;
    }
    return 0;
}

static sl_config *load(const char *path)
{
    sl_diag d;
    sl_diag_init(&d, path);
    sl_config *cfg = sl_config_load(path, &d);
    for (size_t i = 0; i < d.n; i++)
        fprintf(stderr, "%s\n", d.lines[i]);
    sl_diag_free(&d);
    return cfg;
}

static int cmd_check(int argc, char **argv)
{
    const char *path = DEFAULT_CONFIG;
    if (parse_config_flag(argc, argv, usage_check, &path) < 0)
        return 2;
    sl_config *cfg = load(path);
    if (!cfg)
        return 1;
    printf("%s: ok\n", path);
    sl_config_unref(cfg);
    return 0;
}

static int cmd_serve(int argc, char **argv)
{
    const char *path = DEFAULT_CONFIG;
    if (parse_config_flag(argc, argv, usage_serve, &path) < 0)
        return 2;
    sl_config *cfg = load(path);
    if (!cfg) {
        sl_log_error("%s: not starting: the config has errors", path);
        return 1;
    }
    /* request-sized buffers come and go all the time: keep freed memory instead of
     * returning it to the kernel after every burst */
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
    sl_err err = {{0}};
    int rc = sl_server_run(cfg, &err);
    sl_config_unref(cfg);
    if (rc < 0) {
        sl_log_error("%s", err.msg);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage_main, stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0 || strcmp(cmd, "version") == 0) {
        printf("sluice %s\n", SL_VERSION);
        return 0;
    }
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        fputs(usage_main, stdout);
        return 0;
    }
    if (strcmp(cmd, "serve") == 0)
        return cmd_serve(argc - 1, argv + 1);
    if (strcmp(cmd, "check") == 0)
        return cmd_check(argc - 1, argv + 1);
    if (strcmp(cmd, "key") == 0)
        return sl_cli_key(argc - 1, argv + 1);
    if (strcmp(cmd, "usage") == 0)
        return sl_cli_usage(argc - 1, argv + 1);
    fprintf(stderr, "sluice: unknown command '%s'\n\n%s", cmd, usage_main);
    return 2;
}
