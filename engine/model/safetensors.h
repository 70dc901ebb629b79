/* One .safetensors file, mmap'd: an 8-byte little-endian header length, a JSON header
 * naming each tensor's dtype, shape and byte range, then the data. */
#ifndef SL_SAFETENSORS_H
#define SL_SAFETENSORS_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"
#include "model.h"

typedef struct sl_st_tensor {
    sl_tensor t;             /* t.name is owned by the file; t.data points into the mmap */
    char dtype_name[16];     /* as written in the header, e.g. "BF16" */
    bool dtype_ok;           /* F32, F16 or BF16 */
    const char *path;        /* the file it came from (owned by the file) */
} sl_st_tensor;

typedef struct sl_st_file {
    char *path;
    void *map;
    size_t size;
    sl_st_tensor *tensors;
    int n_tensors;
} sl_st_file;

/* mmap and parse path. Fills *f; release with sl_st_close. */
int sl_st_open(sl_st_file *f, const char *path, sl_err *err);
void sl_st_close(sl_st_file *f);

size_t sl_st_dtype_size(sl_dtype d);

#endif
