/* How many characters can a regex match span? The stream scanner holds back that many,
 * so that a match split over chunks is seen whole. A small reader of PCRE2 syntax that
 * answers an upper bound, or SIZE_MAX (unbounded: *, +, {n,}, back-references,
 * recursion, or anything it does not understand). */
#include "guard_int.h"

#include <stdint.h>
#include <string.h>

#define INF SIZE_MAX

typedef struct rd {
    const char *p, *end;
    bool bad;
} rd;

static size_t add(size_t a, size_t b) { return a == INF || b == INF || a > INF - b ? INF : a + b; }
static size_t mul(size_t a, size_t b) { return a == INF || b == INF || (b && a > INF / b) ? INF : a * b; }

static size_t alt(rd *r);

static bool read_num(rd *r, size_t *v)
{
    const char *s = r->p;
    size_t x = 0;
    while (r->p < r->end && *r->p >= '0' && *r->p <= '9') {
        x = x * 10 + (size_t)(*r->p - '0');
        if (x > 100000)
            x = 100000;
        r->p++;
    }
    *v = x;
    return r->p > s;
}

/* A quantifier after an atom of width w. */
static size_t quant(rd *r, size_t w)
{
    if (r->p >= r->end)
        return w;
    char c = *r->p;
    size_t out = w;
    if (c == '?') {
        r->p++;
    } else if (c == '*' || c == '+') {
        r->p++;
        out = w ? INF : 0;
    } else if (c == '{') {
        const char *save = r->p;
        size_t lo, hi;
        r->p++;
        if (!read_num(r, &lo)) {
            r->p = save; /* a literal { */
            return w;
        }
        hi = lo;
        if (r->p < r->end && *r->p == ',') {
            r->p++;
            if (!read_num(r, &hi))
                hi = INF;
        }
        if (r->p >= r->end || *r->p != '}') {
            r->p = save;
            return w;
        }
        r->p++;
        out = hi == INF ? (w ? INF : 0) : mul(w, hi);
    } else {
        return w;
    }
    if (r->p < r->end && (*r->p == '?' || *r->p == '+'))
        r->p++; /* lazy or possessive */
    return out;
}

static void skip_braced(rd *r)
{
    if (r->p < r->end && *r->p == '{') {
        while (r->p < r->end && *r->p != '}')
            r->p++;
        if (r->p < r->end)
            r->p++;
    }
}

static size_t escape(rd *r)
{
    if (r->p >= r->end) {
        r->bad = true;
        return INF;
    }
    char c = *r->p++;
    switch (c) {
    case 'b': case 'B': case 'A': case 'z': case 'Z': case 'G': case 'K':
        return 0;
    case 'Q': {
        size_t n = 0;
        while (r->p < r->end && !(r->p + 1 < r->end && r->p[0] == '\\' && r->p[1] == 'E')) {
            n += ((uint8_t)*r->p & 0xC0) != 0x80;
            r->p++;
        }
        if (r->p < r->end)
            r->p += 2;
        return n;
    }
    case 'E':
        return 0;
    case 'x': case 'o': case 'p': case 'P': case 'N':
        skip_braced(r);
        if (c == 'x' && (r->p >= r->end || r->p[-1] != '}'))
            for (int i = 0; i < 2 && r->p < r->end && strchr("0123456789abcdefABCDEF", *r->p); i++)
                r->p++;
        return 1;
    case 'g': case 'k': case '1': case '2': case '3': case '4': case '5': case '6': case '7': case '8': case '9':
        r->bad = true; /* back-references */
        return INF;
    case 'R': case 'X':
        return INF;
    case 'c':
        if (r->p < r->end)
            r->p++;
        return 1;
    default:
        return 1;
    }
}

static size_t klass(rd *r)
{
    /* r->p is past '[' */
    if (r->p < r->end && *r->p == '^')
        r->p++;
    if (r->p < r->end && *r->p == ']')
        r->p++;
    while (r->p < r->end && *r->p != ']') {
        if (*r->p == '\\' && r->p + 1 < r->end) {
            r->p += 2;
        } else if (*r->p == '[' && r->p + 1 < r->end && r->p[1] == ':') {
            const char *e = strstr(r->p, ":]");
            r->p = e && e < r->end ? e + 2 : r->p + 1;
        } else {
            r->p++;
        }
    }
    if (r->p >= r->end) {
        r->bad = true;
        return INF;
    }
    r->p++;
    return 1;
}

static size_t group(rd *r)
{
    /* r->p is past '(' */
    bool zero = false;
    if (r->p < r->end && *r->p == '*') {
        r->bad = true; /* (*VERB) */
        return INF;
    }
    if (r->p < r->end && *r->p == '?') {
        r->p++;
        char c = r->p < r->end ? *r->p : 0;
        if (c == ':' || c == '>' || c == '|') {
            r->p++;
        } else if (c == '=' || c == '!') {
            r->p++;
            zero = true;
        } else if (c == '<' && r->p + 1 < r->end && (r->p[1] == '=' || r->p[1] == '!')) {
            r->p += 2;
            zero = true;
        } else if (c == '#') {
            while (r->p < r->end && *r->p != ')')
                r->p++;
            if (r->p < r->end)
                r->p++;
            return 0;
        } else if (c == '<' || c == '\'' || (c == 'P' && r->p + 1 < r->end && r->p[1] == '<')) {
            char close = c == '\'' ? '\'' : '>';
            while (r->p < r->end && *r->p != close)
                r->p++;
            if (r->p < r->end)
                r->p++;
        } else {
            /* inline options (?i) (?i:...) or something this reader does not know */
            while (r->p < r->end && strchr("imnsxJU-^", *r->p))
                r->p++;
            if (r->p < r->end && *r->p == ')') {
                r->p++;
                return 0;
            }
            if (r->p < r->end && *r->p == ':') {
                r->p++;
            } else {
                r->bad = true;
                return INF;
            }
        }
    }
    size_t w = alt(r);
    if (r->p >= r->end || *r->p != ')') {
        r->bad = true;
        return INF;
    }
    r->p++;
    return zero ? 0 : w;
}

static size_t seq(rd *r)
{
    size_t total = 0;
    while (r->p < r->end && !r->bad && *r->p != '|' && *r->p != ')') {
        char c = *r->p++;
        size_t w;
        if (c == '(')
            w = group(r);
        else if (c == '[')
            w = klass(r);
        else if (c == '\\')
            w = escape(r);
        else if (c == '^' || c == '$')
            w = 0;
        else {
            while (r->p < r->end && ((uint8_t)*r->p & 0xC0) == 0x80)
                r->p++; /* the rest of a UTF-8 character */
            w = 1;
        }
        total = add(total, quant(r, w));
    }
    return total;
}

static size_t alt(rd *r)
{
    size_t best = seq(r);
    while (r->p < r->end && !r->bad && *r->p == '|') {
        r->p++;
        size_t w = seq(r);
        if (w > best)
            best = w;
    }
    return best;
}

size_t sl_guard_regex_bound(const char *pattern)
{
    rd r = {.p = pattern, .end = pattern + strlen(pattern)};
    size_t w = alt(&r);
    if (r.bad || r.p != r.end)
        return INF;
    return w;
}
