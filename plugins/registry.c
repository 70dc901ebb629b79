/* The table of built-in plugins, and loading of plugins from shared objects. */
#include "plugin.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

extern const sl_plugin sl_plugin_auth;
extern const sl_plugin sl_plugin_route;
extern const sl_plugin sl_plugin_quota;
extern const sl_plugin sl_plugin_ratelimit;
extern const sl_plugin sl_plugin_cache;
extern const sl_plugin sl_plugin_guard;

static const sl_plugin *const builtins[] = {
    &sl_plugin_auth,
    &sl_plugin_route,
    &sl_plugin_quota,
    &sl_plugin_ratelimit,
    &sl_plugin_cache,
    &sl_plugin_guard,
    NULL,
};

#define MAX_LOADED 32
static const sl_plugin *loaded[MAX_LOADED];
static size_t n_loaded;

const sl_plugin *sl_plugin_find(const char *name)
{
    for (size_t i = 0; builtins[i]; i++)
        if (strcmp(builtins[i]->name, name) == 0)
            return builtins[i];
    for (size_t i = 0; i < n_loaded; i++)
        if (strcmp(loaded[i]->name, name) == 0)
            return loaded[i];
    return NULL;
}

int sl_plugin_register(const sl_plugin *p)
{
    if (n_loaded == MAX_LOADED)
        return -1;
    loaded[n_loaded++] = p;
    return 0;
}

const sl_plugin *sl_plugin_load_so(const char *path, sl_err *err)
{
    if (n_loaded == MAX_LOADED) {
        sl_err_set(err, "%s: too many loaded plugins (max %d)", path, MAX_LOADED);
        return NULL;
    }
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        sl_err_set(err, "%s", dlerror());
        return NULL;
    }
    const sl_plugin *(*entry)(void) = (const sl_plugin *(*)(void))dlsym(h, "sl_plugin_entry");
    if (!entry) {
        sl_err_set(err, "%s: no symbol sl_plugin_entry", path);
        dlclose(h);
        return NULL;
    }
    const sl_plugin *p = entry();
    if (!p || p->api_version < SL_PLUGIN_API_VERSION_MIN || p->api_version > SL_PLUGIN_API_VERSION || !p->name) {
        sl_err_set(err, "%s: plugin API version %d, this gateway speaks %d to %d", path,
                   p ? p->api_version : -1, SL_PLUGIN_API_VERSION_MIN, SL_PLUGIN_API_VERSION);
        dlclose(h);
        return NULL;
    }
    if (sl_plugin_register(p) < 0) {
        sl_err_set(err, "%s: too many loaded plugins", path);
        return NULL;
    }
    return p;
}
