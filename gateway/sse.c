#include "sse.h"

#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>

int sl_sse_init(sl_sse *s)
{
    s->pending = evbuffer_new();
    s->taken = s->scanned = 0;
    s->one_line = false;
    return s->pending ? 0 : -1;
}

void sl_sse_free(sl_sse *s)
{
    if (s->pending)
        evbuffer_free(s->pending);
    s->pending = NULL;
}

/* The events handed out are dropped only now: their bytes stayed where the caller read them. */
static void drop_taken(sl_sse *s)
{
    if (s->taken)
        evbuffer_drain(s->pending, s->taken);
    s->taken = 0;
}

void sl_sse_feed(sl_sse *s, const char *data, size_t len)
{
    drop_taken(s);
    evbuffer_add(s->pending, data, len);
}

static const unsigned char *find_byte(const unsigned char *p, const unsigned char *end, int c)
{
    const unsigned char *q = memchr(p, c, (size_t)(end - p));
    return q ? q : end;
}

/* An event ends at "\n\n", "\r\n\r\n" or "\r\r"; return the offset just past it, or 0.
 * Only the line ends are looked at: memchr to the next '\n', then for a '\r' before it. The
 * '\r' is not looked for past that '\n': in a read of many events with none, each event
 * would scan the rest of the read. */
static size_t find_end(const unsigned char *p, size_t n, size_t from, bool *one_line)
{
    const unsigned char *end = p + n, *at = p + (from ? from - 1 : 0);
    const unsigned char *nl = NULL; /* the next '\n' from at (end: none) */
    *one_line = false;
    for (bool first = from == 0; at < end; first = false) {
        if (!nl || nl < at)
            nl = find_byte(at, end, '\n');
        const unsigned char *cr = find_byte(at, nl, '\r');
        at = cr < nl ? cr : nl;
        if (at == end)
            return 0;
        size_t i = (size_t)(at - p);
        if (p[i] == '\n') {
            if (i + 1 < n && p[i + 1] == '\n') {
                *one_line = first; /* the first line end, and no '\r' before it */
                return i + 2;
            }
            if (i + 2 < n && p[i + 1] == '\r' && p[i + 2] == '\n')
                return i + 3;
        } else if (i + 1 < n && p[i + 1] == '\r') {
            return i + 2;
        }
        at++;
    }
    return 0;
}

const char *sl_sse_take(sl_sse *s, size_t *len)
{
    size_t n = evbuffer_get_length(s->pending) - s->taken;
    if (n == 0 || n <= s->scanned)
        return NULL;
    const unsigned char *p = evbuffer_pullup(s->pending, -1);
    if (!p)
        return NULL;
    p += s->taken;
    size_t end = find_end(p, n, s->scanned, &s->one_line);
    if (!end) {
        s->scanned = n > 2 ? n - 2 : 0;
        return NULL;
    }
    s->taken += end;
    s->scanned = 0;
    *len = end;
    return (const char *)p;
}

char *sl_sse_next(sl_sse *s, size_t *len)
{
    size_t n = 0;
    const char *at = sl_sse_take(s, &n);
    char *ev = at ? malloc(n + 1) : NULL;
    if (!ev)
        return NULL;
    memcpy(ev, at, n);
    ev[n] = 0;
    *len = n;
    return ev;
}

char *sl_sse_rest(sl_sse *s, size_t *len)
{
    drop_taken(s);
    size_t n = evbuffer_get_length(s->pending);
    if (!n)
        return NULL;
    char *r = malloc(n + 1);
    if (!r)
        return NULL;
    evbuffer_remove(s->pending, r, n);
    r[n] = 0;
    *len = n;
    s->scanned = 0;
    return r;
}

/* The value of the next data line in [*p, end), or NULL when there is none; *p moves past
 * that line. */
static const char *next_data(const char **p, const char *end, size_t *vl)
{
    while (*p < end) {
        const char *line = *p, *eol = memchr(line, '\n', (size_t)(end - line));
        if (!eol)
            eol = end;
        const char *cr = memchr(line, '\r', (size_t)(eol - line));
        if (cr)
            eol = cr;
        *p = eol;
        if (*p < end && **p == '\r')
            (*p)++;
        if (*p < end && **p == '\n')
            (*p)++;
        if (eol - line >= 5 && memcmp(line, "data:", 5) == 0) {
            const char *v = line + 5;
            if (v < eol && *v == ' ')
                v++;
            *vl = (size_t)(eol - v);
            return v;
        }
    }
    return NULL;
}

char *sl_sse_data(const char *event, size_t len, size_t *data_len)
{
    char *out = NULL;
    size_t n = 0, vl = 0;
    bool any = false;
    const char *p = event, *end = event + len, *v;
    while ((v = next_data(&p, end, &vl))) {
        char *grown = realloc(out, n + vl + 2);
        if (!grown) {
            free(out);
            return NULL;
        }
        out = grown;
        if (any)
            out[n++] = '\n';
        memcpy(out + n, v, vl);
        n += vl;
        out[n] = 0;
        any = true;
    }
    if (any)
        *data_len = n;
    return out;
}

const char *sl_sse_data_ref(const char *event, size_t len, size_t *data_len, char **joined)
{
    *joined = NULL;
    size_t n = 0, more = 0;
    const char *p = event, *end = event + len, *data = next_data(&p, end, &n);
    if (data && next_data(&p, end, &more)) /* a second data line: joined */
        return *joined = sl_sse_data(event, len, data_len);
    if (data)
        *data_len = n;
    return data;
}

const char *sl_sse_data_of(const sl_sse *s, const char *event, size_t len, size_t *data_len, char **joined)
{
    if (!s->one_line || len < 7 || memcmp(event, "data:", 5) != 0)
        return sl_sse_data_ref(event, len, data_len, joined);
    *joined = NULL;
    const char *v = event + 5 + (event[5] == ' ');
    *data_len = (size_t)(event + len - 2 - v);
    return v;
}
