/* A plugin in a shared object, loaded through plugin_paths by test_config. */
#include "plugin.h"

static const sl_plugin so_plugin = {.name = "so_fake", .api_version = SL_PLUGIN_API_VERSION};

const sl_plugin *sl_plugin_entry(void);
const sl_plugin *sl_plugin_entry(void)
{
    return &so_plugin;
}
