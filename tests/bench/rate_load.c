/* rate_load — open-loop HTTP/1.1 load at a fixed rate, for latency at a given load (wrk
 * only saturates). Request i is due at start + i/rate; it waits for a free keep-alive
 * connection if none is, and its latency counts from when it was due, so a stall shows up
 * in the percentiles instead of slowing the load down (no coordinated omission).
 *
 * usage: rate_load HOST PORT PATH RATE SECONDS CONNECTIONS BODY [HEADER...]
 *   BODY: the request body; each "@@N@@" in it becomes a number unique to the request.
 *   HEADER: "Name: value" lines to send (Content-Length is added).
 * Prints one line: rate=R sent=N answered=N non200=N errors=N p50= p90= p99= p999= max= (ms).
 * Exit 1 when the load could not be kept (fewer than 99% of the requests answered). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

typedef struct conn {
    struct bufferevent *bev;
    double due;           /* of the request in flight; < 0 when idle */
    struct conn *next_idle;
} conn;

static struct event_base *base;
static struct sockaddr_in addr;
static const char *path, *body_tpl, *host_header;
static char **headers;
static int n_headers;
static double rate, seconds, t_start;
static long sent, answered, non200, errors, scheduled;
static double *lat;
static long n_lat, cap_lat;
static conn *idle;
static double *queue; /* due times of requests waiting for a connection */
static long q_head, q_tail, q_cap;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void send_request(conn *c, double due)
{
    char num[32];
    snprintf(num, sizeof num, "%ld", sent);
    struct evbuffer *body = evbuffer_new();
    for (const char *p = body_tpl, *hit; *p; p = hit + 5) {
        if (!(hit = strstr(p, "@@N@@"))) {
            evbuffer_add(body, p, strlen(p));
            break;
        }
        evbuffer_add(body, p, (size_t)(hit - p));
        evbuffer_add(body, num, strlen(num));
    }
    struct evbuffer *out = bufferevent_get_output(c->bev);
    evbuffer_add_printf(out, "POST %s HTTP/1.1\r\nHost: %s\r\n", path, host_header);
    for (int i = 0; i < n_headers; i++)
        evbuffer_add_printf(out, "%s\r\n", headers[i]);
    evbuffer_add_printf(out, "Content-Length: %zu\r\n\r\n", evbuffer_get_length(body));
    evbuffer_add_buffer(out, body);
    evbuffer_free(body);
    c->due = due;
    sent++;
}

static void dispatch(double due)
{
    if (idle) {
        conn *c = idle;
        idle = c->next_idle;
        send_request(c, due);
        return;
    }
    if (q_tail - q_head == q_cap) {
        long n = q_tail - q_head;
        double *q = malloc((size_t)(q_cap ? q_cap * 2 : 1024) * sizeof *q);
        for (long i = 0; i < n; i++)
            q[i] = queue[(q_head + i) % (q_cap ? q_cap : 1)];
        free(queue);
        queue = q;
        q_cap = q_cap ? q_cap * 2 : 1024;
        q_head = 0;
        q_tail = n;
    }
    queue[q_tail++ % q_cap] = due;
}

static void record(double ms)
{
    if (n_lat == cap_lat) {
        cap_lat = cap_lat ? cap_lat * 2 : 65536;
        lat = realloc(lat, (size_t)cap_lat * sizeof *lat);
    }
    lat[n_lat++] = ms;
}

/* One whole response in the input: its status; 0 when not whole yet; -1 malformed. */
static int take_response(struct evbuffer *in)
{
    struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
    if (end.pos < 0)
        return 0;
    size_t head_len = (size_t)end.pos + 4;
    char *head = malloc(head_len + 1);
    evbuffer_copyout(in, head, head_len);
    head[head_len] = 0;
    int status = atoi(head + 9);
    long length = -1;
    for (char *l = strstr(head, "\r\n"); l && l[2]; l = strstr(l + 2, "\r\n"))
        if (strncasecmp(l + 2, "content-length:", 15) == 0)
            length = atol(l + 17);
    free(head);
    if (length < 0)
        return -1; /* only Content-Length answers here (non-streaming requests) */
    if (evbuffer_get_length(in) < head_len + (size_t)length)
        return 0;
    evbuffer_drain(in, head_len + (size_t)length);
    return status;
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    conn *c = arg;
    int st;
    while (c->due >= 0 && (st = take_response(bufferevent_get_input(bev))) != 0) {
        if (st < 0) {
            errors++;
            bufferevent_free(bev); /* this connection is done for */
            c->bev = NULL;
            return;
        }
        answered++;
        if (st != 200)
            non200++;
        record((now_s() - c->due) * 1000.0);
        c->due = -1;
        if (q_tail > q_head) {
            send_request(c, queue[q_head++ % q_cap]);
        } else {
            c->next_idle = idle;
            idle = c;
        }
    }
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    conn *c = arg;
    if (what & BEV_EVENT_CONNECTED) {
        int one = 1;
        setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        c->next_idle = idle;
        idle = c;
        return;
    }
    if (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF)) {
        errors++;
        bufferevent_free(bev);
        c->bev = NULL;
    }
}

static struct event *timer;

/* Sends what is due, then sleeps until the next request is due (not a fixed period: a
 * periodic tick sends in bursts and adds up to a period to every latency). */
static void tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    double t = now_s() - t_start;
    long due_n = t >= seconds ? (long)(seconds * rate) : (long)(t * rate) + 1;
    while (scheduled < due_n) {
        dispatch(t_start + (double)scheduled / rate);
        scheduled++;
    }
    if (t > seconds + 5) { /* stragglers get five seconds */
        event_base_loopbreak(base);
        return;
    }
    double wait = scheduled < (long)(seconds * rate) ? (double)scheduled / rate - t : 0.05;
    if (wait < 0)
        wait = 0;
    struct timeval tv = {(time_t)wait, (suseconds_t)((wait - (double)(time_t)wait) * 1e6)};
    evtimer_add(timer, &tv);
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double p) { return n_lat ? lat[(long)(p / 100.0 * (double)(n_lat - 1))] : 0; }

int main(int argc, char **argv)
{
    if (argc < 8) {
        fprintf(stderr, "usage: rate_load HOST PORT PATH RATE SECONDS CONNECTIONS BODY [HEADER...]\n");
        return 2;
    }
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)atoi(argv[2]));
    if (inet_pton(AF_INET, argv[1], &addr.sin_addr) != 1) {
        fprintf(stderr, "rate_load: HOST must be an IPv4 address\n");
        return 2;
    }
    char hh[300];
    snprintf(hh, sizeof hh, "%s:%s", argv[1], argv[2]);
    host_header = hh;
    path = argv[3];
    rate = atof(argv[4]);
    seconds = atof(argv[5]);
    int n_conns = atoi(argv[6]);
    body_tpl = argv[7];
    headers = argv + 8;
    n_headers = argc - 8;
    if (rate <= 0 || seconds <= 0 || n_conns <= 0)
        return 2;
    prctl(PR_SET_TIMERSLACK, 1UL); /* wake when a request is due, not up to 50 µs later */
    /* timerfd-backed timers: epoll's own millisecond timeouts pace the load in bursts */
    struct event_config *cfg = event_config_new();
    event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER);
    base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    conn *conns = calloc((size_t)n_conns, sizeof *conns);
    for (int i = 0; i < n_conns; i++) {
        conns[i].due = -1;
        conns[i].bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
        bufferevent_setcb(conns[i].bev, read_cb, NULL, event_cb, &conns[i]);
        bufferevent_enable(conns[i].bev, EV_READ | EV_WRITE);
        if (bufferevent_socket_connect(conns[i].bev, (struct sockaddr *)&addr, sizeof addr) < 0) {
            fprintf(stderr, "rate_load: connect failed\n");
            return 1;
        }
    }
    /* let the connections open before the clock starts */
    struct timeval settle = {0, 200 * 1000};
    event_base_loopexit(base, &settle);
    event_base_dispatch(base);
    t_start = now_s();
    timer = evtimer_new(base, tick, NULL);
    tick(-1, 0, NULL);
    event_base_dispatch(base);
    qsort(lat, (size_t)n_lat, sizeof *lat, cmp_d);
    printf("rate=%.0f sent=%ld answered=%ld non200=%ld errors=%ld p50=%.3f p90=%.3f p99=%.3f p999=%.3f max=%.3f\n",
           rate, sent, answered, non200, errors, pct(50), pct(90), pct(99), pct(99.9), n_lat ? lat[n_lat - 1] : 0);
    return answered >= (long)(0.99 * seconds * rate) ? 0 : 1;
}
