/* Per-thread scanning scratch: a match-data block and a normalisation buffer that a whole
 * request's (or body's) scan uses, kept by each worker thread between requests instead of
 * made and freed each time. Taken and given back around one scan; a take while this
 * thread's is out (or before it could be made) gets a scratch of its own instead. */
#include "guard_int.h"

#include <pthread.h>
#include <stdlib.h>

#define KEEP_BYTES (64u << 10) /* a larger normalised text's buffers are not kept */

static pthread_key_t key;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static bool key_ok;

static void scratch_free(sl_guard_scratch *s)
{
    sl_guard_norm_free(&s->norm);
    pcre2_match_data_free(s->md);
    free(s);
}

static void thread_scratch_free(void *p) { scratch_free(p); }
static void make_key(void) { key_ok = pthread_key_create(&key, thread_scratch_free) == 0; }

static sl_guard_scratch *scratch_new(bool per_thread)
{
    sl_guard_scratch *s = calloc(1, sizeof *s);
    if (s && !(s->md = pcre2_match_data_create(1, NULL))) {
        free(s);
        return NULL;
    }
    if (s)
        s->per_thread = per_thread;
    return s;
}

sl_guard_scratch *sl_guard_scratch_take(void)
{
    pthread_once(&once, make_key);
    sl_guard_scratch *s = key_ok ? pthread_getspecific(key) : NULL;
    if (s && !s->busy) {
        s->busy = true;
        return s;
    }
    if (s || !key_ok) /* in use (or no thread slot): one of its own */
        return scratch_new(false);
    if (!(s = scratch_new(true)) || pthread_setspecific(key, s) != 0) {
        if (s)
            scratch_free(s);
        return scratch_new(false);
    }
    s->busy = true;
    return s;
}

void sl_guard_scratch_give(sl_guard_scratch *s)
{
    if (!s)
        return;
    if (!s->per_thread) {
        scratch_free(s);
        return;
    }
    if (s->norm.cap > KEEP_BYTES || s->norm.map_cap > KEEP_BYTES)
        sl_guard_norm_free(&s->norm);
    s->busy = false;
}
