/* guard options:
 *   deny: [words]            deny_file: PATH (one keyword a line, # comments; relative to the config)
 *   deny_regex: [patterns]   mask: [email, phone, cn_mobile, cn_id, card, {regex: R, replace: S}]
 *   apply_to: request|response|both    on_request_hit: error|refuse    refusal_message: TEXT
 *   holdback: N (characters of a stream held back; default: the longest rule, at most 256) */
#include "guard_int.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin.h"

#define DEFAULT_REFUSAL "I'm sorry, but I can't help with that request."

static const char *const guard_keys[] = {"deny", "deny_file", "deny_regex", "mask", "apply_to", "on_request_hit",
                                         "refusal_message", "holdback", NULL};

static const char *where(const sl_ynode *n, char *buf, size_t size)
{
    char path[400];
    sl_ynode_path(n, path, sizeof path);
    snprintf(buf, size, "%s%s", path, *path ? ": " : "");
    return buf;
}

/* A list node, or a diagnostic. */
static bool is_list(const sl_ynode *n, sl_diag *d, const char *what)
{
    char w[512];
    if (n->type == SL_Y_SEQ)
        return true;
    sl_diag_add(d, n, "%sexpected a list of %s", where(n, w, sizeof w), what);
    return false;
}

/* Normalise kw and add it as keyword id; diagnoses an empty one at `at` (line: deny_file). */
static int add_word(sl_guard_conf *c, sl_guard_norm *norm, const char *kw, size_t len, uint32_t id,
                    const sl_ynode *at, int line, sl_diag *d)
{
    char w[512];
    if (sl_guard_normalize(norm, kw, len) < 0) {
        sl_diag_add(d, at, "out of memory");
        return -1;
    }
    if (norm->len == 0) {
        if (line)
            sl_diag_add(d, at, "%sline %d: the keyword is empty once normalised", where(at, w, sizeof w), line);
        else
            sl_diag_add(d, at, "%sa deny keyword must not be empty", where(at, w, sizeof w));
        return -1;
    }
    if (!c->rules.ac && !(c->rules.ac = sl_guard_ac_new())) {
        sl_diag_add(d, at, "out of memory");
        return -1;
    }
    if (sl_guard_ac_add(c->rules.ac, norm->s, norm->len, id) < 0) {
        sl_diag_add(d, at, "out of memory");
        return -1;
    }
    size_t cps = sl_guard_utf8_count(norm->s, norm->len);
    if (cps > c->rules.longest_word)
        c->rules.longest_word = cps;
    return 0;
}

static int parse_deny(sl_guard_conf *c, const sl_ynode *n, sl_guard_norm *norm, sl_diag *d)
{
    if (!is_list(n, d, "keywords"))
        return -1;
    int rc = 0;
    for (size_t i = 0; i < n->n; i++) {
        char *s = NULL;
        if (sl_ynode_string(n->items[i], d, &s) < 0) {
            rc = -1;
            continue;
        }
        rc |= add_word(c, norm, s, strlen(s), (uint32_t)c->rules.n_words++, n->items[i], 0, d);
        free(s);
    }
    c->rules.n_inline = c->rules.n_words;
    return rc;
}

static char *resolve_path(const char *path, const char *config_file)
{
    char *out = NULL;
    if (path[0] == '/' || !config_file || !strchr(config_file, '/'))
        return strdup(path);
    char *copy = strdup(config_file);
    if (!copy)
        return NULL;
    if (asprintf(&out, "%s/%s", dirname(copy), path) < 0)
        out = NULL;
    free(copy);
    return out;
}

static int parse_deny_file(sl_guard_conf *c, const sl_ynode *n, sl_guard_norm *norm, sl_diag *d)
{
    char w[512], *path = NULL, *full = NULL, *line = NULL;
    size_t cap = 0, n_lines = 0, cap_lines = 0;
    FILE *f = NULL;
    int rc = -1;
    if (sl_ynode_string(n, d, &path) < 0)
        return -1;
    if (!(full = resolve_path(path, d->file)))
        goto fail;
    if (!(f = fopen(full, "r"))) {
        sl_diag_add(d, n, "%scannot read %s: %s", where(n, w, sizeof w), full, strerror(errno));
        goto fail;
    }
    ssize_t len;
    int lineno = 0;
    rc = 0;
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' ' ||
                           line[len - 1] == '\t'))
            len--;
        size_t s = 0;
        while ((ssize_t)s < len && (line[s] == ' ' || line[s] == '\t'))
            s++;
        if ((ssize_t)s == len || line[s] == '#')
            continue;
        if (n_lines == cap_lines) {
            cap_lines = cap_lines ? cap_lines * 2 : 1024;
            uint32_t *fl = realloc(c->rules.file_line, cap_lines * sizeof *fl);
            if (!fl) {
                rc = -1;
                break;
            }
            c->rules.file_line = fl;
        }
        c->rules.file_line[n_lines++] = (uint32_t)lineno;
        if (add_word(c, norm, line + s, (size_t)len - s, (uint32_t)c->rules.n_words++, n, lineno, d) < 0) {
            rc = -1;
            if (d->n > 20)
                break; /* a broken file: enough said */
        }
    }
    if (ferror(f)) {
        sl_diag_add(d, n, "%scannot read %s: %s", where(n, w, sizeof w), full, strerror(errno));
        rc = -1;
    }
fail:
    if (f)
        fclose(f);
    free(line);
    free(full);
    free(path);
    return rc;
}

static int parse_regexes(sl_guard_conf *c, const sl_ynode *n, sl_diag *d, size_t *unbounded_at)
{
    char w[512];
    if (!is_list(n, d, "regular expressions"))
        return -1;
    if (!(c->rules.re = calloc(n->n + 1, sizeof *c->rules.re)))
        return -1;
    int rc = 0;
    for (size_t i = 0; i < n->n; i++) {
        char *s = NULL;
        if (sl_ynode_string(n->items[i], d, &s) < 0) {
            rc = -1;
            continue;
        }
        sl_err err = {{0}};
        pcre2_code *re = sl_guard_regex_compile(s, &err);
        if (!re) {
            sl_diag_add(d, n->items[i], "%s%s", where(n->items[i], w, sizeof w), err.msg);
            rc = -1;
        } else {
            c->rules.re[c->rules.n_re++] = re;
            size_t b = sl_guard_regex_bound(s);
            if (b == SIZE_MAX && *unbounded_at == SIZE_MAX)
                *unbounded_at = i;
            if (b > c->rules.longest_re)
                c->rules.longest_re = b;
        }
        free(s);
    }
    return rc;
}

static int parse_masks(sl_guard_conf *c, const sl_ynode *n, sl_diag *d)
{
    static const char *const mask_keys[] = {"regex", "replace", NULL};
    char w[512];
    if (!is_list(n, d, "masks (email, phone, cn_mobile, cn_id, card or { regex: ..., replace: ... })"))
        return -1;
    if (!(c->masks = calloc(n->n + 1, sizeof *c->masks)))
        return -1;
    int rc = 0;
    for (size_t i = 0; i < n->n; i++) {
        const sl_ynode *it = n->items[i];
        sl_err err = {{0}};
        if (it->type == SL_Y_SCALAR) {
            int k = sl_guard_mask_kind_parse(it->scalar);
            if (k < 0) {
                sl_diag_add(d, it, "%sunknown mask '%s' (known: email, phone, cn_mobile, cn_id, card, "
                            "or { regex: ..., replace: ... })", where(it, w, sizeof w), it->scalar);
                rc = -1;
            } else if (sl_guard_mask_init(&c->masks[c->n_masks], (sl_guard_mask_kind)k, NULL, NULL, &err) < 0) {
                sl_diag_add(d, it, "%s%s", where(it, w, sizeof w), err.msg);
                rc = -1;
            } else {
                c->n_masks++;
            }
            continue;
        }
        if (sl_ymap_check_keys(it, mask_keys, d) < 0) {
            rc = -1;
            continue;
        }
        const sl_ynode *re = sl_ymap_get(it, "regex"), *rep = sl_ymap_get(it, "replace");
        char *pat = NULL, *repl = NULL;
        if (!re || !rep) {
            sl_diag_add(d, it, "%sa custom mask needs both regex and replace", where(it, w, sizeof w));
            rc = -1;
        } else if (sl_ynode_string(re, d, &pat) == 0 && sl_ynode_string(rep, d, &repl) == 0) {
            if (sl_guard_mask_init(&c->masks[c->n_masks], SL_GUARD_MASK_REGEX, pat, repl, &err) < 0) {
                sl_diag_add(d, re, "%s%s", where(re, w, sizeof w), err.msg);
                rc = -1;
            } else {
                c->n_masks++;
            }
        } else {
            rc = -1;
        }
        free(pat);
        free(repl);
    }
    return rc;
}

static int parse_choice(const sl_ynode *n, sl_diag *d, const char *const *allowed, int *out)
{
    char w[512];
    if (n->type == SL_Y_SCALAR)
        for (int i = 0; allowed[i]; i++)
            if (strcmp(n->scalar, allowed[i]) == 0) {
                *out = i;
                return 0;
            }
    char list[128] = "";
    for (int i = 0; allowed[i]; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", allowed[i]);
    sl_diag_add(d, n, "%sexpected one of %s", where(n, w, sizeof w), list);
    return -1;
}

int sl_guard_config_parse(const sl_ynode *node, struct sl_plugin_ctx *ctx, void **conf)
{
    static const char *const apply[] = {"both", "request", "response", NULL};
    static const char *const on_hit[] = {"error", "refuse", NULL};
    sl_diag *d = ctx->diag;
    char w[512];
    sl_guard_norm norm = {0};
    sl_guard_conf *c = calloc(1, sizeof *c);
    *conf = c;
    if (!c)
        return -1;
    c->on_request = c->on_response = true;
    if (!(c->refusal = strdup(DEFAULT_REFUSAL)))
        return -1;
    if (!node) {
        sl_diag_add(d, NULL, "plugin 'guard' needs options: deny, deny_file, deny_regex and/or mask");
        return -1;
    }
    if (sl_ymap_check_keys(node, guard_keys, d) < 0)
        return -1;
    int rc = 0;
    const sl_ynode *n;
    size_t unbounded_at = SIZE_MAX;
    if ((n = sl_ymap_get(node, "deny")))
        rc |= parse_deny(c, n, &norm, d);
    c->rules.n_inline = c->rules.n_words;
    if ((n = sl_ymap_get(node, "deny_file")))
        rc |= parse_deny_file(c, n, &norm, d);
    if ((n = sl_ymap_get(node, "deny_regex")))
        rc |= parse_regexes(c, n, d, &unbounded_at);
    if ((n = sl_ymap_get(node, "mask")))
        rc |= parse_masks(c, n, d);
    int v;
    if ((n = sl_ymap_get(node, "apply_to"))) {
        if (parse_choice(n, d, apply, &v) == 0) {
            c->on_request = v != 2;
            c->on_response = v != 1;
        } else {
            rc = -1;
        }
    }
    if ((n = sl_ymap_get(node, "on_request_hit"))) {
        if (parse_choice(n, d, on_hit, &v) == 0)
            c->refuse = v == 1;
        else
            rc = -1;
    }
    if ((n = sl_ymap_get(node, "refusal_message")))
        rc |= sl_ynode_string(n, d, &c->refusal);
    sl_guard_norm_free(&norm);
    if (rc)
        return -1;
    if (c->rules.ac && sl_guard_ac_build(c->rules.ac) < 0) {
        sl_diag_add(d, node, "out of memory building the keyword automaton");
        return -1;
    }
    if (sl_guard_rules_empty(&c->rules) && c->n_masks == 0) {
        sl_diag_add(d, node, "%sthe guard has nothing to do: give deny, deny_file, deny_regex and/or mask",
                    where(node, w, sizeof w));
        return -1;
    }
    size_t need = c->rules.longest_word;
    if (c->rules.n_re && c->rules.longest_re > need)
        need = c->rules.longest_re;
    if ((n = sl_ymap_get(node, "holdback"))) {
        long long h;
        if (sl_ynode_int(n, d, 0, SL_GUARD_HOLDBACK_MAX, &h) < 0)
            return -1;
        c->holdback = (size_t)h;
        if (c->on_response && c->holdback < need && need != SIZE_MAX)
            sl_diag_warn(d, n, "%sholdback %zu is shorter than the longest deny rule (%zu characters): a match "
                         "split across stream chunks may pass", where(n, w, sizeof w), c->holdback, need);
    } else {
        c->holdback = need > SL_GUARD_HOLDBACK_DEFAULT_CAP ? SL_GUARD_HOLDBACK_DEFAULT_CAP : need;
        if (c->on_response && need > SL_GUARD_HOLDBACK_DEFAULT_CAP) {
            const sl_ynode *at = unbounded_at != SIZE_MAX ? sl_ymap_get(node, "deny_regex")->items[unbounded_at]
                                                          : node;
            sl_diag_warn(d, at, "%sa deny rule can match more than %d characters: in streams only matches up "
                         "to that length are seen across chunks (set holdback to change it)",
                         where(at, w, sizeof w), SL_GUARD_HOLDBACK_DEFAULT_CAP);
        }
    }
    return 0;
}

void sl_guard_config_free(void *conf)
{
    sl_guard_conf *c = conf;
    if (!c)
        return;
    sl_guard_rules_free(&c->rules);
    for (size_t i = 0; i < c->n_masks; i++)
        sl_guard_mask_free(&c->masks[i]);
    free(c->masks);
    free(c->refusal);
    free(c);
}
