/* Fuzz target: the gateway's HTTP/1.1 request reader (gateway/http.c) on a real
 * connection. The input is written into one end of a socketpair whose other end the
 * server side takes over with sl_http_conn_accept; the answers are read and dropped. Every
 * request is answered at once, alternating plain and streamed (chunked) responses, so
 * pipelining, keep-alive and the error paths all run. No seam in http.c is needed. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <event2/event.h>

#include "http.h"

static struct event_base *base;
static int n_requests;

static void on_request(sl_http_conn *c, sl_http_request *req, void *arg)
{
    (void)arg;
    /* what a handler reads of every request */
    const char *ct = sl_http_header_get(req, "content-type");
    size_t sum = strlen(req->method) + strlen(req->path) + (req->query ? strlen(req->query) : 0) + (ct ? strlen(ct) : 0);
    for (size_t i = 0; i < req->n_headers; i++)
        sum += strlen(req->headers[i].name) + strlen(req->headers[i].value);
    if (req->body[req->body_len] != 0)
        abort(); /* the body is promised NUL-terminated */
    sl_http_add_header(c, "x-fuzz", "1");
    if (n_requests++ % 2) {
        sl_http_stream_begin(c, 200, "text/event-stream");
        sl_http_stream_write(c, req->body, req->body_len);
        sl_http_stream_write(c, "data: [DONE]\n\n", 14);
        sl_http_stream_end(c);
    } else {
        char msg[64];
        int n = snprintf(msg, sizeof msg, "{\"n\":%zu}", sum);
        sl_http_respond(c, 200, "application/json", msg, (size_t)n);
    }
}

static void drain_peer(int fd)
{
    char buf[65536];
    while (read(fd, buf, sizeof buf) > 0) {
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!base)
        base = event_base_new();
    static const sl_http_limits limits = {.max_body = 4096, .header_timeout_ms = 60000, .idle_timeout_ms = 60000,
                                          .body_timeout_ms = 60000, .stream_low_water = 1024};
    sl_http_server_ctx sctx = {.base = base, .limits = &limits, .on_request = on_request};
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0)
        abort();
    sl_http_conn_accept(&sctx, sv[1], NULL);
    size_t off = 0;
    bool shut = false;
    for (int round = 0; sctx.n_conns > 0; round++) {
        if (off < size) {
            ssize_t w = write(sv[0], data + off, size - off);
            if (w > 0)
                off += (size_t)w;
            else if (w < 0 && errno != EAGAIN)
                off = size; /* the server closed: the rest cannot be sent */
        } else if (!shut) {
            shutdown(sv[0], SHUT_WR);
            shut = true;
        }
        event_base_loop(base, EVLOOP_NONBLOCK);
        drain_peer(sv[0]);
        if (round == 100000) {
            fprintf(stderr, "fuzz_http: the connection never ended\n");
            abort();
        }
    }
    close(sv[0]);
    sl_http_server_ctx_release(&sctx);
    if (sctx.n_busy != 0) {
        fprintf(stderr, "fuzz_http: %d requests still counted busy with no connection left\n", sctx.n_busy);
        abort();
    }
    return 0;
}
