/* guard_bench: MB/s of the guard's request scan (normalise, 10,000 deny keywords, the
 * default masks) over 2 KiB messages of English-like and Chinese text, beside a peer: the
 * same keywords as PCRE2 JIT alternations. CPU time of this thread (the machine is shared).
 * Prints a table.
 * Run: build/tests/unit/guard/guard_bench [MiB of text, default 8] */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "guard_int.h"

#define NK 10000
#define MSG 2048

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static size_t put_cjk(char *p, uint32_t cp)
{
    p[0] = (char)(0xE0 | (cp >> 12));
    p[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    p[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
}

/* English-like words with an e-mail, a phone and a card number now and then. */
static size_t make_en(char *buf, size_t size)
{
    static const char *const pii[] = {"jane.doe@example.com", "+1 415-555-0100", "4111 1111 1111 1111",
                                      "13812345678", "11010519491231002X"};
    size_t n = 0;
    while (n + 40 < size) {
        if (rnd() % 60 == 0) {
            n += (size_t)sprintf(buf + n, "%s ", pii[rnd() % 5]);
            continue;
        }
        size_t wl = 2 + rnd() % 8;
        for (size_t i = 0; i < wl; i++)
            buf[n++] = (char)((i == 0 && rnd() % 5 == 0 ? 'A' : 'a') + rnd() % 26);
        buf[n++] = rnd() % 12 == 0 ? '.' : ' ';
    }
    return n;
}

static size_t make_zh(char *buf, size_t size)
{
    size_t n = 0;
    while (n + 8 < size) {
        if (rnd() % 30 == 0)
            buf[n++] = rnd() % 2 ? ',' : ' ';
        else
            n += put_cjk(buf + n, 0x4E00 + rnd() % 0x5000);
    }
    return n;
}

typedef struct corpus {
    char *text;
    size_t len;
} corpus;

/* The request scan as guard.c does it, per message: normalise, deny, mask. */
static size_t scan(const sl_guard_conf *c, const corpus *cp, bool deny, bool masks, sl_guard_norm *norm,
                   pcre2_match_data *md, size_t *masked)
{
    size_t hits = 0;
    for (size_t off = 0; off < cp->len;) {
        size_t len = cp->len - off < MSG ? cp->len - off : MSG;
        while (off + len < cp->len && ((uint8_t)cp->text[off + len] & 0xC0) == 0x80)
            len--;
        sl_guard_normalize(norm, cp->text + off, len);
        sl_guard_hit h;
        if (deny && sl_guard_rules_scan(&c->rules, norm->s, norm->len, 0, false, !norm->raw, md, &h))
            hits++;
        if (masks) {
            char *out;
            size_t out_len;
            int k = sl_guard_masks_apply(c->masks, c->n_masks, cp->text + off, len, norm, md, &out, &out_len);
            if (k > 0) {
                *masked += (size_t)k;
                free(out);
            }
        }
        off += len;
    }
    return hits;
}

static size_t ac_only(const sl_guard_ac *ac, const corpus *cp)
{
    size_t hits = 0;
    for (size_t off = 0; off < cp->len; off += MSG) {
        sl_guard_hit h;
        hits += sl_guard_ac_find(ac, cp->text + off, cp->len - off < MSG ? cp->len - off : MSG, &h);
    }
    return hits;
}

/* The best of three runs, in MB/s. */
#define TIME3(mbps, expr)                                                                                    \
    do {                                                                                                     \
        double best = 1e9;                                                                                   \
        for (int r_ = 0; r_ < 3; r_++) {                                                                     \
            double t0_ = now_s();                                                                            \
            expr;                                                                                            \
            double dt_ = now_s() - t0_;                                                                      \
            if (dt_ < best)                                                                                  \
                best = dt_;                                                                                  \
        }                                                                                                    \
        mbps = (double)cp->len / best / 1e6;                                                                 \
    } while (0)

static sl_guard_conf *make_conf(bool zh, char ***words_out)
{
    sl_guard_conf *c = calloc(1, sizeof *c);
    char **words = calloc(NK, sizeof *words);
    c->rules.ac = sl_guard_ac_new();
    for (size_t k = 0; k < NK; k++) {
        char w[32];
        size_t n = 0;
        if (zh) {
            size_t cl = 3 + rnd() % 2;
            for (size_t i = 0; i < cl; i++)
                n += put_cjk(w + n, 0x4E00 + rnd() % 0x5000);
        } else {
            size_t wl = 7 + rnd() % 6;
            for (size_t i = 0; i < wl; i++)
                w[n++] = (char)('a' + rnd() % 26);
        }
        w[n] = 0;
        words[k] = strdup(w);
        sl_guard_ac_add(c->rules.ac, w, n, (uint32_t)k);
    }
    sl_guard_ac_build(c->rules.ac);
    c->rules.n_words = c->rules.n_inline = NK;
    static const sl_guard_mask_kind kinds[] = {SL_GUARD_MASK_EMAIL, SL_GUARD_MASK_PHONE, SL_GUARD_MASK_CN_MOBILE,
                                               SL_GUARD_MASK_CN_ID, SL_GUARD_MASK_CARD};
    c->masks = calloc(5, sizeof *c->masks);
    sl_err err;
    for (size_t i = 0; i < 5; i++)
        if (sl_guard_mask_init(&c->masks[c->n_masks], kinds[i], NULL, NULL, &err) == 0)
            c->n_masks++;
    *words_out = words;
    return c;
}

/* The peer: the keywords as PCRE2 JIT alternations, as few as PCRE2's size limit allows
 * (10,000 words do not fit in one). */
typedef struct peer {
    pcre2_code *re[NK];
    size_t n, per;
} peer;

static int make_peer(char **words, peer *p)
{
    for (size_t per = NK; per >= 1; per /= 2) {
        p->n = 0;
        p->per = per;
        bool ok = true;
        for (size_t k0 = 0; k0 < NK && ok; k0 += per) {
            size_t size = 1;
            for (size_t k = k0; k < k0 + per && k < NK; k++)
                size += strlen(words[k]) + 1;
            char *pat = malloc(size), *q = pat;
            for (size_t k = k0; k < k0 + per && k < NK; k++)
                q += sprintf(q, "%s%s", k > k0 ? "|" : "", words[k]);
            sl_err err;
            pcre2_code *re = sl_guard_regex_compile(pat, &err);
            free(pat);
            if (re)
                p->re[p->n++] = re;
            else
                ok = false;
        }
        if (ok)
            return 0;
        for (size_t i = 0; i < p->n; i++)
            pcre2_code_free(p->re[i]);
    }
    return -1;
}

static size_t peer_scan(const peer *p, const corpus *cp, pcre2_match_data *md)
{
    size_t hits = 0;
    for (size_t off = 0; off < cp->len;) {
        size_t len = cp->len - off < MSG ? cp->len - off : MSG;
        while (off + len < cp->len && ((uint8_t)cp->text[off + len] & 0xC0) == 0x80)
            len--;
        for (size_t i = 0; i < p->n; i++)
            if (pcre2_match(p->re[i], (PCRE2_SPTR)(cp->text + off), len, 0, 0, md, NULL) >= 0) {
                hits++;
                break;
            }
        off += len;
    }
    return hits;
}

int main(int argc, char **argv)
{
    size_t mib = argc > 1 ? (size_t)atoi(argv[1]) : 8;
    if (mib == 0)
        mib = 8;
    sl_guard_norm norm = {0};
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    printf("guard request scan, %d deny keywords, %zu MiB of text in %d-byte messages (best of 3)\n\n", NK, mib,
           MSG);
    printf("%-8s %-44s %10s %8s\n", "text", "stage", "MB/s", "hits");
    for (int zh = 0; zh < 2; zh++) {
        char **words;
        sl_guard_conf *c = make_conf(zh, &words);
        corpus cpv = {.text = malloc(mib << 20)};
        corpus *cp = &cpv;
        cp->len = zh ? make_zh(cp->text, mib << 20) : make_en(cp->text, mib << 20);
        const char *name = zh ? "chinese" : "english";
        double mbps, kw_mbps = 0, peer_mbps = 0;
        size_t hits = 0, masked = 0;
        TIME3(mbps, scan(c, cp, false, false, &norm, md, &masked));
        printf("%-8s %-44s %10.1f %8s\n", name, "normalise (NFKC+casefold, offset map)", mbps, "-");
        TIME3(mbps, hits = scan(c, cp, true, false, &norm, md, &masked));
        printf("%-8s %-44s %10.1f %8zu\n", name, "normalise + 10,000 keywords (Aho-Corasick)", mbps, hits);
        TIME3(kw_mbps, hits = ac_only(c->rules.ac, cp));
        printf("%-8s %-44s %10.1f %8zu\n", name, "keywords only (Aho-Corasick, raw bytes)", kw_mbps, hits);
        static peer pr;
        if (make_peer(words, &pr) == 0) {
            char label[64];
            snprintf(label, sizeof label, "peer: PCRE2 JIT, %zu alternations of %zu words", pr.n, pr.per);
            corpus slice = {cp->text, cp->len < (256u << 10) ? cp->len : 256u << 10}; /* it is slow */
            double t0 = now_s();
            hits = peer_scan(&pr, &slice, md);
            peer_mbps = (double)slice.len / (now_s() - t0) / 1e6;
            printf("%-8s %-44s %10.1f %8zu\n", name, label, peer_mbps, hits);
            for (size_t i = 0; i < pr.n; i++)
                pcre2_code_free(pr.re[i]);
        }
        masked = 0;
        TIME3(mbps, scan(c, cp, false, true, &norm, md, &masked));
        printf("%-8s %-44s %10.1f %8zu\n", name, "normalise + 5 default masks", mbps, masked / 3);
        masked = 0;
        TIME3(mbps, hits = scan(c, cp, true, true, &norm, md, &masked));
        printf("%-8s %-44s %10.1f %8zu\n", name, "full request scan (normalise, deny, masks)", mbps, hits);
        if (peer_mbps > 0)
            printf("%-8s %-44s %9.1fx\n", name, "ratio keywords: Aho-Corasick / PCRE2 peer", kw_mbps / peer_mbps);
        printf("\n");
        for (size_t k = 0; k < NK; k++)
            free(words[k]);
        free(words);
        free(cp->text);
        sl_guard_config_free(c);
    }
    sl_guard_norm_free(&norm);
    pcre2_match_data_free(md);
    return 0;
}
