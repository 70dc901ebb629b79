#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

size_t sl_st_dtype_size(sl_dtype d)
{
    return d == SL_DTYPE_F32 ? 4 : 2;
}

static bool parse_dtype(const char *s, sl_dtype *out)
{
    if (!strcmp(s, "F32"))
        *out = SL_DTYPE_F32;
    else if (!strcmp(s, "F16"))
        *out = SL_DTYPE_F16;
    else if (!strcmp(s, "BF16"))
        *out = SL_DTYPE_BF16;
    else
        return false;
    return true;
}

static int parse_tensor(sl_st_file *f, sl_st_tensor *st, const char *name, json_t *desc,
                        const uint8_t *data, size_t data_len, sl_err *err)
{
    json_t *dtype = json_object_get(desc, "dtype");
    json_t *shape = json_object_get(desc, "shape");
    json_t *offs = json_object_get(desc, "data_offsets");
    if (!json_is_string(dtype) || !json_is_array(shape) || json_array_size(offs) != 2) {
        sl_err_set(err, "%s: tensor %s: header entry lacks dtype, shape or data_offsets",
                   f->path, name);
        return -1;
    }
    memset(st, 0, sizeof *st);
    st->path = f->path;
    st->t.name = strdup(name);
    if (!st->t.name) {
        sl_err_set(err, "out of memory");
        return -1;
    }
    snprintf(st->dtype_name, sizeof st->dtype_name, "%s", json_string_value(dtype));
    st->dtype_ok = parse_dtype(st->dtype_name, &st->t.dtype);
    size_t ndim = json_array_size(shape);
    if (ndim > 4) {
        sl_err_set(err, "%s: tensor %s has %zu dimensions; at most 4 are supported", f->path,
                   name, ndim);
        return -1;
    }
    st->t.ndim = (int)ndim;
    int64_t count = 1;
    for (size_t i = 0; i < ndim; i++) {
        json_t *d = json_array_get(shape, i);
        if (!json_is_integer(d) || json_integer_value(d) < 0) {
            sl_err_set(err, "%s: tensor %s has a bad shape", f->path, name);
            return -1;
        }
        st->t.shape[i] = json_integer_value(d);
        count *= st->t.shape[i];
    }
    json_t *b = json_array_get(offs, 0), *e = json_array_get(offs, 1);
    if (!json_is_integer(b) || !json_is_integer(e)) {
        sl_err_set(err, "%s: tensor %s has bad data_offsets", f->path, name);
        return -1;
    }
    json_int_t begin = json_integer_value(b), end = json_integer_value(e);
    if (begin < 0 || end < begin || (size_t)end > data_len) {
        sl_err_set(err, "%s: tensor %s: data_offsets [%lld, %lld] lie outside the file's "
                   "%zu data bytes (truncated file?)", f->path, name, (long long)begin,
                   (long long)end, data_len);
        return -1;
    }
    st->t.data = data + begin;
    st->t.nbytes = (size_t)(end - begin);
    if (st->dtype_ok && st->t.nbytes != (size_t)count * sl_st_dtype_size(st->t.dtype)) {
        sl_err_set(err, "%s: tensor %s: %zu data bytes do not match its shape and dtype %s",
                   f->path, name, st->t.nbytes, st->dtype_name);
        return -1;
    }
    return 0;
}

int sl_st_open(sl_st_file *f, const char *path, sl_err *err)
{
    json_t *hdr = NULL;
    int fd = -1;
    memset(f, 0, sizeof *f);
    f->path = strdup(path);
    if (!f->path) {
        sl_err_set(err, "out of memory");
        goto fail;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) < 0) {
        sl_err_set(err, "%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    if (sb.st_size < 8) {
        sl_err_set(err, "%s: not a safetensors file (%lld bytes, too short for a header)",
                   path, (long long)sb.st_size);
        goto fail;
    }
    f->size = (size_t)sb.st_size;
    f->map = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (f->map == MAP_FAILED) {
        f->map = NULL;
        sl_err_set(err, "%s: cannot mmap: %s", path, strerror(errno));
        goto fail;
    }
    close(fd);
    fd = -1;
    const uint8_t *p = f->map;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | p[i];
    if (hlen > f->size - 8) {
        sl_err_set(err, "%s: not a safetensors file (header length %llu exceeds the file size)",
                   path, (unsigned long long)hlen);
        goto fail;
    }
    json_error_t jerr;
    hdr = json_loadb((const char *)p + 8, hlen, JSON_DISABLE_EOF_CHECK, &jerr);
    if (!json_is_object(hdr)) {
        sl_err_set(err, "%s: not a safetensors file (header is not a JSON object: %s)", path,
                   hdr ? "wrong type" : jerr.text);
        goto fail;
    }
    f->tensors = calloc(json_object_size(hdr) + 1, sizeof *f->tensors);
    if (!f->tensors) {
        sl_err_set(err, "out of memory");
        goto fail;
    }
    const char *key;
    json_t *val;
    json_object_foreach(hdr, key, val) {
        if (!strcmp(key, "__metadata__"))
            continue;
        if (parse_tensor(f, &f->tensors[f->n_tensors], key, val, p + 8 + hlen,
                         f->size - 8 - hlen, err) < 0) {
            f->n_tensors++; /* so that close frees its name */
            goto fail;
        }
        f->n_tensors++;
    }
    json_decref(hdr);
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    json_decref(hdr);
    sl_st_close(f);
    return -1;
}

void sl_st_close(sl_st_file *f)
{
    for (int i = 0; i < f->n_tensors; i++)
        free((char *)f->tensors[i].t.name);
    free(f->tensors);
    if (f->map)
        munmap(f->map, f->size);
    free(f->path);
    memset(f, 0, sizeof *f);
}
