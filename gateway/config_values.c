/* Typed reads of sl_ynode values (strings, numbers, sizes, durations) and key checks,
 * each with a diagnostic that names the key path and what was expected. */
#include "yaml_tree.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

char *sl_ynode_path(const sl_ynode *n, char *buf, size_t size)
{
    if (size == 0)
        return buf;
    buf[0] = '\0';
    if (!n || !n->parent)
        return buf;
    const sl_ynode *p = n->parent;
    char head[512];
    sl_ynode_path(p, head, sizeof head);
    if (p->type == SL_Y_SEQ) {
        size_t i = 0;
        while (i < p->n && p->items[i] != n)
            i++;
        snprintf(buf, size, "%s[%zu]", head, i);
        return buf;
    }
    const char *key = "?";
    for (size_t i = 0; i < p->n; i++)
        if (p->items[i] == n || p->keys[i] == n) {
            if (p->keys[i]->type == SL_Y_SCALAR)
                key = p->keys[i]->scalar;
            break;
        }
    snprintf(buf, size, "%s%s%s", head, *head ? "." : "", key);
    return buf;
}

bool sl_ynode_is_null(const sl_ynode *n)
{
    if (!n)
        return true;
    if (n->type != SL_Y_SCALAR || n->quoted)
        return false;
    const char *s = n->scalar;
    return !*s || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 ||
           strcmp(s, "NULL") == 0;
}

const sl_ynode *sl_ymap_get(const sl_ynode *map, const char *key)
{
    if (!map || map->type != SL_Y_MAP)
        return NULL;
    for (size_t i = 0; i < map->n; i++)
        if (map->keys[i]->type == SL_Y_SCALAR && strcmp(map->keys[i]->scalar, key) == 0)
            return map->items[i];
    return NULL;
}

static const char *kind(const sl_ynode *n)
{
    if (n->type == SL_Y_MAP)
        return "a map";
    if (n->type == SL_Y_SEQ)
        return "a list";
    return sl_ynode_is_null(n) ? "nothing" : "a string";
}

/* "path: " or "" at the root; into buf. */
static const char *where(const sl_ynode *n, char *buf, size_t size)
{
    char path[480];
    sl_ynode_path(n, path, sizeof path);
    snprintf(buf, size, "%s%s", path, *path ? ": " : "");
    return buf;
}

/* Describes what was written, for "(got ...)". */
static const char *got(const sl_ynode *n, char *buf, size_t size)
{
    if (n->type == SL_Y_SCALAR && !sl_ynode_is_null(n))
        snprintf(buf, size, "\"%.64s%s\"", n->scalar, strlen(n->scalar) > 64 ? "..." : "");
    else
        snprintf(buf, size, "%s", kind(n));
    return buf;
}

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63)
        return 99;
    size_t row[64];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]));
            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

const char *sl_closest_word(const char *word, const char *const *choices)
{
    const char *best = NULL;
    size_t best_d = 99, len = strlen(word);
    for (size_t i = 0; choices[i]; i++) {
        if (strchr(choices[i], '*'))
            continue;
        size_t dist = edit_distance(word, choices[i]);
        if (dist < best_d) {
            best_d = dist;
            best = choices[i];
        }
    }
    size_t limit = len <= 3 ? 1 : len <= 6 ? 2 : 3;
    return best_d <= limit ? best : NULL;
}

static bool looks_secret(const char *key)
{
    static const char *const words[] = {"api_key", "apikey", "token", "secret", "password", "key",
                                        "access_token", "bearer", NULL};
    for (size_t i = 0; words[i]; i++)
        if (strcasecmp(key, words[i]) == 0)
            return true;
    return false;
}

int sl_ymap_check_keys(const sl_ynode *map, const char *const *allowed, sl_diag *d)
{
    char w[512];
    if (!map || map->type != SL_Y_MAP) {
        if (map) {
            char g[96];
            sl_diag_add(d, map, "%sexpected a map of keys (got %s)", where(map, w, sizeof w),
                        got(map, g, sizeof g));
        }
        return -1;
    }
    int rc = 0;
    for (size_t i = 0; i < map->n; i++) {
        const sl_ynode *k = map->keys[i];
        if (k->type != SL_Y_SCALAR) {
            rc = -1;
            continue;   /* diagnosed by the YAML loader */
        }
        bool ok = false;
        for (size_t j = 0; allowed[j] && !ok; j++) {
            size_t len = strlen(allowed[j]);
            if (len && allowed[j][len - 1] == '*')   /* a prefix, like "x-*" */
                ok = strncmp(allowed[j], k->scalar, len - 1) == 0;
            else
                ok = strcmp(allowed[j], k->scalar) == 0;
        }
        if (ok)
            continue;
        rc = -1;
        char env[128];
        snprintf(env, sizeof env, "%s_env", k->scalar);
        bool secret = false;
        for (size_t j = 0; allowed[j] && !secret; j++)
            secret = strcmp(allowed[j], env) == 0;
        where(map, w, sizeof w);
        if (secret) {
            sl_diag_add(d, k, "%s'%s' must not be written in the file: put the secret in an "
                        "environment variable and name that variable with %s", w, k->scalar, env);
            continue;
        }
        if (looks_secret(k->scalar)) {
            sl_diag_add(d, k, "%s'%s' must not be written in the file: secrets are read from "
                        "environment variables named by *_env keys", w, k->scalar);
            continue;
        }
        const char *near = sl_closest_word(k->scalar, allowed);
        if (near)
            sl_diag_add(d, k, "%sunknown key '%s' (did you mean '%s'?)", w, k->scalar, near);
        else {
            char list[384] = "";
            size_t off = 0;
            for (size_t j = 0; allowed[j] && off < sizeof list; j++)
                off += (size_t)snprintf(list + off, sizeof list - off, "%s%s", j ? ", " : "", allowed[j]);
            sl_diag_add(d, k, "%sunknown key '%s' (known keys: %s)", w, k->scalar, list);
        }
    }
    return rc;
}

int sl_ynode_string(const sl_ynode *n, sl_diag *d, char **out)
{
    char w[512], g[96];
    if (n->type != SL_Y_SCALAR || sl_ynode_is_null(n)) {
        sl_diag_add(d, n, "%sexpected a string (got %s)", where(n, w, sizeof w), got(n, g, sizeof g));
        return -1;
    }
    char *s = strdup(n->scalar);
    if (!s) {
        sl_diag_add(d, n, "out of memory");
        return -1;
    }
    free(*out);   /* fields may hold a default */
    *out = s;
    return 0;
}

/* Parses a whole decimal integer with optional '_' separators; 0 or -1. */
static int parse_ll(const char *s, long long *out)
{
    char buf[64];
    size_t j = 0;
    for (size_t i = 0; s[i]; i++) {
        if (s[i] == '_' && i > 0)
            continue;
        if (j + 1 >= sizeof buf)
            return -1;
        buf[j++] = s[i];
    }
    buf[j] = '\0';
    if (!j || isspace((unsigned char)buf[0]))
        return -1;
    char *end;
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (errno || *end || end == buf)
        return -1;
    *out = v;
    return 0;
}

int sl_ynode_int(const sl_ynode *n, sl_diag *d, long long min, long long max, long long *out)
{
    char w[512], g[96];
    long long v;
    if (n->type != SL_Y_SCALAR || parse_ll(n->scalar, &v) < 0) {
        sl_diag_add(d, n, "%sexpected a whole number (got %s)", where(n, w, sizeof w), got(n, g, sizeof g));
        return -1;
    }
    if (v < min || v > max) {
        if (max == LLONG_MAX)
            sl_diag_add(d, n, "%sexpected a number of at least %lld (got %lld)", where(n, w, sizeof w), min, v);
        else
            sl_diag_add(d, n, "%sexpected a number from %lld to %lld (got %lld)", where(n, w, sizeof w),
                        min, max, v);
        return -1;
    }
    *out = v;
    return 0;
}

int sl_ynode_double(const sl_ynode *n, sl_diag *d, double *out)
{
    char w[512], g[96];
    char *end = NULL;
    double v = 0;
    if (n->type == SL_Y_SCALAR && n->scalar[0] && !isspace((unsigned char)n->scalar[0])) {
        errno = 0;
        v = strtod(n->scalar, &end);
    }
    if (!end || *end || errno || !isfinite(v)) {
        sl_diag_add(d, n, "%sexpected a number (got %s)", where(n, w, sizeof w), got(n, g, sizeof g));
        return -1;
    }
    *out = v;
    return 0;
}

int sl_ynode_bool(const sl_ynode *n, sl_diag *d, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", NULL}, *const no[] = {"false", "no", "off", NULL};
    char w[512], g[96];
    if (n->type == SL_Y_SCALAR) {
        for (size_t i = 0; yes[i]; i++)
            if (strcasecmp(n->scalar, yes[i]) == 0) {
                *out = true;
                return 0;
            }
        for (size_t i = 0; no[i]; i++)
            if (strcasecmp(n->scalar, no[i]) == 0) {
                *out = false;
                return 0;
            }
    }
    sl_diag_add(d, n, "%sexpected true or false (got %s)", where(n, w, sizeof w), got(n, g, sizeof g));
    return -1;
}

/* Reads a non-negative decimal number (digits, optional fraction) at *s. */
static int read_number(const char **s, long double *v)
{
    const char *p = *s;
    if (!isdigit((unsigned char)*p))
        return -1;
    long double x = 0;
    for (; isdigit((unsigned char)*p) || (*p == '_' && p != *s); p++)
        if (*p != '_')
            x = x * 10 + (*p - '0');
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            return -1;
        long double scale = 0.1L;
        for (; isdigit((unsigned char)*p); p++, scale /= 10)
            x += (*p - '0') * scale;
    }
    *s = p;
    *v = x;
    return 0;
}

int sl_parse_size(const char *s, long long *bytes)
{
    static const struct { const char *unit; long double mul; } units[] = {
        {"", 1}, {"B", 1},
        {"KiB", 1024.0L}, {"MiB", 1048576.0L}, {"GiB", 1073741824.0L}, {"TiB", 1099511627776.0L},
        {"KB", 1e3L}, {"MB", 1e6L}, {"GB", 1e9L}, {"TB", 1e12L},
    };
    if (!s)
        return -1;
    long double v;
    if (read_number(&s, &v) < 0)
        return -1;
    while (*s == ' ')
        s++;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strcmp(s, units[i].unit) == 0) {
            long double b = floorl(v * units[i].mul);
            if (b > (long double)LLONG_MAX / 2)
                return -1;
            *bytes = (long long)b;
            return 0;
        }
    return -1;
}

int sl_parse_duration_ms(const char *s, long long *ms)
{
    if (!s)
        return -1;
    long double total = 0, v;
    const char *p = s;
    if (read_number(&p, &v) < 0)
        return -1;
    if (!*p) {   /* a plain number is seconds */
        total = v * 1000;
        goto done;
    }
    for (;;) {
        while (*p == ' ')
            p++;
        long double mul;
        if (strncmp(p, "ms", 2) == 0)
            mul = 1, p += 2;
        else if (*p == 's')
            mul = 1000, p++;
        else if (*p == 'm')
            mul = 60000, p++;
        else if (*p == 'h')
            mul = 3600000, p++;
        else if (*p == 'd')
            mul = 86400000, p++;
        else
            return -1;
        total += v * mul;
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        if (read_number(&p, &v) < 0)
            return -1;
    }
done:
    if (total > 1e15L)   /* ~31000 years: a typo, and keeps sums far from overflow */
        return -1;
    *ms = (long long)floorl(total);
    return 0;
}

int sl_ynode_size(const sl_ynode *n, sl_diag *d, long long *bytes)
{
    char w[512], g[96];
    if (n->type != SL_Y_SCALAR || sl_parse_size(n->scalar, bytes) < 0) {
        sl_diag_add(d, n, "%sexpected a size like 512, 64KiB, 256MiB, 1GiB (got %s)",
                    where(n, w, sizeof w), got(n, g, sizeof g));
        return -1;
    }
    return 0;
}

int sl_ynode_duration_ms(const sl_ynode *n, sl_diag *d, long long *ms)
{
    char w[512], g[96];
    if (n->type != SL_Y_SCALAR || sl_parse_duration_ms(n->scalar, ms) < 0) {
        sl_diag_add(d, n, "%sexpected a duration like 500ms, 10s, 2m (got %s)",
                    where(n, w, sizeof w), got(n, g, sizeof g));
        return -1;
    }
    return 0;
}
