#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

void sl_cli_usage(FILE *f)
{
    fputs("usage: sluice-engine --model DIR [options]\n"
          "\n"
          "Serves a Hugging Face model folder (Qwen2 / Llama, e.g. DeepSeek-R1-Distill) over the\n"
          "OpenAI API: /v1/chat/completions, /v1/completions, /v1/models, /health, /metrics.\n"
          "\n"
          "  --model DIR                 model folder: config.json, *.safetensors, tokenizer.json,\n"
          "                              tokenizer_config.json\n"
          "  --listen ADDR               unix:PATH or HOST:PORT (default 127.0.0.1:8000; port 0\n"
          "                              picks a free one, printed at start)\n"
          "  --backend auto|cpu|cuda     compute backend (default auto: cuda when built with it\n"
          "                              and a GPU is present, else cpu)\n"
          "  --served-model-name NAME    model name clients use (default: the folder's name)\n"
          "  --max-batch N               sequences generated at once (default 8)\n"
          "  --max-model-len N           prompt + completion tokens per sequence (default: the\n"
          "                              model's max_position_embeddings, at most 4096)\n"
          "  --max-num-batched-tokens N  tokens per forward step, decodes plus prompt chunks\n"
          "                              (default 512)\n"
          "  --threads N                 CPU backend threads (default: every core)\n"
          "  --kv-cache-fraction F       CUDA: share of the GPU memory left after the weights\n"
          "                              that the paged KV cache takes, 0 < F <= 1 (default 0.9)\n"
          "  --prefix-reuse on|off       keep an ended sequence's KV cache, so that a prompt\n"
          "                              starting with the same 16+ tokens prefills only the\n"
          "                              rest (default on)\n"
          "  --help, --version\n", f);
}

static int parse_pos_int(const char *opt, const char *v, int min, int *out, sl_err *err)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || *v == '\0' || *end != '\0' || n < min || n > INT_MAX) {
        sl_err_set(err, "%s wants a whole number >= %d, got '%s'", opt, min, v);
        return -1;
    }
    *out = (int)n;
    return 0;
}

int sl_cli_split_hostport(const char *addr, char *host, size_t cap, int *port, sl_err *err)
{
    const char *colon = strrchr(addr, ':');
    if (!colon || colon == addr) {
        sl_err_set(err, "--listen '%s': expected unix:PATH or HOST:PORT", addr);
        return -1;
    }
    const char *h = addr;
    size_t hlen = (size_t)(colon - addr);
    if (h[0] == '[' && hlen >= 2 && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    if (hlen == 0 || hlen >= cap) {
        sl_err_set(err, "--listen '%s': bad host", addr);
        return -1;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    if (parse_pos_int("--listen port", colon + 1, 0, port, err) < 0 || *port > 65535) {
        sl_err_set(err, "--listen '%s': port must be 0..65535", addr);
        return -1;
    }
    return 0;
}

sl_cli_result sl_cli_parse(int argc, char **argv, sl_cli *cli, sl_err *err)
{
    *cli = (sl_cli){ .listen = "127.0.0.1:8000", .backend = SL_BACKEND_AUTO, .max_batch = 8,
                     .step_tokens = 512, .kv_cache_fraction = 0.9f,
                     .prefix_reuse = true };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h"))
            return SL_CLI_HELP;
        if (!strcmp(a, "--version"))
            return SL_CLI_VERSION;
        /* every other option takes a value, as "--opt VALUE" or "--opt=VALUE" */
        const char *eq = strchr(a, '=');
        char name[64];
        const char *v;
        if (strncmp(a, "--", 2) != 0) {
            sl_err_set(err, "unexpected argument '%s' (see --help)", a);
            return SL_CLI_ERROR;
        }
        if (eq) {
            snprintf(name, sizeof name, "%.*s", (int)(eq - a), a);
            v = eq + 1;
        } else {
            snprintf(name, sizeof name, "%s", a);
            if (i + 1 >= argc) {
                sl_err_set(err, "%s needs a value (see --help)", a);
                return SL_CLI_ERROR;
            }
            v = argv[++i];
        }
        int rc = 0;
        if (!strcmp(name, "--model"))
            cli->model_dir = v;
        else if (!strcmp(name, "--listen"))
            cli->listen = v;
        else if (!strcmp(name, "--served-model-name"))
            cli->served_name = v;
        else if (!strcmp(name, "--backend")) {
            if (!strcmp(v, "auto"))
                cli->backend = SL_BACKEND_AUTO;
            else if (!strcmp(v, "cpu"))
                cli->backend = SL_BACKEND_CPU;
            else if (!strcmp(v, "cuda"))
                cli->backend = SL_BACKEND_CUDA;
            else {
                sl_err_set(err, "--backend must be auto, cpu or cuda, got '%s'", v);
                return SL_CLI_ERROR;
            }
        } else if (!strcmp(name, "--max-batch"))
            rc = parse_pos_int(name, v, 1, &cli->max_batch, err);
        else if (!strcmp(name, "--max-model-len"))
            rc = parse_pos_int(name, v, 2, &cli->max_model_len, err);
        else if (!strcmp(name, "--max-num-batched-tokens"))
            rc = parse_pos_int(name, v, 1, &cli->step_tokens, err);
        else if (!strcmp(name, "--threads"))
            rc = parse_pos_int(name, v, 0, &cli->threads, err);
        else if (!strcmp(name, "--kv-cache-fraction")) {
            char *end;
            errno = 0;
            double f = strtod(v, &end);
            if (errno || *v == '\0' || *end != '\0' || !(f > 0.0 && f <= 1.0)) {
                sl_err_set(err, "--kv-cache-fraction wants a number in (0, 1], got '%s'", v);
                return SL_CLI_ERROR;
            }
            cli->kv_cache_fraction = (float)f;
        } else if (!strcmp(name, "--prefix-reuse")) {
            if (strcmp(v, "on") != 0 && strcmp(v, "off") != 0) {
                sl_err_set(err, "--prefix-reuse must be on or off, got '%s'", v);
                return SL_CLI_ERROR;
            }
            cli->prefix_reuse = !strcmp(v, "on");
        }
        else {
            sl_err_set(err, "unknown option '%s' (see --help)", name);
            return SL_CLI_ERROR;
        }
        if (rc < 0)
            return SL_CLI_ERROR;
    }
    if (!cli->model_dir || !*cli->model_dir) {
        sl_err_set(err, "--model DIR is required (see --help)");
        return SL_CLI_ERROR;
    }
    if (cli->served_name && !*cli->served_name) {
        sl_err_set(err, "--served-model-name must not be empty");
        return SL_CLI_ERROR;
    }
    if (strncmp(cli->listen, "unix:", 5) == 0) {
        if (cli->listen[5] == '\0') {
            sl_err_set(err, "--listen unix: needs a socket path");
            return SL_CLI_ERROR;
        }
    } else {
        char host[256];
        int port;
        if (sl_cli_split_hostport(cli->listen, host, sizeof host, &port, err) < 0)
            return SL_CLI_ERROR;
    }
    return SL_CLI_RUN;
}
