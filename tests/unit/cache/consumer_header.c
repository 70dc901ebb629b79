/* A test plugin, loaded through plugin_paths by tests/integration/cache_gateway.sh: it takes
 * the consumer from the x-test-consumer header, standing in for auth. */
#include "plugin.h"

static sl_step on_request(sl_exchange *ex, void *conf)
{
    (void)conf;
    const char *name = sl_ex_header(ex, "x-test-consumer");
    if (name)
        sl_ex_set_consumer(ex, name);
    return SL_STEP_CONTINUE;
}

static const sl_plugin consumer_header = {
    .name = "test_consumer_header",
    .api_version = SL_PLUGIN_API_VERSION,
    .on_request = on_request,
};

const sl_plugin *sl_plugin_entry(void);
const sl_plugin *sl_plugin_entry(void) { return &consumer_header; }
