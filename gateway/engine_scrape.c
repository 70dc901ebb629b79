#include "engine_scrape.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "metrics.h"

#define PREFIX "sluice_engine_"

/* ---- merging expositions ---- */

typedef struct family {
    char *name, *help, *type;     /* help and type: whole lines */
    char *samples;
    size_t len;
    FILE *out;
} family;

typedef struct merge {
    family *f;
    size_t n, cap;
    bool oom;
} merge;

static family *family_get(merge *m, const char *name, size_t nl)
{
    for (size_t i = 0; i < m->n; i++)
        if (strlen(m->f[i].name) == nl && strncmp(m->f[i].name, name, nl) == 0)
            return &m->f[i];
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 16;
        family *nf = realloc(m->f, cap * sizeof *nf);
        if (!nf)
            return NULL;
        m->f = nf;
        m->cap = cap;
    }
    family *f = &m->f[m->n];
    *f = (family){.name = strndup(name, nl)};
    if (!f->name || !(f->out = open_memstream(&f->samples, &f->len))) {
        free(f->name);
        return NULL;
    }
    m->n++;
    return f;
}

/* name ... of a "# HELP name ..." / "# TYPE name ..." line */
static family *family_of_comment(merge *m, const char *rest)
{
    size_t nl = strcspn(rest, " ");
    if (nl <= strlen(PREFIX) || strncmp(rest, PREFIX, strlen(PREFIX)) != 0)
        return NULL;
    family *f = family_get(m, rest, nl);
    m->oom |= !f;
    return f;
}

static void merge_body(merge *m, const char *body, const char *labels)
{
    family *cur = NULL;
    for (const char *p = body; *p;) {
        size_t ll = strcspn(p, "\n");
        char *line = strndup(p, ll);
        p += ll + (p[ll] == '\n');
        if (!line) {
            m->oom = true;
            return;
        }
        if (strncmp(line, "# HELP ", 7) == 0 || strncmp(line, "# TYPE ", 7) == 0) {
            bool is_type = line[2] == 'T';
            family *f = family_of_comment(m, line + 7);
            char **slot = f ? (is_type ? &f->type : &f->help) : NULL;
            if (slot && !*slot) {
                *slot = line;
                line = NULL;
            }
            if (is_type)
                cur = f;
        } else if (line[0] && line[0] != '#' && cur) {
            size_t nl = strcspn(line, "{ ");
            /* a sample of the family whose TYPE came last (name, or name_bucket etc.) */
            if (strncmp(line, cur->name, strlen(cur->name)) == 0) {
                if (line[nl] == '{')
                    fprintf(cur->out, "%.*s{%s%s%s\n", (int)nl, line, labels, line[nl + 1] == '}' ? "" : ",",
                            line + nl + 1);
                else
                    fprintf(cur->out, "%.*s{%s}%s\n", (int)nl, line, labels, line + nl);
            }
        }
        free(line);
    }
}

char *sl_engine_scrape_merge(const char *const *bodies, const char *const *labels, size_t n)
{
    merge m = {0};
    for (size_t i = 0; i < n; i++)
        if (bodies[i])
            merge_body(&m, bodies[i], labels[i]);
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    for (size_t i = 0; i < m.n; i++) {
        family *f = &m.f[i];
        fclose(f->out);
        if (out && f->type && f->len) {
            if (f->help)
                fprintf(out, "%s\n", f->help);
            else
                fprintf(out, "# HELP %s Engine worker metric.\n", f->name);
            fprintf(out, "%s\n%s", f->type, f->samples);
        }
        free(f->name);
        free(f->help);
        free(f->type);
        free(f->samples);
    }
    free(m.f);
    if (!out || fclose(out) != 0 || m.oom) {
        free(text);
        return NULL;
    }
    return text;
}

/* ---- fetching /metrics from each worker ---- */

typedef struct fetch {
    struct scrape *s;
    struct bufferevent *bev;
    char labels[256];
    char *text;                 /* the whole answer, once it ended */
} fetch;

typedef struct scrape {
    sl_engine_scrape_done done;
    void *arg;
    fetch *f;
    size_t n, pending;
    struct event *timer;
} scrape;

/* The body of a 200 answer, or NULL. */
static const char *body_of(const char *answer)
{
    if (!answer || strncmp(answer, "HTTP/1.", 7) != 0 || strncmp(answer + 9, "200", 3) != 0)
        return NULL;
    const char *b = strstr(answer, "\r\n\r\n");
    return b ? b + 4 : NULL;
}

static void finish(scrape *s)
{
    const char **bodies = calloc(s->n, sizeof *bodies), **labels = calloc(s->n, sizeof *labels);
    char *text = NULL;
    bool any = false;
    for (size_t i = 0; bodies && labels && i < s->n; i++) {
        bodies[i] = body_of(s->f[i].text);
        labels[i] = s->f[i].labels;
        any |= bodies[i] != NULL;
    }
    if (any)
        text = sl_engine_scrape_merge(bodies, labels, s->n);
    free(bodies);
    free(labels);
    for (size_t i = 0; i < s->n; i++) {
        if (s->f[i].bev)
            bufferevent_free(s->f[i].bev);
        free(s->f[i].text);
    }
    event_free(s->timer);
    sl_engine_scrape_done done = s->done;
    void *arg = s->arg;
    free(s->f);
    free(s);
    done(arg, text);
}

static void fetch_ended(fetch *f, bool whole)
{
    if (whole) {
        struct evbuffer *in = bufferevent_get_input(f->bev);
        size_t len = evbuffer_get_length(in);
        if ((f->text = malloc(len + 1))) {
            evbuffer_remove(in, f->text, len);
            f->text[len] = '\0';
        }
    }
    bufferevent_free(f->bev);
    f->bev = NULL;
    if (--f->s->pending == 0)
        finish(f->s);
}

static void fetch_event(struct bufferevent *bev, short what, void *arg)
{
    fetch *f = arg;
    if (what & BEV_EVENT_CONNECTED) {
        static const char req[] = "GET /metrics HTTP/1.1\r\nHost: engine\r\nConnection: close\r\n\r\n";
        bufferevent_write(bev, req, sizeof req - 1);
        return;
    }
    fetch_ended(f, (what & BEV_EVENT_EOF) != 0);
}

static void timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    finish(arg); /* with what came; the rest is dropped */
}

void sl_engine_scrape(struct event_base *base, sl_pool *pool, const sl_config *cfg, int timeout_ms,
                      sl_engine_scrape_done done, void *arg)
{
    scrape *s = calloc(1, sizeof *s);
    size_t cap = 0;
    for (size_t i = 0; pool && i < cfg->n_upstreams; i++)
        if (cfg->upstreams[i].type == SL_UPSTREAM_ENGINE) {
            json_t *procs = sl_pool_json(pool, cfg->upstreams[i].name);
            cap += json_array_size(procs);
            json_decref(procs);
        }
    if (!s || !cap || !pool || !(s->f = calloc(cap, sizeof *s->f)) ||
        !(s->timer = evtimer_new(base, timeout_cb, s))) {
        if (s)
            free(s->f);
        free(s);
        done(arg, NULL);
        return;
    }
    s->done = done;
    s->arg = arg;
    for (size_t i = 0; i < cfg->n_upstreams; i++) {
        const sl_upstream_conf *u = &cfg->upstreams[i];
        if (u->type != SL_UPSTREAM_ENGINE)
            continue;
        json_t *procs = sl_pool_json(pool, u->name), *p;
        size_t k;
        json_array_foreach(procs, k, p)
        {
            const char *state = json_string_value(json_object_get(p, "state"));
            const char *sock = json_string_value(json_object_get(p, "socket"));
            bool live = state && (strcmp(state, "ready") == 0 || strcmp(state, "draining") == 0);
            if (s->n == cap || !live || !sock)
                continue;
            fetch *f = &s->f[s->n];
            f->s = s;
            /* the upstream name goes out as a label value: escape it as the metrics do */
            char *esc = NULL;
            size_t el = 0;
            FILE *m = open_memstream(&esc, &el);
            if (!m)
                continue;
            sl_metrics_label_value(m, u->name);
            fclose(m);
            snprintf(f->labels, sizeof f->labels, "upstream=%s,worker=\"%d\"", esc ? esc : "\"\"",
                     (int)json_integer_value(json_object_get(p, "index")));
            free(esc);
            struct sockaddr_un su = {.sun_family = AF_UNIX};
            snprintf(su.sun_path, sizeof su.sun_path, "%s", sock);
            if (!(f->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE)))
                continue;
            bufferevent_setcb(f->bev, NULL, NULL, fetch_event, f);
            bufferevent_enable(f->bev, EV_READ | EV_WRITE);
            s->n++;
            s->pending++;
            if (bufferevent_socket_connect(f->bev, (struct sockaddr *)&su, sizeof su) < 0) {
                bufferevent_free(f->bev);
                f->bev = NULL;
                s->pending--;
            }
        }
        json_decref(procs);
    }
    if (s->pending == 0) {
        finish(s);
        return;
    }
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    evtimer_add(s->timer, &tv);
}
