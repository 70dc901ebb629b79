/* rate_load — open-loop HTTP/1.1 load at a fixed rate, for latency at a given load (wrk
 * only saturates). Request i is due at start + i/rate; it waits for a free keep-alive
 * connection if none is, and its latency counts from when it was due, so a stall shows up
 * in the percentiles instead of slowing the load down (no coordinated omission).
 *
 * Lean on purpose: it shares the machine with what it measures. One epoll loop that sleeps
 * (epoll_pwait2, nanoseconds) until the next request is due, one send() a request built in
 * place, one recv() a response; no timer file descriptors and no epoll_ctl per request.
 *
 * usage: rate_load HOST PORT PATH RATE SECONDS CONNECTIONS BODY [HEADER...]
 *   BODY: the request body; each "@@N@@" in it becomes a number unique to the request.
 *   HEADER: "Name: value" lines to send (Content-Length is added).
 * Prints one line: rate=R sent=N answered=N non200=N errors=N p50= p90= p99= p999= max= (ms).
 * Exit 1 when the load could not be kept (fewer than 99% of the requests answered). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define IN_CAP 65536

typedef struct conn {
    int fd;
    double due;               /* of the request in flight; < 0 when idle */
    char *out;                /* unsent rest of the request (a short send), or NULL */
    size_t out_len, out_off;
    size_t in_len;
    char in[IN_CAP];
    struct conn *next_idle;
} conn;

static double rate, seconds, t_start;
static long sent, answered, non200, errors, scheduled;
static double *lat;
static long n_lat, cap_lat;
static conn *idle;
static double *queue; /* due times of requests waiting for a connection */
static long q_head, q_tail, q_cap;
static int ep;
static char *head;    /* request line and headers up to "Content-Length: " */
static size_t head_len;
static const char *body_tpl;
static char *req;     /* one request, built in place */
static size_t req_cap;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void drop(conn *c)
{
    errors++;
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    c->due = -1;
    free(c->out);
    c->out = NULL;
}

static size_t body_fixed, n_marks; /* BODY's bytes besides its "@@N@@" marks, and how many */

static size_t build_request(void)
{
    char num[32];
    size_t nl = (size_t)snprintf(num, sizeof num, "%ld", sent), body_len = body_fixed + n_marks * nl;
    size_t need = head_len + 32 + body_len;
    if (need > req_cap) {
        req_cap = need * 2;
        if (!(req = realloc(req, req_cap))) {
            perror("rate_load");
            exit(2);
        }
    }
    memcpy(req, head, head_len);
    size_t n = head_len + (size_t)sprintf(req + head_len, "%zu\r\n\r\n", body_len);
    for (const char *p = body_tpl, *hit;; p = hit + 5) {
        size_t k = (hit = strstr(p, "@@N@@")) ? (size_t)(hit - p) : strlen(p);
        memcpy(req + n, p, k);
        n += k;
        if (!hit)
            break;
        memcpy(req + n, num, nl);
        n += nl;
    }
    return n;
}

static void send_request(conn *c, double due)
{
    size_t n = build_request();
    c->due = due;
    sent++;
    ssize_t w = send(c->fd, req, n, MSG_NOSIGNAL);
    if (w == (ssize_t)n)
        return;
    if (w < 0 && errno != EAGAIN) {
        drop(c);
        return;
    }
    size_t done = w > 0 ? (size_t)w : 0; /* a full send buffer: the rest goes on EPOLLOUT */
    c->out = malloc(n - done);
    memcpy(c->out, req + done, n - done);
    c->out_len = n - done;
    c->out_off = 0;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void flush_out(conn *c)
{
    ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
    if (w < 0) {
        if (errno != EAGAIN)
            drop(c);
        return;
    }
    c->out_off += (size_t)w;
    if (c->out_off < c->out_len)
        return;
    free(c->out);
    c->out = NULL;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void dispatch(double due)
{
    while (idle && idle->fd < 0) /* closed while idle */
        idle = idle->next_idle;
    if (idle) {
        conn *c = idle;
        idle = c->next_idle;
        send_request(c, due);
        return;
    }
    if (q_tail - q_head == q_cap) {
        long n = q_tail - q_head, cap = q_cap ? q_cap * 2 : 1024;
        double *q = malloc((size_t)cap * sizeof *q);
        for (long i = 0; i < n; i++)
            q[i] = queue[(q_head + i) % q_cap];
        free(queue);
        queue = q;
        q_cap = cap;
        q_head = 0;
        q_tail = n;
    }
    queue[q_tail++ % q_cap] = due;
}

static FILE *dump; /* RATE_LOAD_DUMP=FILE: "due latency-ms" a request (due: CLOCK_MONOTONIC seconds, as
                     * perf record -k CLOCK_MONOTONIC stamps samples), to find when stalls happen */

static void record(double due, double ms)
{
    if (dump)
        fprintf(dump, "%.6f %.3f\n", due, ms);
    if (n_lat == cap_lat) {
        cap_lat = cap_lat ? cap_lat * 2 : 65536;
        lat = realloc(lat, (size_t)cap_lat * sizeof *lat);
    }
    lat[n_lat++] = ms;
}

/* One whole response at the start of c->in: its status, with *len its size; 0 when not
 * whole yet; -1 malformed (only Content-Length answers here: non-streaming requests). */
static int take_response(conn *c, size_t *len)
{
    char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
    if (!end)
        return c->in_len == IN_CAP ? -1 : 0;
    size_t hl = (size_t)(end - c->in) + 4;
    long length = -1;
    for (char *l = memchr(c->in, '\n', hl); l && l + 16 < end; l = memchr(l + 1, '\n', (size_t)(end - l)))
        if (strncasecmp(l + 1, "content-length:", 15) == 0)
            length = strtol(l + 16, NULL, 10);
    if (length < 0 || c->in_len < 12)
        return -1;
    if (c->in_len < hl + (size_t)length)
        return hl + (size_t)length > IN_CAP ? -1 : 0;
    *len = hl + (size_t)length;
    return atoi(c->in + 9);
}

static void on_readable(conn *c)
{
    for (;;) {
        ssize_t r = recv(c->fd, c->in + c->in_len, IN_CAP - c->in_len, 0);
        if (r == 0 || (r < 0 && errno != EAGAIN)) {
            drop(c);
            return;
        }
        if (r < 0)
            return;
        c->in_len += (size_t)r;
        int st;
        size_t len;
        while (c->due >= 0 && (st = take_response(c, &len)) != 0) {
            if (st < 0) {
                drop(c);
                return;
            }
            answered++;
            if (st != 200)
                non200++;
            record(c->due, (now_s() - c->due) * 1000.0);
            c->due = -1;
            memmove(c->in, c->in + len, c->in_len - len);
            c->in_len -= len;
            if (q_tail > q_head) {
                send_request(c, queue[q_head++ % q_cap]);
                if (c->fd < 0)
                    return;
            } else {
                c->next_idle = idle;
                idle = c;
            }
        }
        if ((size_t)r < IN_CAP) /* a short read: the socket is empty */
            return;
    }
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
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2]))};
    if (inet_pton(AF_INET, argv[1], &addr.sin_addr) != 1) {
        fprintf(stderr, "rate_load: HOST must be an IPv4 address\n");
        return 2;
    }
    rate = atof(argv[4]);
    seconds = atof(argv[5]);
    int n_conns = atoi(argv[6]);
    body_tpl = argv[7];
    body_fixed = strlen(body_tpl);
    for (const char *p = body_tpl; (p = strstr(p, "@@N@@")); p += 5, n_marks++)
        body_fixed -= 5;
    if (rate <= 0 || seconds <= 0 || n_conns <= 0)
        return 2;
    size_t hcap = strlen(argv[3]) + strlen(argv[1]) + 64;
    for (int i = 8; i < argc; i++)
        hcap += strlen(argv[i]) + 2;
    head = malloc(hcap);
    head_len = (size_t)sprintf(head, "POST %s HTTP/1.1\r\nHost: %s:%s\r\n", argv[3], argv[1], argv[2]);
    for (int i = 8; i < argc; i++)
        head_len += (size_t)sprintf(head + head_len, "%s\r\n", argv[i]);
    head_len += (size_t)sprintf(head + head_len, "Content-Length: ");

    const char *dump_path = getenv("RATE_LOAD_DUMP");
    if (dump_path && *dump_path && !(dump = fopen(dump_path, "w"))) {
        perror(dump_path);
        return 2;
    }
    ep = epoll_create1(0);
    conn *conns = calloc((size_t)n_conns, sizeof *conns);
    for (int i = 0; i < n_conns; i++) {
        conn *c = &conns[i];
        c->due = -1;
        int one = 1;
        if ((c->fd = socket(AF_INET, SOCK_STREAM, 0)) < 0 || connect(c->fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
            perror("rate_load: connect");
            return 1;
        }
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
        c->next_idle = idle;
        idle = c;
    }

    long total = (long)(seconds * rate);
    struct epoll_event evs[64];
    t_start = now_s();
    for (;;) {
        double t = now_s() - t_start;
        long due_n = t >= seconds ? total : (long)(t * rate) + 1;
        while (scheduled < due_n && scheduled < total) {
            dispatch(t_start + (double)scheduled / rate);
            scheduled++;
        }
        if (t > seconds + 5 || (scheduled == total && answered + errors >= sent && q_tail == q_head))
            break; /* stragglers get five seconds */
        double wait = scheduled < total ? (double)scheduled / rate - t : seconds + 5 - t;
        if (wait < 0)
            wait = 0;
        struct timespec ts = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
        int n = epoll_pwait2(ep, evs, 64, &ts, NULL);
        for (int i = 0; i < n; i++) {
            conn *c = evs[i].data.ptr;
            if (c->fd >= 0 && c->out && (evs[i].events & EPOLLOUT))
                flush_out(c);
            if (c->fd >= 0 && (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
                on_readable(c);
        }
    }
    if (dump)
        fclose(dump);
    qsort(lat, (size_t)n_lat, sizeof *lat, cmp_d);
    printf("rate=%.0f sent=%ld answered=%ld non200=%ld errors=%ld p50=%.3f p90=%.3f p99=%.3f p999=%.3f max=%.3f\n",
           rate, sent, answered, non200, errors, pct(50), pct(90), pct(99), pct(99.9), n_lat ? lat[n_lat - 1] : 0);
    return answered >= (long)(0.99 * seconds * rate) ? 0 : 1;
}
