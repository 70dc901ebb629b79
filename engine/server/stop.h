/* Stop strings over streamed text: text that could still turn into a stop string is held
 * back until it cannot; the stop string itself is never emitted. */
#ifndef SL_STOP_H
#define SL_STOP_H

#include <stdbool.h>
#include <stddef.h>

typedef struct sl_stop {
    char **stops;        /* owned copies */
    size_t *lens;
    int n;
    size_t max_len;
    char *held;          /* text not yet safe to emit */
    size_t n_held, cap;
    bool hit;
} sl_stop;

/* Copies the n strings (empty ones are ignored). Returns 0, or -1 on allocation failure.
 * Release with sl_stop_free. */
int sl_stop_init(sl_stop *s, const char *const *stops, int n);
void sl_stop_free(sl_stop *s);

/* Feed len bytes. Appends the bytes now safe to emit to out (capacity >= len +
 * sl_stop_max_held(s)) and returns how many. Once a stop string matched, returns the text
 * before it, sets s->hit, and every later push returns 0. Returns (size_t)-1 on
 * allocation failure. */
size_t sl_stop_push(sl_stop *s, const char *text, size_t len, char *out);
/* The end of generation: the held text can no longer become a stop string. Writes it to
 * out (capacity >= sl_stop_max_held(s)). */
size_t sl_stop_flush(sl_stop *s, char *out);
size_t sl_stop_max_held(const sl_stop *s);

#endif
