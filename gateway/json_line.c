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

/* A whole plain string in quotes, with one copy. */
static void put_quoted(sl_jline *j, const char *s, size_t len)
{
    if (j->failed || sl_strbuf_reserve(j->b, len + 2) < 0) {
        j->failed = true;
        return;
    }
    char *p = j->b->s + j->b->len;
    *p++ = '"';
    memcpy(p, s, len);
    p[len] = '"';
    p[len + 1] = 0;
    j->b->len += len + 2;
}

static void put_string(sl_jline *j, const char *s, size_t len)
{
    size_t i = sl_json_plain_run(s, len, false);
    if (i == len) {
        put_quoted(j, s, len);
        return;
    }
    put(j, "\"", 1);
    size_t run = 0;
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

/* The key and its colon (after a comma if needed), or false when the key is to be left
 * out. A plain key (the usual case) goes in with one copy. */
static bool key(sl_jline *j, const char *k, size_t len)
{
    if (j->skip && j->skip->n && sl_log_fields_getn(j->skip, k, len))
        return false;
    bool comma = j->any;
    j->any = true;
    if (j->failed)
        return true;
    if (sl_json_plain_run(k, len, false) == len) {
        if (sl_strbuf_reserve(j->b, len + 4) < 0) {
            j->failed = true;
            return true;
        }
        char *p = j->b->s + j->b->len;
        if (comma)
            *p++ = ',';
        *p++ = '"';
        memcpy(p, k, len);
        p += len;
        *p++ = '"';
        *p++ = ':';
        *p = 0;
        j->b->len = (size_t)(p - j->b->s);
        return true;
    }
    if (comma)
        put(j, ",", 1);
    put_string(j, k, len);
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

void sl_jline_open(sl_jline *j, sl_strbuf *b, const sl_log_fields *skip)
{
    *j = (sl_jline){.b = b, .skip = skip};
    put(j, "{", 1);
}

void sl_jline_strk(sl_jline *j, const char *k, size_t klen, const char *v)
{
    if (v && key(j, k, klen))
        put_string(j, v, strlen(v));
}

void sl_jline_intk(sl_jline *j, const char *k, size_t klen, long long v)
{
    if (key(j, k, klen))
        put_int(j, v);
}

void sl_jline_msk(sl_jline *j, const char *k, size_t klen, double ms)
{
    if (!key(j, k, klen))
        return;
    if (!isfinite(ms) || ms < 0)
        ms = 0;
    long long us = llround(ms * 1000.0);
    char frac[4] = {'.', (char)('0' + us / 100 % 10), (char)('0' + us / 10 % 10), (char)('0' + us % 10)};
    put_int(j, us / 1000);
    put(j, frac, 4);
}

void sl_jline_boolk(sl_jline *j, const char *k, size_t klen, bool v)
{
    if (key(j, k, klen))
        put(j, v ? "true" : "false", v ? 4 : 5);
}

void sl_jline_valuek(sl_jline *j, const char *k, size_t klen, const json_t *v)
{
    if (v && key(j, k, klen))
        put_value(j, v);
}

void sl_jline_fields(sl_jline *j, const sl_log_fields *fields)
{
    const sl_log_fields *skip = j->skip;
    j->skip = NULL;
    for (size_t i = 0; fields && i < fields->n; i++)
        sl_jline_valuek(j, fields->f[i].key, fields->f[i].len, fields->f[i].value);
    j->skip = skip;
}

void sl_jline_close(sl_jline *j) { put(j, "}", 1); }
