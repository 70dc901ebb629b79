/* sluice-engine's command line. */
#ifndef SL_CLI_H
#define SL_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "err.h"

typedef enum sl_backend_kind { SL_BACKEND_AUTO, SL_BACKEND_CPU, SL_BACKEND_CUDA } sl_backend_kind;

typedef struct sl_cli {
    const char *model_dir;
    const char *listen;          /* "unix:PATH" or "HOST:PORT" */
    sl_backend_kind backend;
    const char *served_name;     /* NULL: the model folder's name */
    int max_batch;
    int max_model_len;           /* 0: the model's, capped (see --help) */
    int step_tokens;
    int threads;                 /* 0: every core */
    float kv_cache_fraction;     /* CUDA: share of free GPU memory for the KV cache */
    bool prefix_reuse;           /* ended sequences keep their KV cache for shared prefixes */
} sl_cli;

typedef enum sl_cli_result { SL_CLI_RUN, SL_CLI_HELP, SL_CLI_VERSION, SL_CLI_ERROR } sl_cli_result;

/* Parse argv (pointers into argv are kept). On SL_CLI_ERROR err says what is wrong. */
sl_cli_result sl_cli_parse(int argc, char **argv, sl_cli *cli, sl_err *err);
void sl_cli_usage(FILE *f);

/* Split "HOST:PORT" (HOST may be [v6]) into host (cap bytes) and port. 0 or -1. */
int sl_cli_split_hostport(const char *addr, char *host, size_t cap, int *port, sl_err *err);

#endif
