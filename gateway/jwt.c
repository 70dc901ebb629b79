#include "jwt.h"

#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

typedef enum { JWT_HS256, JWT_RS256 } jwt_alg;

struct sl_jwt_key {
    jwt_alg alg;
    unsigned char *secret;
    size_t len;
    EVP_PKEY *pub;
};

static const char b64u[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

char *sl_b64url_encode(const void *data, size_t len)
{
    const unsigned char *p = data;
    char *out = malloc(len * 4 / 3 + 4), *o = out;
    if (!out)
        return NULL;
    size_t i = 0;
    for (; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        *o++ = b64u[v >> 18];
        *o++ = b64u[(v >> 12) & 63];
        *o++ = b64u[(v >> 6) & 63];
        *o++ = b64u[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < len ? (uint32_t)p[i + 1] << 8 : 0);
        *o++ = b64u[v >> 18];
        *o++ = b64u[(v >> 12) & 63];
        if (i + 1 < len)
            *o++ = b64u[(v >> 6) & 63];
    }
    *o = '\0';
    return out;
}

unsigned char *sl_b64url_decode(const char *s, size_t n, size_t *len)
{
    if (n % 4 == 1)
        return NULL;
    unsigned char *out = malloc(n * 3 / 4 + 3);
    if (!out)
        return NULL;
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        const char *c = memchr(b64u, s[i], 64);
        if (!c || !s[i]) {
            free(out);
            return NULL;
        }
        acc = acc << 6 | (uint32_t)(c - b64u);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    out[o] = '\0';
    *len = o;
    return out;
}

sl_jwt_key *sl_jwt_key_hs256(const void *secret, size_t len, sl_err *err)
{
    sl_jwt_key *k = calloc(1, sizeof *k);
    if (!k || !len || !(k->secret = malloc(len))) {
        sl_err_set(err, len ? "out of memory" : "JWT HS256 secret is empty");
        free(k);
        return NULL;
    }
    memcpy(k->secret, secret, len);
    k->len = len;
    k->alg = JWT_HS256;
    return k;
}

sl_jwt_key *sl_jwt_key_rs256_pem(const char *pem, size_t len, sl_err *err)
{
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    EVP_PKEY *pub = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    if (!pub || EVP_PKEY_base_id(pub) != EVP_PKEY_RSA) {
        sl_err_set(err, "JWT RS256 key: expected a PEM RSA public key (-----BEGIN PUBLIC KEY-----)");
        EVP_PKEY_free(pub);
        return NULL;
    }
    sl_jwt_key *k = calloc(1, sizeof *k);
    if (!k) {
        EVP_PKEY_free(pub);
        sl_err_set(err, "out of memory");
        return NULL;
    }
    k->alg = JWT_RS256;
    k->pub = pub;
    return k;
}

sl_jwt_key *sl_jwt_key_rs256_file(const char *path, sl_err *err)
{
    FILE *f = fopen(path, "rb");
    char buf[16384];
    if (!f) {
        sl_err_set(err, "JWT public key %s: cannot open", path);
        return NULL;
    }
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    sl_jwt_key *k = sl_jwt_key_rs256_pem(buf, n, err);
    if (!k)
        sl_err_prefix(err, "%s", path);
    return k;
}

void sl_jwt_key_free(sl_jwt_key *k)
{
    if (!k)
        return;
    if (k->secret) {
        OPENSSL_cleanse(k->secret, k->len);
        free(k->secret);
    }
    EVP_PKEY_free(k->pub);
    free(k);
}

int sl_jwt_key_for_consumer(const sl_consumer_conf *c, sl_jwt_key **out, sl_err *err)
{
    *out = NULL;
    if (!c->jwt_alg)
        return 0;
    if (strcmp(c->jwt_alg, "HS256") == 0) {
        if (!c->jwt_secret || !*c->jwt_secret) {
            sl_err_set(err, "consumer %s: HS256 JWT needs a secret: set the variable %s", c->name,
                       c->jwt_secret_env ? c->jwt_secret_env : "its jwt secret_env names");
            return -1;
        }
        *out = sl_jwt_key_hs256(c->jwt_secret, strlen(c->jwt_secret), err);
    } else if (strcmp(c->jwt_alg, "RS256") == 0 && c->jwt_public_key) {
        *out = sl_jwt_key_rs256_file(c->jwt_public_key, err);
    } else {
        sl_err_set(err, "consumer %s: JWT needs alg HS256 (with a secret) or RS256 (with a public key)", c->name);
        return -1;
    }
    if (!*out) {
        sl_err_prefix(err, "consumer %s", c->name);
        return -1;
    }
    return 0;
}

bool sl_jwt_looks_like(const char *t)
{
    if (!t || strncmp(t, "eyJ", 3) != 0)
        return false;
    int dots = 0;
    for (const char *p = t; *p; p++) {
        if (*p == '.')
            dots++;
        else if (!memchr(b64u, *p, 64))
            return false;
    }
    return dots == 2;
}

static int hs256(const unsigned char *key, size_t klen, const char *msg, size_t n, unsigned char mac[32])
{
    unsigned int len = 0;
    return HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, n, mac, &len) && len == 32 ? 0 : -1;
}

static json_t *decode_json(const char *s, size_t n)
{
    size_t len;
    unsigned char *raw = sl_b64url_decode(s, n, &len);
    if (!raw)
        return NULL;
    json_t *j = json_loadb((const char *)raw, len, 0, NULL);
    free(raw);
    return json_is_object(j) ? j : (json_decref(j), NULL);
}

/* A NumericDate claim as seconds; -1 when out of 0..year 9999, so that neither the cast
 * from a huge real nor the leeway arithmetic can overflow. */
static int claim_time(const json_t *v, int64_t *out)
{
    const int64_t max = 253402300799; /* 9999-12-31T23:59:59Z */
    double d = json_number_value(v);
    if (json_is_integer(v) ? (json_integer_value(v) < 0 || json_integer_value(v) > max) : !(d >= 0 && d <= (double)max))
        return -1;
    *out = json_is_integer(v) ? (int64_t)json_integer_value(v) : (int64_t)d;
    return 0;
}

int sl_jwt_verify(const sl_jwt_key *k, const char *token, int64_t now, int64_t leeway_s,
                  sl_jwt_claims *out, sl_err *err)
{
    json_t *head = NULL, *claims = NULL;
    unsigned char *sig = NULL;
    const char *d1 = strchr(token, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    memset(out, 0, sizeof *out);
    if (!d1 || !d2 || strchr(d2 + 1, '.')) {
        sl_err_set(err, "JWT: not three dot-separated parts");
        goto fail;
    }
    if (!(head = decode_json(token, (size_t)(d1 - token)))) {
        sl_err_set(err, "JWT: the header is not base64url JSON");
        goto fail;
    }
    const char *alg = json_string_value(json_object_get(head, "alg"));
    const char *want = k->alg == JWT_HS256 ? "HS256" : "RS256";
    if (!alg || strcmp(alg, want) != 0) {
        sl_err_set(err, "JWT: algorithm %s is not the consumer's %s", alg ? alg : "(none)", want);
        goto fail;
    }
    size_t siglen, signed_len = (size_t)(d2 - token);
    if (!(sig = sl_b64url_decode(d2 + 1, strlen(d2 + 1), &siglen))) {
        sl_err_set(err, "JWT: the signature is not base64url");
        goto fail;
    }
    bool ok = false;
    if (k->alg == JWT_HS256) {
        unsigned char mac[32];
        ok = siglen == 32 && hs256(k->secret, k->len, token, signed_len, mac) == 0 &&
             CRYPTO_memcmp(mac, sig, 32) == 0;
    } else {
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        ok = ctx && EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, k->pub) == 1 &&
             EVP_DigestVerify(ctx, sig, siglen, (const unsigned char *)token, signed_len) == 1;
        EVP_MD_CTX_free(ctx);
        ERR_clear_error();
    }
    if (!ok) {
        sl_err_set(err, "JWT: bad signature");
        goto fail;
    }
    if (!(claims = decode_json(d1 + 1, (size_t)(d2 - d1 - 1)))) {
        sl_err_set(err, "JWT: the claims are not base64url JSON");
        goto fail;
    }
    const char *sub = json_string_value(json_object_get(claims, "sub"));
    json_t *exp = json_object_get(claims, "exp"), *nbf = json_object_get(claims, "nbf");
    json_t *iat = json_object_get(claims, "iat");
    if (!sub || !*sub || strlen(sub) >= sizeof out->sub) {
        sl_err_set(err, "JWT: no `sub` claim naming the consumer");
        goto fail;
    }
    if (!json_is_number(exp)) {
        sl_err_set(err, "JWT: no `exp` claim (tokens must expire)");
        goto fail;
    }
    out->nbf = out->iat = 0;
    if (claim_time(exp, &out->exp) < 0 || (json_is_number(nbf) && claim_time(nbf, &out->nbf) < 0) ||
        (json_is_number(iat) && claim_time(iat, &out->iat) < 0)) {
        sl_err_set(err, "JWT: `exp`, `nbf` or `iat` is not a time between 1970 and 9999");
        goto fail;
    }
    if (now >= out->exp + leeway_s) {
        sl_err_set(err, "JWT: expired");
        goto fail;
    }
    if (out->nbf && now + leeway_s < out->nbf) {
        sl_err_set(err, "JWT: not valid yet (nbf)");
        goto fail;
    }
    snprintf(out->sub, sizeof out->sub, "%s", sub);
    json_decref(head);
    json_decref(claims);
    free(sig);
    return 0;
fail:
    json_decref(head);
    json_decref(claims);
    free(sig);
    return -1;
}

char *sl_jwt_sign_hs256(const void *secret, size_t len, const char *claims_json)
{
    static const char head[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    char *h = sl_b64url_encode(head, strlen(head));
    char *c = sl_b64url_encode(claims_json, strlen(claims_json));
    char *out = NULL, *sig = NULL;
    unsigned char mac[32];
    if (!h || !c || asprintf(&out, "%s.%s", h, c) < 0) {
        out = NULL;
        goto done;
    }
    if (hs256(secret, len, out, strlen(out), mac) < 0 || !(sig = sl_b64url_encode(mac, 32))) {
        free(out);
        out = NULL;
        goto done;
    }
    char *full = NULL;
    if (asprintf(&full, "%s.%s", out, sig) < 0)
        full = NULL;
    free(out);
    out = full;
done:
    free(h);
    free(c);
    free(sig);
    return out;
}
