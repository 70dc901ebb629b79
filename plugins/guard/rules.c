/* The deny rules: keywords (Aho-Corasick) and regexes (PCRE2) over normalised text. */
#include "guard_int.h"

#include <stdio.h>
#include <stdlib.h>

pcre2_code *sl_guard_regex_compile(const char *pattern, sl_err *err)
{
    int code;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP | PCRE2_CASELESS,
                                   &code, &off, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        sl_err_set(err, "bad regex at offset %zu: %s", (size_t)off, (const char *)msg);
        return NULL;
    }
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE | PCRE2_JIT_PARTIAL_HARD); /* the interpreter serves where JIT is missing */
    return re;
}

bool sl_guard_regex_scan(const sl_guard_rules *r, const char *s, size_t len, size_t from, bool more, bool utf8,
                         pcre2_match_data *md, bool found, sl_guard_hit *hit)
{
    uint32_t opts = (more ? PCRE2_PARTIAL_HARD : 0) | (utf8 ? PCRE2_NO_UTF_CHECK : 0);
    for (size_t i = 0; i < r->n_re; i++) {
        int rc = pcre2_match(r->re[i], (PCRE2_SPTR)s, len, from, opts, md, NULL);
        if (rc < 0) /* no match, a partial one (more may follow), or a match error (limits) */
            continue;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        if (!found || ov[0] < hit->start) {
            *hit = (sl_guard_hit){.start = ov[0], .end = ov[1], .is_regex = true, .id = (uint32_t)i};
            found = true;
        }
    }
    return found;
}

bool sl_guard_rules_scan(const sl_guard_rules *r, const char *s, size_t len, size_t from, bool more, bool utf8,
                         pcre2_match_data *md, sl_guard_hit *hit)
{
    int32_t state = 0;
    bool found = r->ac && sl_guard_ac_feed(r->ac, &state, s, from, len, hit);
    return sl_guard_regex_scan(r, s, len, from, more, utf8, md, found, hit);
}

const char *sl_guard_rule_name(const sl_guard_rules *r, const sl_guard_hit *hit, char *buf, size_t size)
{
    if (hit->is_regex)
        snprintf(buf, size, "deny_regex[%u]", hit->id);
    else if (hit->id < r->n_inline)
        snprintf(buf, size, "deny[%u]", hit->id);
    else
        snprintf(buf, size, "deny_file:%u", r->file_line[hit->id - r->n_inline]);
    return buf;
}

bool sl_guard_rules_empty(const sl_guard_rules *r) { return !r->ac && r->n_re == 0; }

void sl_guard_rules_free(sl_guard_rules *r)
{
    sl_guard_ac_free(r->ac);
    free(r->file_line);
    for (size_t i = 0; i < r->n_re; i++)
        pcre2_code_free(r->re[i]);
    free(r->re);
    *r = (sl_guard_rules){0};
}
