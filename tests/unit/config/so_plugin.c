/* A plugin in a shared object, loaded through plugin_paths by test_config. It says API
 * version 2, as objects built before version 3 do: those still load. */
#include "plugin.h"

static const sl_plugin so_plugin = {.name = "so_fake", .api_version = 2};

const sl_plugin *sl_plugin_entry(void);
const sl_plugin *sl_plugin_entry(void)
{
    return &so_plugin;
}
