#include "json_line.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <utf8proc.h>

#include "fmt_int.h"
#include "json_plain.h"

static void put(sl_jline *j, const void *p, size_t n)
{
    if (!j->failed && sl_strbuf_add(j->b, p, n) < 0)
        j->failed = true;
}

static void put_string(sl_jline *j, const char *s, size_t len)
{
    put(j, "\"", 1);
    size_t run = 0, i = 0;
    while (i < len) {
        i += sl_json_plain_run(s + i, len - i, false);
        if (i == len)
            break;
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80) { /* keep whole valid sequences, replace broken ones */
            utf8proc_int32_t cp;
            utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(len - i), &cp);
            if (k > 0) {
                i += (size_t)k;
                continue;
            }
        }
        put(j, s + run, i - run);
        char esc[8];
        if (c == '"' || c == '\\')
            snprintf(esc, sizeof esc, "\\%c", c);
        else if (c == '\n')
            snprintf(esc, sizeof esc, "\\n");
        else if (c < 0x20)
            snprintf(esc, sizeof esc, "\\u%04x", c);
        else
            snprintf(esc, sizeof esc, "\\ufffd");
        put(j, esc, strlen(esc));
        run = ++i;
    }
    put(j, s + run, len - run);
    put(j, "\"", 1);
}

/* The key and its colon, or false when the key is to be left out. */
static bool key(sl_jline *j, const char *k)
{
    if (j->n_skip < 0 && j->skip && json_object_get(j->skip, k))
        return false;
    for (int i = 0; i < j->n_skip; i++)
        if (strcmp(j->skip_keys[i], k) == 0)
            return false;
    if (j->any)
        put(j, ",", 1);
    j->any = true;
    put_string(j, k, strlen(k));
    put(j, ":", 1);
    return true;
}

static void put_int(sl_jline *j, long long v)
{
    char buf[SL_FMT_INT_MAX];
    put(j, buf, sl_fmt_int(buf, v));
}

static int add_cb(const char *buffer, size_t size, void *data)
{
    sl_jline *j = data;
    put(j, buffer, size);
    return j->failed ? -1 : 0;
}

static void put_value(sl_jline *j, const json_t *v)
{
    char buf[40];
    switch (json_typeof(v)) {
    case JSON_STRING:
        put_string(j, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        put_int(j, (long long)json_integer_value(v));
        break;
    case JSON_TRUE:
        put(j, "true", 4);
        break;
    case JSON_FALSE:
        put(j, "false", 5);
        break;
    case JSON_REAL:
        if (isfinite(json_real_value(v))) {
            snprintf(buf, sizeof buf, "%.6g", json_real_value(v));
            put(j, buf, strlen(buf));
            if (!strpbrk(buf, ".eE")) /* stays a real when read back */
                put(j, ".0", 2);
        } else {
            put(j, "null", 4);
        }
        break;
    case JSON_NULL:
        put(j, "null", 4);
        break;
    default: /* objects and arrays: rare in a log line */
        if (json_dump_callback(v, add_cb, j, JSON_COMPACT | JSON_REAL_PRECISION(6)) < 0)
            j->failed = true;
        break;
    }
}

void sl_jline_open(sl_jline *j, sl_strbuf *b, const json_t *skip)
{
    *j = (sl_jline){.b = b, .skip = skip};
    if (skip && json_object_size(skip) > sizeof j->skip_keys / sizeof j->skip_keys[0]) {
        j->n_skip = -1;
    } else if (skip) {
        const char *k;
        const json_t *v;
        json_object_foreach((json_t *)skip, k, v) {
            (void)v;
            j->skip_keys[j->n_skip++] = k;
        }
    }
    put(j, "{", 1);
}

void sl_jline_str(sl_jline *j, const char *k, const char *v)
{
    if (v && key(j, k))
        put_string(j, v, strlen(v));
}

void sl_jline_int(sl_jline *j, const char *k, long long v)
{
    if (key(j, k))
        put_int(j, v);
}

void sl_jline_ms(sl_jline *j, const char *k, double ms)
{
    if (!key(j, k))
        return;
    if (!isfinite(ms) || ms < 0)
        ms = 0;
    long long us = llround(ms * 1000.0);
    char frac[4] = {(char)('0' + us / 100 % 10), (char)('0' + us / 10 % 10), (char)('0' + us % 10), 0};
    put_int(j, us / 1000);
    put(j, ".", 1);
    put(j, frac, 3);
}

void sl_jline_bool(sl_jline *j, const char *k, bool v)
{
    if (key(j, k))
        put(j, v ? "true" : "false", v ? 4 : 5);
}

void sl_jline_value(sl_jline *j, const char *k, const json_t *v)
{
    if (v && key(j, k))
        put_value(j, v);
}

void sl_jline_fields(sl_jline *j, const json_t *obj)
{
    const json_t *skip = j->skip;
    int n_skip = j->n_skip;
    const char *k;
    json_t *v;
    j->skip = NULL;
    j->n_skip = 0;
    json_object_foreach((json_t *)obj, k, v) sl_jline_value(j, k, v);
    j->skip = skip;
    j->n_skip = n_skip;
}

void sl_jline_close(sl_jline *j) { put(j, "}", 1); }
