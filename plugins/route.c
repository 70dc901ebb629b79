/* route: maps the client-facing model name to a target {upstream, model} and rewrites the
 * request's `model` to the target's name. Always the last plugin of the chain. */
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "exchange.h"
#include "plugin.h"

static const sl_target_conf *pick_target(const sl_model_conf *m)
{
    if (m->n_targets == 1)
        return &m->targets[0];
    long total = 0;
    for (size_t i = 0; i < m->n_targets; i++)
        total += m->targets[i].weight;
    if (total <= 0)
        return &m->targets[0];
    long r = (long)(random() % total);
    for (size_t i = 0; i < m->n_targets; i++) {
        r -= m->targets[i].weight;
        if (r < 0)
            return &m->targets[i];
    }
    return &m->targets[m->n_targets - 1];
}

static sl_step route_on_request(sl_exchange *ex, void *conf)
{
    (void)conf;
    sl_endpoint ep = sl_ex_endpoint(ex);
    if (ep == SL_EP_MODELS || ep == SL_EP_OTHER)
        return SL_STEP_CONTINUE;
    const char *asked = sl_ex_model(ex);
    const sl_model_conf *m = sl_config_model(sl_ex_config(ex), asked);
    if (!m || m->n_targets == 0) {
        sl_ex_respond_error(ex, 404, "invalid_request_error", "model_not_found", "model",
                            "The model `%s` does not exist or you do not have access to it.", asked);
        return SL_STEP_RESPOND;
    }
    const sl_target_conf *t = pick_target(m);
    json_object_set_new(sl_ex_body(ex), "model", json_string(t->model));
    sl_ex_set_target(ex, m, t);
    return SL_STEP_CONTINUE;
}

const sl_plugin sl_plugin_route = {
    .name = "route",
    .api_version = SL_PLUGIN_API_VERSION,
    .on_request = route_on_request,
};
