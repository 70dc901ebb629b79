/* The monotonic clock in ms, read coarsely (CLOCK_MONOTONIC_COARSE: the kernel's last tick,
 * no clock read): up to a tick (1-4 ms) behind and a fraction of a precise reading's cost.
 * For deadlines of whole ms and longer, set and checked with this one clock; durations that
 * are reported use CLOCK_MONOTONIC. */
#ifndef SL_COARSE_CLOCK_H
#define SL_COARSE_CLOCK_H

#include <time.h>

static inline long long sl_coarse_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif
