/* The HTTP side of sluice-engine: one libevent loop serving the OpenAI API; generation
 * runs in the scheduler thread and comes back through its eventfd. */
#ifndef SL_SERVER_H
#define SL_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include "chat_template.h"
#include "err.h"
#include "scheduler.h"
#include "tokenizer.h"

typedef struct sl_server_cfg {
    const char *listen;          /* "unix:PATH" or "HOST:PORT" */
    const char *served_name;
    int max_model_len;
    const sl_tokenizer *tok;
    const sl_chat_template *tmpl;
    sl_sched *sched;
    int32_t completion_bos;      /* prepended to /v1/completions prompts; -1: none */
} sl_server_cfg;

/* Serve until SIGINT or SIGTERM. Returns 0, or -1 with err (cannot listen, ...). */
int sl_server_run(const sl_server_cfg *cfg, sl_err *err);

#endif
