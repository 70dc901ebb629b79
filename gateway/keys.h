/* API keys: generation, the keyed hash that is all the store keeps, and helpers.
 * A key is "sk-sluice-" + 32 base62 characters from RAND_bytes; the store keeps only
 * HMAC-SHA-256(server secret, key) as 64 lowercase hex characters. */
#ifndef SL_KEYS_H
#define SL_KEYS_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"

#define SL_KEY_PREFIX      "sk-sluice-"
#define SL_KEY_PREFIX_LEN  10
#define SL_KEY_RANDOM_LEN  32
#define SL_KEY_LEN         (SL_KEY_PREFIX_LEN + SL_KEY_RANDOM_LEN)
#define SL_KEY_SIZE        (SL_KEY_LEN + 1)
#define SL_KEY_HASH_SIZE   65          /* 64 hex + NUL */
#define SL_KEY_ID_SIZE     24          /* "key_" + 16 base62 + NUL, with room */
#define SL_KEY_SHOWN_LEN   12          /* the public prefix, e.g. "sk-sluice-Ab" */
#define SL_KEY_SHOWN_SIZE  (SL_KEY_SHOWN_LEN + 1)

struct sl_config;

/* n unbiased random base62 characters (rejection sampling over RAND_bytes) into out
 * (no NUL added). -1 when the CSPRNG fails. */
int sl_base62_random(char *out, size_t n, sl_err *err);

/* A new key into out (NUL-terminated). */
int sl_key_generate(char out[SL_KEY_SIZE], sl_err *err);

/* A new public key id "key_" + 16 base62 into out. */
int sl_key_id_generate(char out[SL_KEY_ID_SIZE], sl_err *err);

/* HMAC-SHA-256(secret, key) as lowercase hex into out. Pure: same inputs, same output
 * (this is `sluice key hash`). -1 only when OpenSSL fails or secret is empty. */
int sl_key_hash(const void *secret, size_t secret_len, const char *key,
                char out[SL_KEY_HASH_SIZE], sl_err *err);

/* Constant-time equality of two 64-hex-char hashes (CRYPTO_memcmp). */
bool sl_key_hash_equal(const char *a, const char *b);

/* True when key has the shape of a sluice key (prefix, length, base62). Cheap test
 * before hashing: anything else cannot be one of ours. */
bool sl_key_well_formed(const char *key);

/* The public prefix of key (first 12 characters) into out. */
void sl_key_shown_prefix(const char *key, char out[SL_KEY_SHOWN_SIZE]);

/* Keys declared by hash in the config (consumers.*.key_hashes): the consumer whose
 * declared hash equals hash, or NULL. Compares every declared hash in constant time.
 * The returned name lives as long as the config. */
const char *sl_key_declared_consumer(const struct sl_config *c, const char *hash);

#endif
