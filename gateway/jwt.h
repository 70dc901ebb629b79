/* JWT credentials (SPEC auth): HS256 with a shared secret or RS256 with a public key, per
 * consumer. The token's header must name the key's algorithm ("none" and any other are
 * refused), the signature must verify, `exp` must be present and in the future, `nbf`
 * (when present) in the past, and `sub` names the consumer. */
#ifndef SL_JWT_H
#define SL_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

typedef struct sl_jwt_key sl_jwt_key;

typedef struct sl_jwt_claims {
    char sub[128];
    int64_t exp;
    int64_t nbf;        /* 0 when absent */
    int64_t iat;        /* 0 when absent */
} sl_jwt_claims;

/* Keys: caller frees with sl_jwt_key_free. */
sl_jwt_key *sl_jwt_key_hs256(const void *secret, size_t len, sl_err *err);
sl_jwt_key *sl_jwt_key_rs256_pem(const char *pem, size_t len, sl_err *err);
sl_jwt_key *sl_jwt_key_rs256_file(const char *path, sl_err *err);
void sl_jwt_key_free(sl_jwt_key *k);

struct sl_consumer_conf;
/* The key a consumer's config names (jwt_alg with jwt_secret, or jwt_public_key): 0 with
 * *out set (caller frees), 0 with *out NULL when the consumer takes no JWT, -1 on a bad
 * key (err names the consumer). */
int sl_jwt_key_for_consumer(const struct sl_consumer_conf *c, sl_jwt_key **out, sl_err *err);

/* Cheap test before verifying: three dot-separated base64url parts, header first. */
bool sl_jwt_looks_like(const char *token);

/* Verify token against k at unix time now, allowing leeway_s of clock skew.
 * 0 and *out filled, or -1 with err saying why (expired, bad signature, ...). */
int sl_jwt_verify(const sl_jwt_key *k, const char *token, int64_t now, int64_t leeway_s,
                  sl_jwt_claims *out, sl_err *err);

/* An HS256 token for claims_json (tests and tools). Caller frees. NULL on failure. */
char *sl_jwt_sign_hs256(const void *secret, size_t len, const char *claims_json);

/* base64url without padding; caller frees. */
char *sl_b64url_encode(const void *data, size_t len);
/* Decode into a malloc'd buffer (NUL-terminated, *len without it); NULL on bad input. */
unsigned char *sl_b64url_decode(const char *s, size_t n, size_t *len);

#endif
