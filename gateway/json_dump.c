#include "json_dump.h"
#include "json_plain.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fmt_int.h"
#include "json_parse.h"

const unsigned char sl_json_plain_class[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
};

static int put_string(sl_strbuf *b, const char *s, size_t len)
{
    if (sl_strbuf_reserve(b, len + 2) < 0)
        return -1;
    b->s[b->len++] = '"';
    const unsigned char *p = (const unsigned char *)s, *end = p + len, *run = p;
    size_t plain = sl_json_plain_run(s, len, false);
    if (plain == len) { /* the usual string: nothing to escape, room reserved above */
        memcpy(b->s + b->len, s, len);
        b->len += len;
        b->s[b->len++] = '"';
        b->s[b->len] = 0;
        return 0;
    }
    p += plain;
    while (p < end) {
        p += sl_json_plain_run((const char *)p, (size_t)(end - p), false);
        if (p == end)
            break;
        unsigned c = *p;
        if (c >= 0x80) {
            size_t k = sl_utf8_seq_len(p, end);
            if (!k)
                return -1;
            p += k;
            continue;
        }
        if (sl_strbuf_add(b, run, (size_t)(p - run)) < 0)
            return -1;
        char esc[8] = {'\\', 0};
        size_t n = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            memcpy(esc + 1, "u00", 3);
            esc[4] = "0123456789ABCDEF"[c >> 4];
            esc[5] = "0123456789ABCDEF"[c & 15];
            n = 6;
        }
        if (sl_strbuf_add(b, esc, n) < 0)
            return -1;
        run = ++p;
    }
    if (sl_strbuf_add(b, run, (size_t)(p - run)) < 0 || sl_strbuf_add(b, "\"", 1) < 0)
        return -1;
    return 0;
}

static int put_int(sl_strbuf *b, json_int_t v)
{
    char buf[SL_FMT_INT_MAX];
    return sl_strbuf_add(b, buf, sl_fmt_int(buf, v));
}

/* jansson's form of a real: %.17g, ".0" added where it would read back as an integer,
 * no '+' and no leading zeros in the exponent. */
static int put_real(sl_strbuf *b, double v)
{
    char buf[64];
    int n = snprintf(buf, sizeof buf - 3, "%.17g", v);
    if (n < 0 || (size_t)n >= sizeof buf - 3)
        return -1;
    size_t len = (size_t)n;
    for (char *c = buf; *c; c++)
        if (*c == ',') /* a locale's decimal comma */
            *c = '.';
    if (!strchr(buf, '.') && !strchr(buf, 'e')) {
        memcpy(buf + len, ".0", 3);
        len += 2;
    }
    char *e = strchr(buf, 'e');
    if (e) {
        char *start = e + 1, *digits = start + 1;
        if (*start == '-')
            start++;
        while (*digits == '0')
            digits++;
        if (digits != start) {
            memmove(start, digits, len - (size_t)(digits - buf) + 1);
            len -= (size_t)(digits - start);
        }
    }
    return sl_strbuf_add(b, buf, len);
}

int sl_json_dump(sl_strbuf *b, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        if (sl_strbuf_add(b, "{", 1) < 0)
            return -1;
        /* the iterator itself (json_object_keylen_foreach goes from key to iterator and
         * back three times a member) */
        bool first = true;
        for (void *it = json_object_iter((json_t *)v); it; it = json_object_iter_next((json_t *)v, it)) {
            if ((!first && sl_strbuf_add(b, ",", 1) < 0) ||
                put_string(b, json_object_iter_key(it), json_object_iter_key_len(it)) < 0 ||
                sl_strbuf_add(b, ":", 1) < 0 || sl_json_dump(b, json_object_iter_value(it)) < 0)
                return -1;
            first = false;
        }
        return sl_strbuf_add(b, "}", 1);
    }
    case JSON_ARRAY: {
        if (sl_strbuf_add(b, "[", 1) < 0)
            return -1;
        for (size_t i = 0, n = json_array_size(v); i < n; i++)
            if ((i && sl_strbuf_add(b, ",", 1) < 0) || sl_json_dump(b, json_array_get(v, i)) < 0)
                return -1;
        return sl_strbuf_add(b, "]", 1);
    }
    case JSON_STRING: return put_string(b, json_string_value(v), json_string_length(v));
    case JSON_INTEGER: return put_int(b, json_integer_value(v));
    case JSON_REAL: return put_real(b, json_real_value(v));
    case JSON_TRUE: return sl_strbuf_add(b, "true", 4);
    case JSON_FALSE: return sl_strbuf_add(b, "false", 5);
    case JSON_NULL: return sl_strbuf_add(b, "null", 4);
    }
    return -1;
}

int sl_json_dump_string(sl_strbuf *b, const char *s, size_t len) { return put_string(b, s, len); }

char *sl_json_dumps(const json_t *v, size_t *len)
{
    sl_strbuf b = {0};
    if (!v || sl_json_dump(&b, v) < 0 || !b.s) {
        free(b.s);
        return NULL;
    }
    if (len)
        *len = b.len;
    return b.s;
}
