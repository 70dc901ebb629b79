/* The memory store's journal file: framed records (u32 length, u32 CRC-32 of the payload,
 * payload; little-endian). A torn or corrupt tail (a crash mid-write) is detected and
 * dropped on replay. Compaction writes a snapshot to PATH.tmp, fsyncs, renames over PATH. */
#ifndef SL_STORE_JOURNAL_H
#define SL_STORE_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define SL_JOURNAL_MAX_RECORD 4096

typedef struct sl_jbuf {
    char *data;
    size_t len, cap;
} sl_jbuf;

/* Append one framed record; -1 when out of memory. */
int sl_jbuf_record(sl_jbuf *b, const char *payload, size_t len);
int sl_jbuf_append(sl_jbuf *b, const void *data, size_t len);
void sl_jbuf_free(sl_jbuf *b);

uint32_t sl_crc32(const void *data, size_t len);

typedef void (*sl_journal_fn)(void *arg, const char *payload, size_t len);

/* Call fn for each good record of path, in order. A missing file has no records.
 * *dropped: bytes after the last good record (a torn tail), ignored. */
int sl_journal_replay(const char *path, sl_journal_fn fn, void *arg, size_t *records,
                      size_t *dropped, sl_err *err);

/* Replace path with snap atomically and durably; returns an fd open for appending to the
 * new file (caller closes) or -1. */
int sl_journal_rewrite(const char *path, const sl_jbuf *snap, sl_err *err);

/* Write all of data to fd (not synced: see sl_journal_sync). */
int sl_journal_write(int fd, const void *data, size_t len, sl_err *err);
/* fdatasync fd. */
int sl_journal_sync(int fd, sl_err *err);

#endif
