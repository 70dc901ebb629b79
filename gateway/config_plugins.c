/* The plugin part of the config: shared objects to load (plugin_paths), then the chain
 * (plugins), each entry's options parsed by its plugin. route always runs last. */
#include "config_int.h"
#include "plugin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A reload reads plugin_paths again: a path loaded once is not loaded (registered) twice.
 * Only the thread that loads configs (the main thread) touches this. */
#define MAX_SO 32
static struct { char *path; const sl_plugin *p; } loaded_so[MAX_SO];
static size_t n_loaded_so;

static const char *const builtin_names[] = {"auth", "guard", "ratelimit", "quota", "cache", "route",
                                            "fallback", NULL};

/* "did you mean 'x'?" when name is a typo of a known plugin, else "known: a, b". */
static void known_plugins(const char *name, char *buf, size_t size)
{
    const char *names[sizeof builtin_names / sizeof *builtin_names + MAX_SO];
    size_t n = 0;
    for (size_t i = 0; builtin_names[i]; i++)
        if (sl_plugin_find(builtin_names[i]))
            names[n++] = builtin_names[i];
    for (size_t i = 0; i < n_loaded_so; i++)
        names[n++] = loaded_so[i].p->name;
    names[n] = NULL;
    const char *near = sl_closest_word(name, names);
    if (near) {
        snprintf(buf, size, "did you mean '%s'?", near);
        return;
    }
    size_t off = (size_t)snprintf(buf, size, "known: ");
    for (size_t i = 0; i < n && off < size; i++)
        off += (size_t)snprintf(buf + off, size - off, "%s%s", i ? ", " : "", names[i]);
    if (!n)
        snprintf(buf, size, "known: none");
}

static int load_paths(const sl_ynode *paths, sl_diag *d)
{
    char **v = NULL, w[512];
    size_t n = 0;
    if (!paths || sl_ynode_is_null(paths))
        return 0;
    if (sl_cfg_str_list(paths, d, &v, &n) < 0)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        const sl_ynode *at = paths->type == SL_Y_SEQ ? paths->items[i] : paths;
        bool seen = false;
        for (size_t j = 0; j < n_loaded_so && !seen; j++)
            seen = strcmp(loaded_so[j].path, v[i]) == 0;
        if (seen)
            continue;
        sl_err err = {{0}};
        const sl_plugin *p = sl_plugin_load_so(v[i], &err);
        if (!p) {
            sl_diag_add(d, at, "%scannot load plugin: %s", sl_cfg_where(at, w, sizeof w), err.msg);
            rc = -1;
            continue;
        }
        if (n_loaded_so < MAX_SO && (loaded_so[n_loaded_so].path = strdup(v[i])))
            loaded_so[n_loaded_so++].p = p;
    }
    sl_cfg_free_strings(v, n);
    return rc;
}

/* Parses one chain entry into c->plugins[c->n_plugins]; 0 or -1. */
static int add_plugin(sl_config *c, const sl_plugin *p, const sl_ynode *at, const sl_ynode *opts, sl_diag *d)
{
    char w[512];
    size_t before = d->n;
    sl_plugin_conf *pc = &c->plugins[c->n_plugins];
    pc->plugin = p;
    pc->conf = NULL;
    if (!p->config_parse) {
        if (opts) {
            sl_diag_add(d, opts, "%splugin '%s' takes no options", sl_cfg_where(opts, w, sizeof w), p->name);
            return -1;
        }
        c->n_plugins++;
        return 0;
    }
    sl_plugin_ctx ctx = {.config = c, .diag = d};
    int r = p->config_parse(opts, &ctx, &pc->conf);
    /* kept even on failure, so that config_free frees what the parser made */
    c->n_plugins++;
    if (r < 0 || d->n != before) {
        if (d->n == before)
            sl_diag_add(d, opts ? opts : at, "%splugin '%s' refused its options", sl_cfg_where(at, w, sizeof w),
                        p->name);
        return -1;
    }
    return 0;
}

int sl_cfg_plugins(sl_config *c, const sl_ynode *paths, const sl_ynode *list, sl_diag *d)
{
    char w[512], known[512];
    int rc = load_paths(paths, d);
    const sl_plugin *route = sl_plugin_find("route");
    size_t count = list && list->type == SL_Y_SEQ ? list->n : 0;
    if (list && !sl_ynode_is_null(list) && list->type != SL_Y_SEQ) {
        sl_diag_add(d, list, "plugins: expected a list of plugin names or { name: options } maps");
        rc = -1;
    }
    if (!(c->plugins = calloc(count + 1, sizeof *c->plugins)))
        return -1;
    bool route_listed = false;
    for (size_t i = 0; i < count; i++) {
        const sl_ynode *item = list->items[i], *opts = NULL, *name = item;
        if (item->type == SL_Y_MAP) {
            if (item->n != 1) {
                sl_diag_add(d, item, "%sexpected one plugin per list item, like - cache: { ttl: 1h }",
                            sl_cfg_where(item, w, sizeof w));
                rc = -1;
                continue;
            }
            name = item->keys[0];
            opts = sl_ynode_is_null(item->items[0]) ? NULL : item->items[0];
        } else if (item->type != SL_Y_SCALAR || sl_ynode_is_null(item)) {
            sl_diag_add(d, item, "%sexpected a plugin name or { name: options }", sl_cfg_where(item, w, sizeof w));
            rc = -1;
            continue;
        }
        const sl_plugin *p = sl_plugin_find(name->scalar);
        if (!p) {
            known_plugins(name->scalar, known, sizeof known);
            sl_diag_add(d, name, "%sunknown plugin '%s' (%s)", sl_cfg_where(item, w, sizeof w),
                        name->scalar, known);
            rc = -1;
            continue;
        }
        bool dup = false;
        for (size_t j = 0; j < c->n_plugins && !dup; j++)
            dup = c->plugins[j].plugin == p;
        if (dup) {
            sl_diag_add(d, name, "%splugin '%s' is listed twice", sl_cfg_where(item, w, sizeof w), p->name);
            rc = -1;
            continue;
        }
        if (p == route) {
            route_listed = true;
            if (i != count - 1) {
                sl_diag_add(d, name, "%sroute must be the last plugin (it sends the request upstream)",
                            sl_cfg_where(item, w, sizeof w));
                rc = -1;
            }
        }
        rc |= add_plugin(c, p, name, opts, d);
    }
    if (route && !route_listed)
        rc |= add_plugin(c, route, list, NULL, d);
    return rc ? -1 : 0;
}
