#include "store_journal.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

uint32_t sl_crc32(const void *data, size_t len)
{
    static uint32_t table[256];
    static int ready;
    if (!__atomic_load_n(&ready, __ATOMIC_ACQUIRE)) {
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++)
                c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
        __atomic_store_n(&ready, 1, __ATOMIC_RELEASE);
    }
    const unsigned char *p = data;
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < len; i++)
        c = table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

int sl_jbuf_append(sl_jbuf *b, const void *data, size_t len)
{
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + len)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d)
            return -1;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return 0;
}

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int sl_jbuf_record(sl_jbuf *b, const char *payload, size_t len)
{
    unsigned char head[8];
    put32(head, (uint32_t)len);
    put32(head + 4, sl_crc32(payload, len));
    size_t old = b->len;
    if (sl_jbuf_append(b, head, 8) < 0 || sl_jbuf_append(b, payload, len) < 0) {
        b->len = old;
        return -1;
    }
    return 0;
}

void sl_jbuf_free(sl_jbuf *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

int sl_journal_replay(const char *path, sl_journal_fn fn, void *arg, size_t *records,
                      size_t *dropped, sl_err *err)
{
    *records = 0;
    *dropped = 0;
    unsigned char *data = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT)
            return 0;
        sl_err_set(err, "store journal %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fileno(f), &st) < 0 || !(data = malloc((size_t)st.st_size + 1)) ||
        fread(data, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
        sl_err_set(err, "store journal %s: cannot read: %s", path, strerror(errno ? errno : EIO));
        goto fail;
    }
    size_t size = (size_t)st.st_size, off = 0;
    while (off + 8 <= size) {
        uint32_t len = get32(data + off), crc = get32(data + off + 4);
        if (len > SL_JOURNAL_MAX_RECORD || off + 8 + len > size ||
            sl_crc32(data + off + 8, len) != crc)
            break;
        fn(arg, (const char *)data + off + 8, len);
        (*records)++;
        off += 8 + len;
    }
    *dropped = size - off;
    free(data);
    fclose(f);
    return 0;
fail:
    free(data);
    fclose(f);
    return -1;
}

static int fsync_dir(const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return -1;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
    free(copy);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int sl_journal_rewrite(const char *path, const sl_jbuf *snap, sl_err *err)
{
    char tmp[4096];
    int fd = -1;
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        sl_err_set(err, "store journal path too long: %s", path);
        return -1;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        sl_err_set(err, "store journal %s: %s (does its folder exist and is it writable?)",
                   tmp, strerror(errno));
        goto fail;
    }
    if (sl_journal_write(fd, snap->data, snap->len, err) < 0 || sl_journal_sync(fd, err) < 0)
        goto fail;
    close(fd);
    fd = -1;
    if (rename(tmp, path) < 0) {
        sl_err_set(err, "store journal: rename %s to %s: %s", tmp, path, strerror(errno));
        goto fail;
    }
    fsync_dir(path);
    fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0) {
        sl_err_set(err, "store journal %s: %s", path, strerror(errno));
        goto fail;
    }
    return fd;
fail:
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    return -1;
}

int sl_journal_write(int fd, const void *data, size_t len, sl_err *err)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            sl_err_set(err, "store journal write: %s", strerror(errno));
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int sl_journal_sync(int fd, sl_err *err)
{
    if (fdatasync(fd) < 0) {
        sl_err_set(err, "store journal fsync: %s", strerror(errno));
        return -1;
    }
    return 0;
}
