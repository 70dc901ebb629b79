#include "upstream.h"
#include "upstream_int.h"
#include "coarse_clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <curl/curl.h>
#include <event2/event.h>

const char *sl_upstream_result_name(sl_upstream_result r)
{
    static const char *const names[] = {"ok", "connect_failed", "connect_timeout", "first_byte_timeout",
                                        "total_timeout", "idle_timeout", "reset", "failed"};
    return names[r];
}

bool sl_upstream_result_is_timeout(sl_upstream_result r)
{
    return r == SL_UP_CONNECT_TIMEOUT || r == SL_UP_FIRST_BYTE_TIMEOUT || r == SL_UP_TOTAL_TIMEOUT ||
           r == SL_UP_IDLE_TIMEOUT;
}

static void req_free(sl_upstream_req *r)
{
    if (r->h1) {
        sl_h1_free(r);
        r->client->active--;
    } else if (r->easy) {
        sl_upstream_client *c = r->client;
        curl_multi_remove_handle(c->multi, r->easy);
        if (c->n_spare < (int)(sizeof c->spare / sizeof c->spare[0])) {
            curl_easy_reset(r->easy);
            c->spare[c->n_spare++] = r->easy;
        } else {
            curl_easy_cleanup(r->easy);
        }
        c->active--;
    }
    curl_slist_free_all(r->headers);
    free(r->body);
    event_del(r->timer); /* it lives in r's allocation */
    free(r);
}

static sl_upstream_result classify(CURLcode rc, const sl_upstream_req *r)
{
    if (r->timeout_kind != SL_UP_OK)
        return r->timeout_kind;
    switch (rc) {
    case CURLE_OK:
        return SL_UP_OK;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
        return SL_UP_CONNECT_FAILED;
    case CURLE_OPERATION_TIMEDOUT: {
        long connect_us = 0;
        curl_off_t ct = 0;
        if (curl_easy_getinfo(r->easy, CURLINFO_CONNECT_TIME_T, &ct) == CURLE_OK)
            connect_us = (long)ct;
        return connect_us == 0 ? SL_UP_CONNECT_TIMEOUT : SL_UP_TOTAL_TIMEOUT;
    }
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
        return r->got_bytes || rc == CURLE_PARTIAL_FILE ? SL_UP_RESET : SL_UP_CONNECT_FAILED;
    default:
        return SL_UP_FAILED;
    }
}

static void check_done(sl_upstream_client *c)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(c->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        sl_upstream_req *r = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        CURLcode rc = msg->data.result;
        if (!r->cancelled) {
            sl_upstream_result res = classify(rc, r);
            char message[CURL_ERROR_SIZE + 64];
            if (res == SL_UP_OK)
                message[0] = 0;
            else if (r->timeout_kind != SL_UP_OK)
                snprintf(message, sizeof message, "%s", sl_upstream_result_name(res));
            else
                snprintf(message, sizeof message, "%s", curl_easy_strerror(rc));
            r->in_callback++;
            r->cbs.on_done(r->arg, res, message);
            r->in_callback--;
        }
        req_free(r);
    }
}

static void sock_event_cb(evutil_socket_t fd, short what, void *arg)
{
    sock_ctx *sc = arg;
    sl_upstream_client *c = sc->client;
    if (sc->idle) {
        /* a pooled connection spoke or closed: stop watching; curl checks it before reuse */
        event_del(sc->ev);
        sc->what = 0;
        return;
    }
    int flags = (what & EV_READ ? CURL_CSELECT_IN : 0) | (what & EV_WRITE ? CURL_CSELECT_OUT : 0);
    int running;
    curl_multi_socket_action(c->multi, fd, flags, &running);
    check_done(c);
}

static sock_ctx *ctx_of(sl_upstream_client *c, curl_socket_t s)
{
    return s >= 0 && (size_t)s < c->n_by_fd ? c->by_fd[s] : NULL;
}

static void watch(sock_ctx *sc, short flags)
{
    if (sc->what == flags)
        return; /* no change: no epoll_ctl */
    if (sc->what)
        event_del(sc->ev);
    event_assign(sc->ev, sc->client->base, sc->fd, flags, sock_event_cb, sc);
    if (flags)
        event_add(sc->ev, NULL);
    sc->what = flags;
}

static int socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    (void)easy;
    sl_upstream_client *c = userp;
    sock_ctx *sc = socketp ? socketp : ctx_of(c, s);
    if (what == CURL_POLL_REMOVE) {
        if (sc) {
            sc->idle = true;
            watch(sc, EV_READ | EV_PERSIST);
        }
        return 0;
    }
    short flags = EV_PERSIST | (what & CURL_POLL_IN ? EV_READ : 0) | (what & CURL_POLL_OUT ? EV_WRITE : 0);
    if (!sc) {
        if ((size_t)s >= c->n_by_fd) {
            size_t n = c->n_by_fd ? c->n_by_fd : 64;
            while (n <= (size_t)s)
                n *= 2;
            sock_ctx **grown = realloc(c->by_fd, n * sizeof *grown);
            if (!grown)
                return -1;
            memset(grown + c->n_by_fd, 0, (n - c->n_by_fd) * sizeof *grown);
            c->by_fd = grown;
            c->n_by_fd = n;
        }
        sc = calloc(1, sizeof *sc);
        if (!sc || !(sc->ev = event_new(c->base, s, 0, sock_event_cb, NULL))) {
            free(sc);
            return -1;
        }
        sc->client = c;
        sc->fd = s;
        c->by_fd[s] = sc;
    }
    sc->idle = false;
    curl_multi_assign(c->multi, s, sc);
    watch(sc, flags);
    return 0;
}

/* curl closes a socket: forget its context first. */
static int close_cb(void *arg, curl_socket_t s)
{
    sl_upstream_client *c = arg;
    sock_ctx *sc = ctx_of(c, s);
    if (sc) {
        event_free(sc->ev);
        free(sc);
        c->by_fd[s] = NULL;
    }
    return close(s);
}

static void multi_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sl_upstream_client *c = arg;
    int running;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(c);
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    sl_upstream_client *c = userp;
    if (timeout_ms < 0) {
        evtimer_del(c->timer);
        return 0;
    }
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    evtimer_add(c->timer, &tv);
    return 0;
}

sl_upstream_client *sl_upstream_client_new(struct event_base *base)
{
    sl_upstream_client *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->base = base;
    c->multi = curl_multi_init();
    c->timer = evtimer_new(base, multi_timer_cb, c);
    if (!c->multi || !c->timer) {
        sl_upstream_client_free(c);
        return NULL;
    }
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, 1024L);
    return c;
}

void sl_upstream_client_free(sl_upstream_client *c)
{
    if (!c)
        return;
    sl_h1_client_free(c);
    for (int i = 0; i < c->n_spare; i++)
        curl_easy_cleanup(c->spare[i]);
    if (c->multi)
        curl_multi_cleanup(c->multi);
    for (size_t i = 0; i < c->n_by_fd; i++)
        if (c->by_fd[i]) {
            event_free(c->by_fd[i]->ev);
            free(c->by_fd[i]);
        }
    free(c->by_fd);
    if (c->timer)
        event_free(c->timer);
    free(c);
}

int sl_upstream_client_active(const sl_upstream_client *c) { return c->active; }

/* The timer is set for the deadline at, or for a second from now when that is sooner: the
 * deadlines a request sets next (first byte, then stream idle) are then rarely earlier, and
 * need no timer change; a long request looks at its deadlines once a second. */
#define ARM_AHEAD_MS 1000

static void arm_at(sl_upstream_req *r, long long at, long long now)
{
    if (at > now + ARM_AHEAD_MS)
        at = now + ARM_AHEAD_MS;
    long long ms = at > now ? at - now : 0;
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    evtimer_add(r->timer, &tv);
    r->armed = at;
}

void sl_up_deadline(sl_upstream_req *r, long long *at, long long ms)
{
    long long now = sl_coarse_ms();
    *at = now + ms;
    if (!r->armed || r->armed > *at)
        arm_at(r, *at, now);
}

static bool passed(long long at, long long now) { return at && at <= now; }

/* The earliest deadline, passed, ends the request (removing a curl handle makes no DONE
 * message: finished here); not yet passed (it was moved later): wait for it. */
static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sl_upstream_req *r = arg;
    long long now = sl_coarse_ms();
    r->armed = 0;
    if (passed(r->idle_at, now) && r->paused)
        r->idle_at = 0; /* waiting on our client, not on the upstream: set again on resume */
    /* the earliest of them, as separate timers would have fired */
    long long *all[] = {&r->connect_at, &r->first_byte_at, &r->idle_at, &r->total_at}, *first = NULL;
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (*all[i] && (!first || *all[i] < *first))
            first = all[i];
    if (!first)
        return;
    if (!passed(*first, now)) {
        arm_at(r, *first, now);
    } else if (first == &r->connect_at) {
        sl_up_finish(r, SL_UP_CONNECT_TIMEOUT, "connect_timeout");
    } else if (first == &r->first_byte_at) {
        r->timeout_kind = SL_UP_FIRST_BYTE_TIMEOUT;
        sl_up_finish(r, SL_UP_FIRST_BYTE_TIMEOUT, "no response from upstream in time");
    } else if (first == &r->idle_at) {
        r->timeout_kind = SL_UP_IDLE_TIMEOUT;
        sl_up_finish(r, SL_UP_IDLE_TIMEOUT, "upstream stream stalled");
    } else {
        r->timeout_kind = SL_UP_TOTAL_TIMEOUT;
        sl_up_finish(r, SL_UP_TOTAL_TIMEOUT, "total_timeout");
    }
}

void sl_up_headers(sl_upstream_req *r)
{
    r->headers_done = true;
    if (r->idle_ms > 0)
        sl_up_deadline(r, &r->idle_at, r->idle_ms);
    r->in_callback++;
    r->cbs.on_headers(r->arg, r->status, r->content_type[0] ? r->content_type : NULL,
                      r->retry_after[0] ? r->retry_after : NULL);
    r->in_callback--;
}

void sl_up_data(sl_upstream_req *r, const char *data, size_t len)
{
    if (r->idle_ms > 0)
        sl_up_deadline(r, &r->idle_at, r->idle_ms);
    r->in_callback++;
    r->cbs.on_data(r->arg, data, len);
    r->in_callback--;
}

void sl_up_finish(sl_upstream_req *r, sl_upstream_result res, const char *message)
{
    if (!r->cancelled) {
        r->in_callback++;
        r->cbs.on_done(r->arg, res, message);
        r->in_callback--;
    }
    req_free(r);
}

static size_t header_cb(char *buf, size_t size, size_t n, void *arg)
{
    sl_upstream_req *r = arg;
    size_t len = size * n;
    if (r->cancelled)
        return 0;
    if (!r->got_bytes) {
        r->got_bytes = true;
        r->first_byte_at = 0;
    }
    if (len >= 5 && strncmp(buf, "HTTP/", 5) == 0) {
        /* a new status line (also after 100 Continue): start over */
        r->content_type[0] = r->retry_after[0] = 0;
        return len;
    }
    if (len <= 2) { /* end of a header block */
        long status = 0;
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
        if (status >= 200 && !r->headers_done) {
            r->status = (int)status;
            sl_up_headers(r);
        }
        return r->cancelled ? 0 : len;
    }
    char *colon = memchr(buf, ':', len);
    if (!colon)
        return len;
    size_t nl = (size_t)(colon - buf);
    const char *v = colon + 1;
    size_t vl = len - nl - 1;
    while (vl && (*v == ' ' || *v == '\t')) {
        v++;
        vl--;
    }
    while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
        vl--;
    char *dst = NULL;
    size_t cap = 0;
    if (nl == 12 && strncasecmp(buf, "content-type", 12) == 0) {
        dst = r->content_type;
        cap = sizeof r->content_type;
    } else if (nl == 11 && strncasecmp(buf, "retry-after", 11) == 0) {
        dst = r->retry_after;
        cap = sizeof r->retry_after;
    }
    if (dst) {
        if (vl >= cap)
            vl = cap - 1;
        memcpy(dst, v, vl);
        dst[vl] = 0;
    }
    return len;
}

static size_t write_cb(char *data, size_t size, size_t n, void *arg)
{
    sl_upstream_req *r = arg;
    if (r->cancelled)
        return 0;
    if (r->want_pause) {
        r->paused = true;
        return CURL_WRITEFUNC_PAUSE;
    }
    sl_up_data(r, data, size * n);
    return r->cancelled ? 0 : size * n;
}

sl_upstream_req *sl_upstream_post(sl_upstream_client *c, const sl_upstream_target *t, const char *path,
                                  const sl_upstream_part *parts, int n, const sl_upstream_cbs *cbs, void *arg)
{
    size_t len = 0;
    for (int i = 0; i < n; i++)
        len += parts[i].len;
    const sl_upstream_conf *uc = t->conf;
    /* the timer's event in the same allocation (libevent says how big it is) */
    size_t ev_at = (sizeof(sl_upstream_req) + 15) & ~(size_t)15;
    sl_upstream_req *r = calloc(1, ev_at + event_get_struct_event_size());
    if (!r)
        return NULL;
    r->client = c;
    r->cbs = *cbs;
    r->arg = arg;
    r->timer = (struct event *)((char *)r + ev_at);
    evtimer_assign(r->timer, c->base, deadline_cb, r);
    long long connect_ms = uc ? uc->connect_timeout_ms : 10000;
    long long total_ms = uc ? uc->total_timeout_ms : 600000;
    long long first_ms = uc ? uc->first_byte_timeout_ms : 120000;
    r->idle_ms = uc ? uc->stream_idle_timeout_ms : 60000;
    if (sl_h1_start(r, t, path, parts, n, len) == 0) { /* plain http to an address: our own client */
        c->active++;
        if (first_ms > 0)
            sl_up_deadline(r, &r->first_byte_at, first_ms);
        return r;
    }
    r->body = malloc(len + 1);
    r->easy = c->n_spare ? c->spare[--c->n_spare] : curl_easy_init();
    if (!r->body || !r->easy) {
        if (r->easy) {
            curl_easy_cleanup(r->easy);
            r->easy = NULL;
        }
        req_free(r);
        return NULL;
    }
    c->active++;
    size_t at = 0;
    for (int i = 0; i < n; i++) {
        memcpy(r->body + at, parts[i].s, parts[i].len);
        at += parts[i].len;
    }
    r->body[len] = 0;

    char url[2048];
    snprintf(url, sizeof url, "%s%s", t->base_url, path);
    CURL *e = r->easy;
    curl_easy_setopt(e, CURLOPT_URL, url);
    if (t->unix_socket)
        curl_easy_setopt(e, CURLOPT_UNIX_SOCKET_PATH, t->unix_socket);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_PRIVATE, r);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, close_cb);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, c);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, NULL);
    curl_easy_setopt(e, CURLOPT_PROXY, ""); /* no proxy from the environment (and no getenv per request) */
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)connect_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)total_ms);
    if (uc && uc->pool_size > 0)
        curl_easy_setopt(e, CURLOPT_MAXCONNECTS, (long)uc->pool_size);

    struct curl_slist *h = NULL;
    h = curl_slist_append(h, "Content-Type: application/json");
    h = curl_slist_append(h, "Expect:");
    h = curl_slist_append(h, "User-Agent: sluice/0.1");
    if (uc && uc->api_key) {
        char auth[1024];
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", uc->api_key);
        h = curl_slist_append(h, auth);
    }
    for (size_t i = 0; uc && i < uc->n_headers; i++) {
        char line[2048];
        snprintf(line, sizeof line, "%s: %s", uc->headers[i].name, uc->headers[i].value);
        h = curl_slist_append(h, line);
    }
    r->headers = h;
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);

    if (first_ms > 0)
        sl_up_deadline(r, &r->first_byte_at, first_ms);
    if (curl_multi_add_handle(c->multi, e) != CURLM_OK) {
        req_free(r);
        return NULL;
    }
    return r;
}

void sl_upstream_pause(sl_upstream_req *r) { r->want_pause = true; }

void sl_upstream_resume(sl_upstream_req *r)
{
    if (r->h1) {
        sl_h1_resume(r);
        return;
    }
    r->want_pause = false;
    if (r->paused && !r->cancelled) {
        r->paused = false;
        if (r->idle_ms > 0)
            sl_up_deadline(r, &r->idle_at, r->idle_ms);
        curl_easy_pause(r->easy, CURLPAUSE_CONT);
    }
}

void sl_upstream_cancel(sl_upstream_req *r)
{
    if (r->in_callback) {
        /* curl (or upstream_h1.c) is inside this transfer: fail it from the callbacks,
         * free at DONE */
        r->cancelled = true;
        r->first_byte_at = r->idle_at = 0;
        if (r->paused && !r->h1) {
            r->paused = false;
            curl_easy_pause(r->easy, CURLPAUSE_CONT);
        }
        return;
    }
    req_free(r);
}
