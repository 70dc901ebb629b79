/* A fast 64-bit hash of bytes for in-memory tables (bucket and shard choice): never stored,
 * never sent, and no defence against keys chosen to collide (those tables hold keys that
 * are already hashes, or bound their chains). */
#ifndef SL_HASH64_H
#define SL_HASH64_H

#include <stddef.h>
#include <stdint.h>

uint64_t sl_hash64(const void *p, size_t n);

#endif
