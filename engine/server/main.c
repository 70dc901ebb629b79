/* sluice-engine: load a model folder, start the scheduler thread, serve the OpenAI API. */
#include <jansson.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend.h"
#include "chat_template.h"
#include "cli.h"
#include "model.h"
#include "scheduler.h"
#include "server.h"
#include "sl_build_config.h"
#include "tokenizer.h"

#define DEFAULT_MAX_LEN_CAP 4096

/* Every file a model folder needs, checked up front so the error names what is missing. */
static int check_model_dir(const char *dir, sl_err *err)
{
    struct stat st;
    if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
        sl_err_set(err, "--model %s: no such folder", dir);
        return -1;
    }
    static const char *const need[] = { "config.json", "tokenizer.json", "tokenizer_config.json" };
    for (size_t i = 0; i < sizeof need / sizeof *need; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, need[i]);
        if (access(path, R_OK) < 0) {
            sl_err_set(err, "model folder %s has no readable %s (a Hugging Face model folder "
                       "holds config.json, *.safetensors, tokenizer.json and "
                       "tokenizer_config.json)", dir, need[i]);
            return -1;
        }
    }
    return 0;
}

static void add_eos(int32_t *eos, int *n, int cap, int32_t id)
{
    if (id < 0)
        return;
    for (int i = 0; i < *n; i++)
        if (eos[i] == id)
            return;
    if (*n < cap)
        eos[(*n)++] = id;
}

/* Ids that end a generation: config.json's (and generation_config.json's) eos ids, the
 * template's eos token and its end-of-turn token, looked up in the model's own vocabulary. */
static int collect_eos(const sl_model *m, const sl_tokenizer *tok, const sl_chat_template *tmpl,
                       int32_t *eos, int cap)
{
    int n = 0;
    for (int i = 0; i < m->cfg.n_eos; i++)
        add_eos(eos, &n, cap, m->cfg.eos_token_ids[i]);
    const char *names[] = { sl_chat_template_eos_token(tmpl), sl_chat_template_end_of_turn(tmpl) };
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (names[i] && *names[i])
            add_eos(eos, &n, cap, sl_tokenizer_token_id(tok, names[i]));
    return n;
}

/* The BOS id a plain completion prompt starts with, as Hugging Face's encode() adds it:
 * only where tokenizer_config.json says add_bos_token (chat templates write their own). */
static int32_t completion_bos(const char *dir, const sl_tokenizer *tok, const sl_chat_template *tmpl)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    json_t *tc = json_load_file(path, 0, NULL);
    bool add = json_is_true(json_object_get(tc, "add_bos_token"));
    json_decref(tc);
    const char *bos = sl_chat_template_bos_token(tmpl);
    return add && bos && *bos ? sl_tokenizer_token_id(tok, bos) : -1;
}

/* The folder's own name, without trailing slashes. Caller frees. */
static char *folder_name(const char *dir)
{
    char *copy = strdup(dir);
    if (!copy)
        return NULL;
    size_t n = strlen(copy);
    while (n > 1 && copy[n - 1] == '/')
        copy[--n] = '\0';
    char *name = strdup(basename(copy));
    free(copy);
    return name;
}

static sl_backend *make_backend(const sl_cli *cli, const sl_model *m, int max_len, sl_err *err)
{
    sl_backend_opts bo = { .max_seqs = cli->max_batch, .max_len = max_len, .threads = cli->threads,
                           .kv_cache_fraction = cli->kv_cache_fraction,
                           .max_step_tokens = cli->step_tokens + cli->max_batch + 16 };
#if SL_HAVE_CUDA
    if (cli->backend == SL_BACKEND_CUDA ||
        (cli->backend == SL_BACKEND_AUTO && sl_backend_cuda_available()))
        return m ? sl_backend_cuda_create(m, &bo, err) : NULL;
#else
    if (cli->backend == SL_BACKEND_CUDA) {
        sl_err_set(err, "--backend cuda: sluice-engine was not built with CUDA (rebuild with "
                   "-Dcuda=enabled on a host with nvcc), use --backend cpu");
        return NULL;
    }
#endif
    return m ? sl_backend_cpu_create(m, &bo, err) : NULL;
}

int main(int argc, char **argv)
{
    sl_cli cli;
    sl_err err = {0};
    sl_model *model = NULL;
    sl_tokenizer *tok = NULL;
    sl_chat_template *tmpl = NULL;
    sl_backend *be = NULL;
    sl_sched *sched = NULL;
    char *name = NULL;
    int rc = 1;

    switch (sl_cli_parse(argc, argv, &cli, &err)) {
    case SL_CLI_HELP:
        sl_cli_usage(stdout);
        return 0;
    case SL_CLI_VERSION:
        printf("sluice-engine %s\n", SL_VERSION);
        return 0;
    case SL_CLI_ERROR:
        fprintf(stderr, "sluice-engine: error: %s\n", err.msg);
        return 1;
    case SL_CLI_RUN:
        break;
    }
#if !SL_HAVE_CUDA
    if (cli.backend == SL_BACKEND_CUDA && !make_backend(&cli, NULL, 0, &err))
        goto fail;
#endif
    if (check_model_dir(cli.model_dir, &err) < 0)
        goto fail;

    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer.json", cli.model_dir);
    if (!(tok = sl_tokenizer_load(path, &err)))
        goto fail;
    snprintf(path, sizeof path, "%s/tokenizer_config.json", cli.model_dir);
    if (!(tmpl = sl_chat_template_load(path, &err)))
        goto fail;
    if (!(model = sl_model_load(cli.model_dir, &err)))
        goto fail;

    int max_pos = model->cfg.max_position_embeddings;
    int max_len = cli.max_model_len;
    if (max_len == 0)
        max_len = max_pos < DEFAULT_MAX_LEN_CAP ? max_pos : DEFAULT_MAX_LEN_CAP;
    else if (max_len > max_pos) {
        sl_err_set(&err, "--max-model-len %d is more than the model's max_position_embeddings (%d)",
                   max_len, max_pos);
        goto fail;
    }
    if (!(be = make_backend(&cli, model, max_len, &err)))
        goto fail;

    int32_t eos[16];
    int n_eos = collect_eos(model, tok, tmpl, eos, 16);
    sl_sched_opts so = { .max_batch = cli.max_batch, .max_len = max_len,
                         .step_tokens = cli.step_tokens, .eos = eos, .n_eos = n_eos,
                         .prefix_reuse = cli.prefix_reuse };
    if (!(sched = sl_sched_create(be, tok, &so, &err)))
        goto fail;

    if (!(name = cli.served_name ? strdup(cli.served_name) : folder_name(cli.model_dir))) {
        sl_err_set(&err, "out of memory");
        goto fail;
    }
    fprintf(stderr, "sluice-engine %s: serving %s (%s backend, max batch %d, max model len %d, "
            "prefix reuse %s)\n", SL_VERSION, name, be->ops->name, cli.max_batch, max_len,
            cli.prefix_reuse ? "on" : "off");
    sl_server_cfg sc = { .listen = cli.listen, .served_name = name, .max_model_len = max_len,
                         .tok = tok, .tmpl = tmpl, .sched = sched,
                         .completion_bos = completion_bos(cli.model_dir, tok, tmpl) };
    if (sl_server_run(&sc, &err) < 0)
        goto fail;
    rc = 0;
fail:
    if (rc)
        fprintf(stderr, "sluice-engine: error: %s\n", err.msg);
    sl_sched_free(sched);
    if (be)
        be->ops->destroy(be);
    if (model)
        sl_model_free(model);
    if (tmpl)
        sl_chat_template_free(tmpl);
    if (tok)
        sl_tokenizer_free(tok);
    free(name);
    return rc;
}
