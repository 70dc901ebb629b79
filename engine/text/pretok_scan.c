/* A hand-written scanner for the two pre-tokenizer regexes of Qwen2 and Llama 3:
 *   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1 or 1,3}
 *   | ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 * It takes the alternatives in order and resolves their backtracking by hand, so it cuts
 * the same pieces as PCRE2 does (test_text checks this on random text). Its character
 * classes come from PCRE2 itself, so the two agree on every code point too. */
#include "tokenizer_internal.h"

#include <pthread.h>
#include <string.h>

static const char qwen2_pattern[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
    "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char llama3_pattern[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
    "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

enum { C_OTHER, C_LETTER, C_NUMBER, C_SPACE };

#define N_CP 0x110000
static uint8_t classes[N_CP / 4]; /* 2 bits per code point */
static pthread_once_t classes_once = PTHREAD_ONCE_INIT;
static bool classes_ok;

static size_t utf8_put(uint32_t cp, unsigned char *b)
{
    if (cp < 0x80) {
        b[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        b[0] = (unsigned char)(0xC0 | (cp >> 6));
        b[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        b[0] = (unsigned char)(0xE0 | (cp >> 12));
        b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    b[0] = (unsigned char)(0xF0 | (cp >> 18));
    b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    b[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

static void classes_build(void)
{
    int ec;
    PCRE2_SIZE eo;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR) "(\\p{L})|(\\p{N})|(\\s)", PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_ANCHORED, &ec, &eo, NULL);
    pcre2_match_data *md = re ? pcre2_match_data_create_from_pattern(re, NULL) : NULL;
    if (!re || !md)
        goto done;
    bool jit = pcre2_jit_compile(re, PCRE2_JIT_COMPLETE) == 0;
    for (uint32_t cp = 0; cp < N_CP; cp++) {
        if (cp >= 0xD800 && cp <= 0xDFFF)
            continue;
        unsigned char b[4];
        size_t n = utf8_put(cp, b);
        int rc = jit ? pcre2_jit_match(re, b, n, 0, 0, md, NULL) : pcre2_match(re, b, n, 0, 0, md, NULL);
        if (rc < 2)
            continue; /* no match: other */
        classes[cp / 4] |= (uint8_t)((rc - 1) << (2 * (cp % 4))); /* rc-1 = group number */
    }
    classes_ok = true;
done:
    pcre2_match_data_free(md);
    pcre2_code_free(re);
}

int sl_tok_scan_kind(const char *pattern)
{
    if (!strcmp(pattern, qwen2_pattern) || !strcmp(pattern, llama3_pattern)) {
        pthread_once(&classes_once, classes_build);
        if (!classes_ok)
            return SL_TOK_SCAN_NONE;
        return !strcmp(pattern, qwen2_pattern) ? SL_TOK_SCAN_QWEN2 : SL_TOK_SCAN_LLAMA3;
    }
    return SL_TOK_SCAN_NONE;
}

/* Decodes the character at s[i] (valid UTF-8) into *cp and returns its class; *k = length. */
static int at(const unsigned char *s, size_t i, uint32_t *cp, size_t *k)
{
    unsigned char c = s[i];
    if (c < 0x80) {
        *cp = c;
        *k = 1;
    } else if (c < 0xE0) {
        *cp = ((c & 0x1Fu) << 6) | (s[i + 1] & 0x3Fu);
        *k = 2;
    } else if (c < 0xF0) {
        *cp = ((c & 0x0Fu) << 12) | ((s[i + 1] & 0x3Fu) << 6) | (s[i + 2] & 0x3Fu);
        *k = 3;
    } else {
        *cp = ((c & 0x07u) << 18) | ((s[i + 1] & 0x3Fu) << 12) | ((s[i + 2] & 0x3Fu) << 6) | (s[i + 3] & 0x3Fu);
        *k = 4;
    }
    return (classes[*cp / 4] >> (2 * (*cp % 4))) & 3;
}

/* ASCII case-insensitive letter, with U+017F LONG S folding to s as PCRE2's caseless
 * matching does. Returns the lowercase letter or 0. */
static char fold(uint32_t cp)
{
    if (cp == 0x17F)
        return 's';
    if (cp < 0x80 && ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z'))
        return (char)(cp | 0x20);
    return 0;
}

static size_t run_of(const unsigned char *s, size_t n, size_t i, int cls)
{
    uint32_t cp;
    size_t k;
    while (i < n && at(s, i, &cp, &k) == cls)
        i += k;
    return i;
}

size_t sl_tok_scan_next(int kind, const char *text, size_t n, size_t pos)
{
    const unsigned char *s = (const unsigned char *)text;
    uint32_t c, c1, c2;
    size_t k, k1, k2;
    int cl = at(s, pos, &c, &k);
    size_t next = pos + k;

    /* (?i:'s|'t|'re|'ve|'m|'ll|'d) */
    if (c == '\'' && next < n) {
        at(s, next, &c1, &k1);
        char f = fold(c1);
        if (f == 's' || f == 't' || f == 'm' || f == 'd')
            return next + k1;
        if ((f == 'r' || f == 'v' || f == 'l') && next + k1 < n) {
            at(s, next + k1, &c2, &k2);
            if (fold(c2) == (f == 'l' ? 'l' : 'e'))
                return next + k1 + k2;
        }
    }
    /* [^\r\n\p{L}\p{N}]?\p{L}+ */
    if (cl == C_LETTER)
        return run_of(s, n, next, C_LETTER);
    if (c != '\r' && c != '\n' && cl != C_NUMBER && next < n && at(s, next, &c1, &k1) == C_LETTER)
        return run_of(s, n, next, C_LETTER);
    /* \p{N} or \p{N}{1,3} */
    if (cl == C_NUMBER) {
        for (int more = kind == SL_TOK_SCAN_LLAMA3 ? 2 : 0; more > 0 && next < n; more--) {
            if (at(s, next, &c1, &k1) != C_NUMBER)
                break;
            next += k1;
        }
        return next;
    }
    /*  ?[^\s\p{L}\p{N}]+[\r\n]* */
    size_t p = pos;
    if (c == ' ' && next < n && at(s, next, &c1, &k1) == C_OTHER)
        p = next;
    if (p != pos || cl == C_OTHER) {
        size_t e = run_of(s, n, p, C_OTHER);
        while (e < n && (s[e] == '\r' || s[e] == '\n'))
            e++;
        return e;
    }
    /* c is whitespace: \s*[\r\n]+ ends after the run's last line break; else
     * \s+(?!\S) leaves the run's last character to the next piece; else \s+ */
    size_t e = pos, last_nl = 0, chars = 0, last_start = pos;
    bool nl = false;
    while (e < n && at(s, e, &c1, &k1) == C_SPACE) {
        if (c1 == '\r' || c1 == '\n') {
            nl = true;
            last_nl = e;
        }
        last_start = e;
        e += k1;
        chars++;
    }
    if (nl)
        return last_nl + 1;
    if (e == n || chars < 2)
        return e;
    return last_start;
}
