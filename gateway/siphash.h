/* SipHash-2-4 with a 128-bit output: a fast keyed hash (a PRF) for short strings, where
 * knowing whether two strings are the same matters but keeping either would not do. */
#ifndef SL_SIPHASH_H
#define SL_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

void sl_siphash128(const uint8_t key[16], const void *data, size_t len, uint8_t out[16]);

#endif
