#include "metrics.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fmt_int.h"

enum { COUNTER, HISTOGRAM };

typedef struct family {
    const char *name, *help;
    int type;
    const double *buckets;   /* histograms: upper bounds, ascending; +Inf is implied */
    size_t nb;
} family;

static const double duration_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600};
static const double overhead_buckets[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                          0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5};
static const double ttft_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
static const double itl_buckets[SL_METRICS_ITL_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05,
                                                            0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5};
#define NB(a) (sizeof(a) / sizeof(a)[0])

enum { F_REQUESTS, F_PROMPT, F_COMPLETION, F_DURATION, F_OVERHEAD, F_TTFT, F_ITL, F_CACHE_HITS, F_CACHE_MISSES,
       F_CACHE_BYPASSES, F_FALLBACKS, F_GUARD, N_FAMILIES };

static const family families[N_FAMILIES] = {
    [F_REQUESTS] = {"sluice_requests_total", "Requests answered, by consumer, model, upstream and HTTP status.", COUNTER,
                    NULL, 0},
    [F_PROMPT] = {"sluice_prompt_tokens_total", "Prompt tokens served, by consumer and model.", COUNTER, NULL, 0},
    [F_COMPLETION] = {"sluice_completion_tokens_total", "Completion tokens served, by consumer and model.", COUNTER,
                      NULL, 0},
    [F_DURATION] = {"sluice_request_duration_seconds", "Time from the request head to the last response byte.",
                    HISTOGRAM, duration_buckets, NB(duration_buckets)},
    [F_OVERHEAD] = {"sluice_gateway_overhead_seconds",
                    "Time the gateway added to a request: its duration less the client's sending of it and "
                    "the time its upstream attempts took.",
                    HISTOGRAM, overhead_buckets, NB(overhead_buckets)},
    [F_TTFT] = {"sluice_time_to_first_token_seconds", "Streamed requests: time until the first event reached the client.",
                HISTOGRAM, ttft_buckets, NB(ttft_buckets)},
    [F_ITL] = {"sluice_inter_token_latency_seconds",
               "Streamed requests: time between consecutive events sent to the client.", HISTOGRAM, itl_buckets,
               NB(itl_buckets)},
    [F_CACHE_HITS] = {"sluice_cache_hits_total", "Requests answered from the response cache.", COUNTER, NULL, 0},
    [F_CACHE_MISSES] = {"sluice_cache_misses_total", "Cacheable requests not found in the cache.", COUNTER, NULL, 0},
    [F_CACHE_BYPASSES] = {"sluice_cache_bypasses_total", "Requests the cache did not apply to.", COUNTER, NULL, 0},
    [F_FALLBACKS] = {"sluice_fallbacks_total",
                     "Requests served after a target failed, by asked model and the model that served (none: all failed).",
                     COUNTER, NULL, 0},
    [F_GUARD] = {"sluice_guard_blocks_total", "Requests and responses blocked by the content guard, by stage and rule.",
                 COUNTER, NULL, 0},
};

/* One label set of one family, owned by one thread. Histograms keep nb + 1 bucket counts
 * (the last is +Inf, not cumulative) and the sum in microseconds. */
typedef struct series {
    struct series *next;              /* older series of the same thread */
    int fam;
    uint64_t hash;
    char *labels;                     /* rendered: a="x",b="y" */
    size_t nv;
    _Atomic uint64_t v[];
} series;

typedef struct block {
    struct block *next;
    _Atomic(series *) head;           /* written by the owner, read by the scraper */
    series **index;                   /* owner only: open addressing */
    size_t cap, n;
} block;

static _Atomic(block *) blocks;
static _Thread_local block *mine;

static block *my_block(void)
{
    if (mine)
        return mine;
    block *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->next = atomic_load_explicit(&blocks, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&blocks, &b->next, b, memory_order_release, memory_order_relaxed))
        ;
    mine = b;
    return b;
}

static uint64_t hash_of(int fam, const char *labels)
{
    uint64_t h = 1469598103934665603ull ^ (uint64_t)fam;
    for (const unsigned char *p = (const unsigned char *)labels; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    return h;
}

static bool index_put(series **idx, size_t cap, series *s)
{
    for (size_t i = s->hash & (cap - 1);; i = (i + 1) & (cap - 1))
        if (!idx[i]) {
            idx[i] = s;
            return true;
        }
}

static bool grow(block *b)
{
    size_t cap = b->cap ? b->cap * 2 : 64;
    series **idx = calloc(cap, sizeof *idx);
    if (!idx)
        return false;
    for (size_t i = 0; i < b->cap; i++)
        if (b->index[i])
            index_put(idx, cap, b->index[i]);
    free(b->index);
    b->index = idx;
    b->cap = cap;
    return true;
}

static size_t values_of(int fam) { return families[fam].type == HISTOGRAM ? families[fam].nb + 2 : 1; }

/* This thread's series for (fam, labels), made on first use; NULL when out of memory. */
static series *lookup(int fam, const char *labels)
{
    block *b = my_block();
    if (!b)
        return NULL;
    uint64_t h = hash_of(fam, labels);
    for (size_t i = b->cap ? h & (b->cap - 1) : 0; b->cap && b->index[i]; i = (i + 1) & (b->cap - 1)) {
        series *s = b->index[i];
        if (s->hash == h && s->fam == fam && strcmp(s->labels, labels) == 0)
            return s;
    }
    if ((b->n + 1) * 2 > b->cap && !grow(b))
        return NULL;
    size_t nv = values_of(fam);
    series *s = calloc(1, sizeof *s + nv * sizeof s->v[0]);
    if (!s || !(s->labels = strdup(labels))) {
        free(s);
        return NULL;
    }
    s->fam = fam;
    s->hash = h;
    s->nv = nv;
    index_put(b->index, b->cap, s);
    b->n++;
    s->next = atomic_load_explicit(&b->head, memory_order_relaxed);
    atomic_store_explicit(&b->head, s, memory_order_release);
    return s;
}

static void add(series *s, size_t i, uint64_t n)
{
    if (s)
        atomic_fetch_add_explicit(&s->v[i], n, memory_order_relaxed);
}

/* Renders n name/value pairs into out (cap bytes); false when they do not fit. */
static bool labels(char *out, size_t cap, size_t n, ...)
{
    va_list ap;
    va_start(ap, n);
    size_t o = 0;
    bool ok = true;
    for (size_t k = 0; k < n && ok; k++) {
        const char *name = va_arg(ap, const char *), *v = va_arg(ap, const char *);
        size_t nl = strlen(name);
        ok = o + nl + 3 < cap;
        if (ok) {
            if (k)
                out[o++] = ',';
            memcpy(out + o, name, nl);
            o += nl;
            out[o++] = '=';
            out[o++] = '"';
        }
        for (const char *p = v ? v : ""; ok && *p; p++) {
            const char *esc = *p == '\\' ? "\\\\" : *p == '"' ? "\\\"" : *p == '\n' ? "\\n" : NULL;
            size_t l = esc ? 2 : 1;
            ok = o + l + 2 < cap;
            if (ok) {
                memcpy(out + o, esc ? esc : p, l);
                o += l;
            }
        }
        ok = ok && o + 2 < cap;
        if (ok)
            out[o++] = '"';
    }
    va_end(ap);
    out[ok ? o : 0] = '\0';
    return ok;
}

static void observe(series *s, int fam, double v)
{
    if (!s)
        return;
    const family *f = &families[fam];
    size_t i = 0;
    while (i < f->nb && v > f->buckets[i])
        i++;
    add(s, i, 1);
    add(s, f->nb + 1, v > 0 ? (uint64_t)(v * 1e6 + 0.5) : 0);
}

void sl_metrics_itl_init(sl_metrics_itl *t) { *t = (sl_metrics_itl){.last_ms = -1}; }

void sl_metrics_itl_event(sl_metrics_itl *t, double now_ms)
{
    if (t->last_ms >= 0) {
        double gap = (now_ms - t->last_ms) / 1000.0;
        size_t i = 0;
        while (i < SL_METRICS_ITL_BUCKETS && gap > itl_buckets[i])
            i++;
        t->n[i]++;
        t->sum_s += gap > 0 ? gap : 0;
    }
    t->last_ms = now_ms;
}

static uint64_t itl_total(const sl_metrics_itl *t)
{
    uint64_t total = 0;
    for (size_t i = 0; i <= SL_METRICS_ITL_BUCKETS; i++)
        total += t->n[i];
    return total;
}

/* Adds a whole stream's gaps to this thread's ITL series. */
static void observe_itl(series *s, const sl_metrics_itl *t)
{
    if (!s)
        return;
    for (size_t i = 0; i <= SL_METRICS_ITL_BUCKETS; i++)
        if (t->n[i])
            add(s, i, t->n[i]);
    add(s, SL_METRICS_ITL_BUCKETS + 1, (uint64_t)(t->sum_s * 1e6 + 0.5));
}

/* The series of the last request's consumer, model, upstream and status, per thread: a
 * worker mostly sees the same ones again, and comparing them costs less than rendering the
 * labels and looking them up. Series live as long as the process. Each is looked up when
 * first needed, as before (a series shows on /metrics once made). */
static _Thread_local struct {
    char key[512];              /* consumer, model, upstream, NUL after each, then status */
    size_t len;                 /* 0: none */
    series *s[N_FAMILIES];      /* NULL: not looked up yet for this key */
} recent;

static size_t put_key(char *key, size_t o, size_t cap, const char *v)
{
    size_t n = v ? strlen(v) : 0;
    if (!o || o + n + 1 > cap)
        return 0;
    memcpy(key + o, v ? v : "", n);
    key[o + n] = 0;
    return o + n + 1;
}

/* recent.s for m's labels (cleared when they differ from the last), or NULL when they are
 * too long to keep. */
static series **recent_for(const sl_metrics_sample *m)
{
    char key[sizeof recent.key];
    size_t o = sizeof m->status;
    memcpy(key, &m->status, o);
    o = put_key(key, put_key(key, put_key(key, o, sizeof key, m->consumer), sizeof key, m->model), sizeof key,
                m->upstream);
    if (!o)
        return NULL;
    if (o != recent.len || memcmp(key, recent.key, o) != 0) {
        memcpy(recent.key, key, o);
        recent.len = o;
        memset(recent.s, 0, sizeof recent.s);
    }
    return recent.s;
}

/* The label sets a request's families use, rendered into one buffer on demand. */
enum { L_ALL, L_CONSUMER_MODEL, L_MODEL, L_NONE };

typedef struct {
    char s[1024];
    int set;                    /* which one s holds; -1 none */
} label_buf;

static const char *render(label_buf *b, const sl_metrics_sample *m, int set)
{
    if (b->set == set)
        return b->s;
    char status[SL_FMT_INT_MAX];
    bool ok = true;
    switch (set) {
    case L_ALL:
        sl_fmt_int(status, m->status);
        ok = labels(b->s, sizeof b->s, 4, "consumer", m->consumer, "model", m->model, "upstream", m->upstream,
                    "status", status);
        break;
    case L_CONSUMER_MODEL: ok = labels(b->s, sizeof b->s, 2, "consumer", m->consumer, "model", m->model); break;
    case L_MODEL: ok = labels(b->s, sizeof b->s, 1, "model", m->model); break;
    default: b->s[0] = 0; break;
    }
    b->set = ok ? set : -1;
    return ok ? b->s : NULL;
}

/* s[fam], looked up under its label set the first time this key needs it */
static series *series_of(series **s, int fam, int set, label_buf *b, const sl_metrics_sample *m)
{
    const char *l;
    if (!s[fam] && (l = render(b, m, set)))
        s[fam] = lookup(fam, l);
    return s[fam];
}

void sl_metrics_record(const sl_metrics_sample *m)
{
    series *none[N_FAMILIES] = {0}, **s = recent_for(m);
    if (!s)
        s = none;
    label_buf b = {.set = -1};
    char l[1024];
    add(series_of(s, F_REQUESTS, L_ALL, &b, m), 0, 1);
    if (m->prompt_tokens > 0)
        add(series_of(s, F_PROMPT, L_CONSUMER_MODEL, &b, m), 0, (uint64_t)m->prompt_tokens);
    if (m->completion_tokens > 0)
        add(series_of(s, F_COMPLETION, L_CONSUMER_MODEL, &b, m), 0, (uint64_t)m->completion_tokens);
    if (m->duration_s >= 0)
        observe(series_of(s, F_DURATION, L_MODEL, &b, m), F_DURATION, m->duration_s);
    if (m->overhead_s >= 0)
        observe(series_of(s, F_OVERHEAD, L_MODEL, &b, m), F_OVERHEAD, m->overhead_s);
    if (m->ttft_s >= 0)
        observe(series_of(s, F_TTFT, L_MODEL, &b, m), F_TTFT, m->ttft_s);
    if (m->itl && itl_total(m->itl))
        observe_itl(series_of(s, F_ITL, L_MODEL, &b, m), m->itl);
    if (m->cache) {
        int fam = strcmp(m->cache, "hit") == 0 ? F_CACHE_HITS : strcmp(m->cache, "miss") == 0 ? F_CACHE_MISSES
                                                                                             : F_CACHE_BYPASSES;
        add(series_of(s, fam, L_NONE, &b, m), 0, 1);
    }
    if (m->fallback_from && labels(l, sizeof l, 2, "from", m->fallback_from, "to", m->fallback_to))
        add(lookup(F_FALLBACKS, l), 0, 1);
    if (m->guard_stage && labels(l, sizeof l, 2, "stage", m->guard_stage, "rule", m->guard_rule))
        add(lookup(F_GUARD, l), 0, 1);
}

/* ---- exposition (main thread) ---- */

void sl_metrics_label_value(FILE *out, const char *v)
{
    fputc('"', out);
    for (const char *p = v ? v : ""; *p; p++) {
        if (*p == '\\' || *p == '"')
            fputc('\\', out);
        if (*p == '\n')
            fputs("\\n", out);
        else
            fputc(*p, out);
    }
    fputc('"', out);
}

void sl_metrics_family(FILE *out, const char *name, const char *type, const char *help)
{
    fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static int by_family_labels(const void *a, const void *b)
{
    const series *x = *(series *const *)a, *y = *(series *const *)b;
    if (x->fam != y->fam)
        return x->fam < y->fam ? -1 : 1;
    return strcmp(x->labels, y->labels);
}

static void write_series(FILE *out, const family *f, const char *lbl, const uint64_t *v)
{
    if (f->type == COUNTER) {
        fprintf(out, "%s%s%s%s %llu\n", f->name, *lbl ? "{" : "", lbl, *lbl ? "}" : "", (unsigned long long)v[0]);
        return;
    }
    uint64_t cum = 0;
    for (size_t i = 0; i <= f->nb; i++) {
        cum += v[i];
        fprintf(out, "%s_bucket{%s%s", f->name, lbl, *lbl ? "," : "");
        if (i < f->nb)
            fprintf(out, "le=\"%g\"} %llu\n", f->buckets[i], (unsigned long long)cum);
        else
            fprintf(out, "le=\"+Inf\"} %llu\n", (unsigned long long)cum);
    }
    const char *o = *lbl ? "{" : "", *c = *lbl ? "}" : "";
    fprintf(out, "%s_sum%s%s%s %.6f\n", f->name, o, lbl, c, (double)v[f->nb + 1] / 1e6);
    fprintf(out, "%s_count%s%s%s %llu\n", f->name, o, lbl, c, (unsigned long long)cum);
}

int sl_metrics_render(FILE *out)
{
    size_t n = 0, cap = 0;
    series **all = NULL;
    for (block *b = atomic_load_explicit(&blocks, memory_order_acquire); b; b = b->next)
        for (series *s = atomic_load_explicit(&b->head, memory_order_acquire); s; s = s->next) {
            if (n == cap) {
                size_t nc = cap ? cap * 2 : 256;
                series **na = realloc(all, nc * sizeof *na);
                if (!na) {
                    free(all);
                    return -1;
                }
                all = na;
                cap = nc;
            }
            all[n++] = s;
        }
    if (n)
        qsort(all, n, sizeof *all, by_family_labels);
    size_t i = 0;
    for (int fam = 0; fam < N_FAMILIES; fam++) {
        const family *f = &families[fam];
        sl_metrics_family(out, f->name, f->type == COUNTER ? "counter" : "histogram", f->help);
        bool any = false;
        while (i < n && all[i]->fam == fam) {
            uint64_t sum[32] = {0};
            const char *lbl = all[i]->labels;
            for (; i < n && all[i]->fam == fam && strcmp(all[i]->labels, lbl) == 0; i++)
                for (size_t k = 0; k < all[i]->nv; k++)
                    sum[k] += atomic_load_explicit(&all[i]->v[k], memory_order_relaxed);
            write_series(out, f, lbl, sum);
            any = true;
        }
        if (!any && f->type == COUNTER && (fam == F_CACHE_HITS || fam == F_CACHE_MISSES || fam == F_CACHE_BYPASSES))
            fprintf(out, "%s 0\n", f->name);
    }
    free(all);
    return 0;
}
