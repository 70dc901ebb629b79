#include "static_files.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>
#include <sys/stat.h>
#include <openssl/evp.h>

#include "access_log.h"

#define MAX_FILES 2048
#define MAX_TOTAL_BYTES (64LL << 20)
#define MAX_DEPTH 8
#define PREFIX "/console"

/* Scripts, styles, images and API calls from this origin only; nothing inline, no frames. */
static const char csp[] = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                          "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
                          "frame-ancestors 'none'";

typedef struct static_file {
    char *path;                 /* relative to the folder: "index.html", "assets/chat-1a2b3c.js" */
    char *body;
    size_t len;
    const char *type;
    char etag[20];              /* "16 hex digits of SHA-256" with the quotes */
    bool immutable;             /* under assets/: the name carries a content hash */
} static_file;

struct sl_static_files {
    static_file *files;         /* sorted by path */
    size_t n, cap;
    long long total;
};

static const char *content_type(const char *path)
{
    static const struct { const char *ext, *type; } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".json", "application/json"},
        {".map", "application/json"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".jpg", "image/jpeg"},
        {".webp", "image/webp"},
        {".ico", "image/x-icon"},
        {".woff2", "font/woff2"},
        {".txt", "text/plain; charset=utf-8"},
        {".wasm", "application/wasm"},
    };
    const char *dot = strrchr(path, '.');
    for (size_t i = 0; dot && i < sizeof types / sizeof types[0]; i++)
        if (strcmp(dot, types[i].ext) == 0)
            return types[i].type;
    return "application/octet-stream";
}

static int read_whole(const char *full, char **out, size_t *len, sl_err *err)
{
    int fd = open(full, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    char *buf = NULL;
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        sl_err_set(err, "cannot read %s: %s", full, strerror(errno));
        goto fail;
    }
    size_t size = (size_t)st.st_size, got = 0;
    if (!(buf = malloc(size ? size : 1))) {
        sl_err_set(err, "out of memory reading %s", full);
        goto fail;
    }
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            sl_err_set(err, "cannot read %s: %s", full, r < 0 ? strerror(errno) : "file shrank while read");
            goto fail;
        }
        got += (size_t)r;
    }
    close(fd);
    *out = buf;
    *len = size;
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    free(buf);
    return -1;
}

static int add_file(sl_static_files *f, const char *full, const char *rel, sl_err *err)
{
    if (f->n == MAX_FILES) {
        sl_err_set(err, "more than %d files: is this the built console folder (gateway/console/dist)?", MAX_FILES);
        return -1;
    }
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 32;
        static_file *nf = realloc(f->files, cap * sizeof *nf);
        if (!nf) {
            sl_err_set(err, "out of memory");
            return -1;
        }
        f->files = nf;
        f->cap = cap;
    }
    static_file *s = &f->files[f->n];
    memset(s, 0, sizeof *s);
    if (read_whole(full, &s->body, &s->len, err) < 0)
        return -1;
    if (!(s->path = strdup(rel))) {
        free(s->body);
        sl_err_set(err, "out of memory");
        return -1;
    }
    f->n++;
    f->total += (long long)s->len;
    if (f->total > MAX_TOTAL_BYTES) {
        sl_err_set(err, "the files add up to more than %lld MiB: is this the built console folder?",
                   MAX_TOTAL_BYTES >> 20);
        return -1;
    }
    s->type = content_type(rel);
    s->immutable = strncmp(rel, "assets/", 7) == 0;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!EVP_Digest(s->body, s->len, md, &mdlen, EVP_sha256(), NULL)) {
        sl_err_set(err, "cannot hash %s", full);
        return -1;
    }
    char *p = s->etag;
    *p++ = '"';
    for (int i = 0; i < 8; i++)
        p += sprintf(p, "%02x", md[i]);
    *p++ = '"';
    *p = 0;
    return 0;
}

static int walk(sl_static_files *f, const char *dir, const char *rel, int depth, sl_err *err)
{
    DIR *d = opendir(dir);
    if (!d) {
        sl_err_set(err, "cannot open the folder %s: %s", dir, strerror(errno));
        return -1;
    }
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char full[4096], sub[1024];
        struct stat st;
        if ((size_t)snprintf(full, sizeof full, "%s/%s", dir, e->d_name) >= sizeof full ||
            (size_t)snprintf(sub, sizeof sub, "%s%s%s", rel, rel[0] ? "/" : "", e->d_name) >= sizeof sub) {
            sl_err_set(err, "path too long under %s", dir);
            rc = -1;
        } else if (lstat(full, &st) < 0) {
            sl_err_set(err, "cannot stat %s: %s", full, strerror(errno));
            rc = -1;
        } else if (S_ISDIR(st.st_mode)) {
            if (depth >= MAX_DEPTH) {
                sl_err_set(err, "folders nested deeper than %d at %s", MAX_DEPTH, full);
                rc = -1;
            } else {
                rc = walk(f, full, sub, depth + 1, err);
            }
        } else if (S_ISREG(st.st_mode)) {
            rc = add_file(f, full, sub, err);
        }
    }
    closedir(d);
    return rc;
}

static int by_path(const void *a, const void *b)
{
    return strcmp(((const static_file *)a)->path, ((const static_file *)b)->path);
}

static const static_file *find(const sl_static_files *f, const char *rel)
{
    static_file key = {.path = (char *)rel};
    return f && f->n ? bsearch(&key, f->files, f->n, sizeof *f->files, by_path) : NULL;
}

sl_static_files *sl_static_load(const char *dir, bool *missing, sl_err *err)
{
    *missing = false;
    sl_static_files *f = calloc(1, sizeof *f);
    if (!f) {
        sl_err_set(err, "out of memory");
        return NULL;
    }
    struct stat st;
    int sr = stat(dir, &st);
    if (sr < 0 || !S_ISDIR(st.st_mode)) {
        *missing = sr < 0 && (errno == ENOENT || errno == ENOTDIR);
        sl_err_set(err, "%s is not a folder: build the console first (cd gateway/console && npm ci && "
                   "npx vite build)", dir);
        goto fail;
    }
    if (walk(f, dir, "", 0, err) < 0)
        goto fail;
    qsort(f->files, f->n, sizeof *f->files, by_path);
    if (!find(f, "index.html")) {
        *missing = true;
        sl_err_set(err, "%s has no index.html: build the console first (cd gateway/console && npm ci && "
                   "npx vite build)", dir);
        goto fail;
    }
    return f;
fail:
    sl_static_free(f);
    return NULL;
}

void sl_static_free(sl_static_files *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->n; i++) {
        free(f->files[i].path);
        free(f->files[i].body);
    }
    free(f->files);
    free(f);
}

size_t sl_static_count(const sl_static_files *f) { return f ? f->n : 0; }

static void security_headers(sl_http_conn *c)
{
    sl_http_add_header(c, "Content-Security-Policy", csp);
    sl_http_add_header(c, "X-Content-Type-Options", "nosniff");
    sl_http_add_header(c, "Referrer-Policy", "no-referrer");
    sl_http_add_header(c, "X-Frame-Options", "DENY");
    sl_http_add_header(c, "Cross-Origin-Opener-Policy", "same-origin");
}

/* Every answer goes through here: what was answered is noted for the access log. */
/* What was answered, for the access log. */
typedef struct sl_static_answer {
    int status;
    size_t bytes;
} sl_static_answer;

static void answer(sl_http_conn *c, sl_static_answer *out, int status, const char *type, const void *body,
                   size_t len)
{
    out->status = status;
    out->bytes = len;
    sl_http_respond(c, status, type, body, len);
}

static void respond_text(sl_http_conn *c, sl_static_answer *out, int status, const char *text)
{
    security_headers(c);
    sl_http_add_header(c, "Cache-Control", "no-store");
    answer(c, out, status, "text/plain; charset=utf-8", text, strlen(text));
}

static void redirect(sl_http_conn *c, sl_static_answer *out, const char *to)
{
    sl_http_add_header(c, "Location", to);
    respond_text(c, out, 302, to);
}

/* Only plain names reach the table: no "..", no encoded bytes, no backslashes, no empty or
 * hidden segments. (The table holds nothing outside the folder anyway; this answers 400.) */
static bool plain_path(const char *rel)
{
    if (strpbrk(rel, "%\\"))
        return false;
    for (const char *seg = rel; *seg;) {
        const char *end = strchr(seg, '/');
        size_t n = end ? (size_t)(end - seg) : strlen(seg);
        if (n == 0 || seg[0] == '.')
            return false;
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)seg[i] < 0x20 || seg[i] == 0x7f)
                return false;
        if (!end)
            break;
        seg = end + 1;
        if (!*seg)
            return false; /* trailing slash on anything but /console/ */
    }
    return true;
}

static bool etag_matches(const char *inm, const char *etag)
{
    return inm && (strcmp(inm, "*") == 0 || strstr(inm, etag));
}

static bool console_path(const char *path)
{
    size_t pl = sizeof PREFIX - 1;
    return strncmp(path, PREFIX, pl) == 0 && (path[pl] == 0 || path[pl] == '/');
}

static void serve(const sl_static_files *f, sl_static_side side, sl_http_conn *c, const sl_http_request *req,
                  sl_static_answer *out)
{
    const char *path = req->path;
    size_t pl = sizeof PREFIX - 1;
    const char *home = side == SL_STATIC_ADMIN ? PREFIX "/admin" : PREFIX "/";
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
        sl_http_add_header(c, "Allow", "GET, HEAD");
        respond_text(c, out, 405, "the console answers GET and HEAD only\n");
        return;
    }
    if (path[pl] == 0 || (side == SL_STATIC_ADMIN && strcmp(path + pl, "/") == 0)) {
        redirect(c, out, home);
        return;
    }
    const char *rel = path + pl + 1;
    if (*rel && !plain_path(rel)) {
        respond_text(c, out, 400, "bad console path\n");
        return;
    }
    char name[1024];
    const char *last = strrchr(rel, '/');
    if (!*rel)
        snprintf(name, sizeof name, "index.html");
    else if (!strchr(last ? last : rel, '.'))
        snprintf(name, sizeof name, "%s.html", rel); /* /console/admin -> admin.html */
    else
        snprintf(name, sizeof name, "%s", rel);
    /* each listener has its own page: the admin page only where the admin API is */
    const char *other = side == SL_STATIC_ADMIN ? "index.html" : "admin.html";
    const static_file *s = strcmp(name, other) == 0 ? NULL : find(f, name);
    if (!s) {
        respond_text(c, out, 404, side == SL_STATIC_CLIENT && strcmp(name, "admin.html") == 0
                                 ? "the admin page is served on the admin listener (admin.listen)\n"
                                 : "not found\n");
        return;
    }
    security_headers(c);
    sl_http_add_header(c, "Cache-Control", s->immutable ? "public, max-age=31536000, immutable" : "no-cache");
    sl_http_add_header(c, "ETag", s->etag);
    if (etag_matches(sl_http_header_get(req, "if-none-match"), s->etag))
        answer(c, out, 304, NULL, NULL, 0);
    else
        answer(c, out, 200, s->type, s->body, s->len);
}

bool sl_static_serve(const sl_static_files *f, sl_static_side side, sl_http_conn *c, const sl_http_request *req,
                     sl_access_log_writer *log)
{
    if (!f || !console_path(req->path))
        return false;
    /* the request and the connection may be gone once answered: keep what the line needs */
    char method[16], path[160], client[64];
    snprintf(method, sizeof method, "%s", req->method);
    snprintf(path, sizeof path, "%s", req->path);
    snprintf(client, sizeof client, "%s", sl_http_peer(c));
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    sl_static_answer ans = {0};
    serve(f, side, c, req, &ans);
    if (log) {
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
        sl_access_log_static(log, client, method, path, ans.status, ans.bytes, ms);
    }
    return true;
}
