/* Masking: personal data in a request is replaced before the request leaves the gateway.
 * Patterns run over the normalised text (so full-width digits count), and each match is
 * mapped back to the original bytes it came from, which the replacement then covers.
 * Card numbers must pass Luhn, Chinese ID numbers the ISO 7064 MOD 11-2 checksum. */
#include "guard_int.h"

#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name, *pattern, *replace;
} builtin[] = {
    [SL_GUARD_MASK_EMAIL] = {"email",
                             "(?<![a-z0-9._%+-])[a-z0-9._%+-]+@[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
                             "(?:\\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*\\.[a-z]{2,}(?![a-z0-9])",
                             "[EMAIL]"},
    [SL_GUARD_MASK_PHONE] = {"phone",
                             "(?<![0-9a-z+])(?:\\+[0-9]{1,3}[ .-]?)?(?:\\([0-9]{1,4}\\)[ .-]?)?"
                             "[0-9]{2,5}(?:[ .-]?[0-9]{2,5}){1,4}(?![0-9a-z])",
                             "[PHONE]"},
    [SL_GUARD_MASK_CN_MOBILE] = {"cn_mobile",
                                 "(?<![0-9])(?:(?:\\+|00)86[ -]?)?1[3-9][0-9][ -]?[0-9]{4}[ -]?[0-9]{4}(?![0-9])",
                                 "[PHONE]"},
    [SL_GUARD_MASK_CN_ID] = {"cn_id", "(?<![0-9a-z])[1-9][0-9]{16}[0-9x](?![0-9a-z])", "[ID]"},
    [SL_GUARD_MASK_CARD] = {"card", "(?<![0-9])[0-9](?:[ -]?[0-9]){12,18}(?![0-9])", "[CARD]"},
};

int sl_guard_mask_kind_parse(const char *name)
{
    for (int k = 0; k < SL_GUARD_MASK_REGEX; k++)
        if (strcmp(builtin[k].name, name) == 0)
            return k;
    return -1;
}

int sl_guard_mask_init(sl_guard_mask *m, sl_guard_mask_kind kind, const char *pattern, const char *replace,
                       sl_err *err)
{
    memset(m, 0, sizeof *m);
    m->kind = kind;
    if (kind != SL_GUARD_MASK_REGEX) {
        pattern = builtin[kind].pattern;
        replace = builtin[kind].replace;
    }
    if (!(m->re = sl_guard_regex_compile(pattern, err)))
        return -1;
    if (!(m->replace = strdup(replace))) {
        sl_err_set(err, "out of memory");
        sl_guard_mask_free(m);
        return -1;
    }
    return 0;
}

void sl_guard_mask_free(sl_guard_mask *m)
{
    pcre2_code_free(m->re);
    free(m->replace);
    memset(m, 0, sizeof *m);
}

bool sl_guard_luhn_ok(const char *digits, size_t n)
{
    int sum = 0, count = 0;
    for (size_t i = n; i-- > 0;) {
        if (digits[i] < '0' || digits[i] > '9')
            continue;
        int d = digits[i] - '0';
        if (count++ % 2 == 1) {
            d *= 2;
            if (d > 9)
                d -= 9;
        }
        sum += d;
    }
    return count >= 13 && count <= 19 && sum % 10 == 0;
}

bool sl_guard_cn_id_ok(const char *id)
{
    static const int w[17] = {7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2};
    static const char check[] = "10X98765432";
    int sum = 0;
    for (int i = 0; i < 17; i++) {
        if (id[i] < '0' || id[i] > '9')
            return false;
        sum += (id[i] - '0') * w[i];
    }
    char c = id[17] == 'x' ? 'X' : id[17];
    return c == check[sum % 11];
}

static size_t count_digits(const char *s, size_t n)
{
    size_t d = 0;
    for (size_t i = 0; i < n; i++)
        d += s[i] >= '0' && s[i] <= '9';
    return d;
}

static bool valid(sl_guard_mask_kind kind, const char *s, size_t n)
{
    switch (kind) {
    case SL_GUARD_MASK_CARD: return sl_guard_luhn_ok(s, n);
    case SL_GUARD_MASK_CN_ID: return n == 18 && sl_guard_cn_id_ok(s);
    case SL_GUARD_MASK_PHONE: {
        size_t d = count_digits(s, n);
        return d >= 7 && d <= 15;
    }
    default: return true;
    }
}

typedef struct span {
    size_t os, oe;
    const sl_guard_mask *m;
} span;

static int cmp_span(const void *a, const void *b)
{
    const span *x = a, *y = b;
    return x->os < y->os ? -1 : x->os > y->os;
}

static bool overlaps(const span *v, size_t n, size_t os, size_t oe)
{
    for (size_t i = 0; i < n; i++)
        if (os < v[i].oe && v[i].os < oe)
            return true;
    return false;
}

/* Cheap pre-checks: most texts have no '@', many no digit. */
/* has_digit: -1 until a mask that needs digits asks (the text is scanned once, then). */
static bool may_match(sl_guard_mask_kind kind, const sl_guard_norm *norm, int *has_digit)
{
    switch (kind) {
    case SL_GUARD_MASK_EMAIL: return memchr(norm->s, '@', norm->len) != NULL;
    case SL_GUARD_MASK_REGEX: return true;
    default:
        if (*has_digit < 0) {
            *has_digit = 0;
            for (size_t i = 0; i < norm->len && !*has_digit; i++)
                *has_digit = norm->s[i] >= '0' && norm->s[i] <= '9';
        }
        return *has_digit;
    }
}

static bool email_local(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c && strchr("._%+-", c));
}

/* E-mail: the pattern tried at every letter would rescan each word; start from the '@'s. */
static int next_email(const sl_guard_mask *m, const sl_guard_norm *norm, pcre2_match_data *md, size_t *start)
{
    for (;;) {
        const char *at = *start < norm->len ? memchr(norm->s + *start, '@', norm->len - *start) : NULL;
        if (!at)
            return PCRE2_ERROR_NOMATCH;
        size_t a = (size_t)(at - norm->s), ls = a;
        while (ls > *start && email_local(norm->s[ls - 1]))
            ls--;
        *start = a + 1;
        if (ls == a)
            continue;
        int rc = pcre2_match(m->re, (PCRE2_SPTR)norm->s, norm->len, ls, PCRE2_ANCHORED, md, NULL);
        if (rc != PCRE2_ERROR_NOMATCH)
            return rc;
    }
}

static int collect(const sl_guard_mask *m, const sl_guard_norm *norm, pcre2_match_data *md, span **v, size_t *n,
                   size_t *cap)
{
    size_t start = 0;
    while (start <= norm->len) {
        int rc = m->kind == SL_GUARD_MASK_EMAIL ? next_email(m, norm, md, &start)
                                                : pcre2_match(m->re, (PCRE2_SPTR)norm->s, norm->len, start, 0, md, NULL);
        if (rc < 0)
            break;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t ns = ov[0], ne = ov[1];
        if (ne <= ns) { /* an empty match: step over one character */
            start = ns + 1;
            while (start < norm->len && ((uint8_t)norm->s[start] & 0xC0) == 0x80)
                start++;
            continue;
        }
        start = ne;
        if (!valid(m->kind, norm->s + ns, ne - ns))
            continue;
        size_t os, oe;
        sl_guard_norm_span(norm, ns, ne, &os, &oe);
        if (overlaps(*v, *n, os, oe))
            continue;
        if (*n == *cap) {
            size_t c = *cap ? *cap * 2 : 8;
            span *nv = realloc(*v, c * sizeof *nv);
            if (!nv)
                return -1;
            *v = nv;
            *cap = c;
        }
        (*v)[(*n)++] = (span){os, oe, m};
    }
    return 0;
}

int sl_guard_masks_apply(const sl_guard_mask *masks, size_t n, const char *text, size_t len,
                         const sl_guard_norm *norm, pcre2_match_data *md, char **out, size_t *out_len)
{
    span *v = NULL;
    size_t nv = 0, cap = 0;
    *out = NULL;
    *out_len = 0;
    int has_digit = -1;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < n; i++) {
            bool checksummed = masks[i].kind == SL_GUARD_MASK_CARD || masks[i].kind == SL_GUARD_MASK_CN_ID;
            if (checksummed != (pass == 0) || !may_match(masks[i].kind, norm, &has_digit))
                continue;
            if (collect(&masks[i], norm, md, &v, &nv, &cap) < 0)
                goto fail;
        }
    }
    if (nv == 0) {
        free(v);
        return 0;
    }
    qsort(v, nv, sizeof *v, cmp_span);
    size_t size = len + 1;
    for (size_t i = 0; i < nv; i++)
        size += strlen(v[i].m->replace);
    char *o = malloc(size);
    if (!o)
        goto fail;
    size_t pos = 0, w = 0;
    for (size_t i = 0; i < nv; i++) {
        memcpy(o + w, text + pos, v[i].os - pos);
        w += v[i].os - pos;
        size_t rl = strlen(v[i].m->replace);
        memcpy(o + w, v[i].m->replace, rl);
        w += rl;
        pos = v[i].oe;
    }
    memcpy(o + w, text + pos, len - pos);
    w += len - pos;
    o[w] = '\0';
    *out = o;
    *out_len = w;
    free(v);
    return (int)nv;
fail:
    free(v);
    return -1;
}
