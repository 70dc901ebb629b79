#include "keys.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "config.h"
#include "siphash.h"

static const char b62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

int sl_base62_random(char *out, size_t n, sl_err *err)
{
    unsigned char buf[64];
    size_t have = 0;
    while (have < n) {
        if (RAND_bytes(buf, sizeof buf) != 1) {
            sl_err_set(err, "random generator failed: %s",
                       ERR_error_string(ERR_get_error(), NULL));
            return -1;
        }
        /* 248 = 4 * 62: bytes at or above it would favour the first 8 characters. */
        for (size_t i = 0; i < sizeof buf && have < n; i++)
            if (buf[i] < 248)
                out[have++] = b62[buf[i] % 62];
    }
    return 0;
}

int sl_key_generate(char out[SL_KEY_SIZE], sl_err *err)
{
    memcpy(out, SL_KEY_PREFIX, SL_KEY_PREFIX_LEN);
    if (sl_base62_random(out + SL_KEY_PREFIX_LEN, SL_KEY_RANDOM_LEN, err) < 0)
        return -1;
    out[SL_KEY_LEN] = '\0';
    return 0;
}

int sl_key_id_generate(char out[SL_KEY_ID_SIZE], sl_err *err)
{
    memcpy(out, "key_", 4);
    if (sl_base62_random(out + 4, 16, err) < 0)
        return -1;
    out[20] = '\0';
    return 0;
}

/* Every request hashes the key it presents. OpenSSL 3 looks the algorithms up on each
 * HMAC() call, so each thread keeps one context keyed with the secret and only re-inits it;
 * and since clients present the same keys again and again, it also remembers the hashes of
 * the keys it saw last (a pure function of secret and key: lookups, revocation and expiry
 * still go to the store every time). The memo does not keep the keys: it knows a key again
 * by its SipHash-128 under a random key of this thread's (a PRF: without that key, the
 * fingerprints tell nothing of the keys and cannot be matched on purpose); it is wiped when
 * the secret changes and when the thread ends. */
#define MEMO_SLOTS 256

typedef struct hmac_memo {
    uint8_t print[16];              /* SipHash-128 of a well-formed-length key; others are not kept */
    char hash[64];
    bool used;
} hmac_memo;

typedef struct hmac_cache {
    EVP_MAC_CTX *ctx;
    unsigned char secret[128];
    size_t secret_len;
    uint8_t print_key[16];          /* random, this thread's */
    hmac_memo memo[MEMO_SLOTS];
} hmac_cache;

static pthread_key_t hmac_key;
static pthread_once_t hmac_once = PTHREAD_ONCE_INIT;

static void hmac_cache_free(void *arg)
{
    hmac_cache *c = arg;
    EVP_MAC_CTX_free(c->ctx);
    OPENSSL_cleanse(c, sizeof *c);
    free(c);
}

static void hmac_key_make(void) { pthread_key_create(&hmac_key, hmac_cache_free); }

/* This thread's HMAC-SHA-256 context and memo for secret (NULL on failure). */
static hmac_cache *hmac_for(const void *secret, size_t secret_len)
{
    pthread_once(&hmac_once, hmac_key_make);
    hmac_cache *c = pthread_getspecific(hmac_key);
    /* memcmp: both sides are the server's secret (this one and the last), none the client's */
    if (c && c->ctx && c->secret_len == secret_len && memcmp(c->secret, secret, secret_len) == 0)
        return c;
    if (secret_len > sizeof c->secret)
        return NULL;
    if (!c) {
        if (!(c = calloc(1, sizeof *c)))
            return NULL;
        if (RAND_bytes(c->print_key, sizeof c->print_key) != 1) {
            free(c);
            return NULL;
        }
        pthread_setspecific(hmac_key, c);
    }
    EVP_MAC_CTX_free(c->ctx);
    c->ctx = NULL;
    c->secret_len = 0;
    OPENSSL_cleanse(c->memo, sizeof c->memo); /* hashes under the old secret */
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
    EVP_MAC_free(mac);
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
                           OSSL_PARAM_construct_end()};
    if (!ctx || !EVP_MAC_init(ctx, secret, secret_len, params)) {
        EVP_MAC_CTX_free(ctx);
        return NULL;
    }
    c->ctx = ctx;
    memcpy(c->secret, secret, secret_len);
    c->secret_len = secret_len;
    return c;
}

/* The memo slot of a well-formed-length key, and its fingerprint in print; NULL for other
 * lengths. */
static hmac_memo *memo_slot(hmac_cache *c, const char *key, size_t len, uint8_t print[16])
{
    if (len != SL_KEY_LEN)
        return NULL;
    sl_siphash128(c->print_key, key, len, print);
    return &c->memo[print[0] % MEMO_SLOTS];
}

static void to_hex(const unsigned char mac[32], char out[SL_KEY_HASH_SIZE])
{
    static const char hex[] = "0123456789abcdef";
    for (unsigned i = 0; i < 32; i++) {
        out[2 * i] = hex[mac[i] >> 4];
        out[2 * i + 1] = hex[mac[i] & 15];
    }
    out[64] = '\0';
}

int sl_key_hash(const void *secret, size_t secret_len, const char *key,
                char out[SL_KEY_HASH_SIZE], sl_err *err)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    size_t n = 0, len = strlen(key);
    if (!secret || secret_len == 0) {
        sl_err_set(err, "no server secret: set SLUICE_SECRET (or the variable store.secret_env names)");
        return -1;
    }
    hmac_memo *m = NULL;
    uint8_t print[16];
    if (secret_len > sizeof ((hmac_cache *)0)->secret) { /* a long secret: no cached context */
        unsigned int ulen = 0;
        if (!HMAC(EVP_sha256(), secret, (int)secret_len, (const unsigned char *)key, len, mac, &ulen))
            ulen = 0;
        n = ulen;
    } else {
        hmac_cache *c = hmac_for(secret, secret_len);
        if (c && (m = memo_slot(c, key, len, print)) && m->used && CRYPTO_memcmp(m->print, print, sizeof print) == 0) {
            memcpy(out, m->hash, 64);
            out[64] = '\0';
            return 0;
        }
        if (!c || !EVP_MAC_init(c->ctx, NULL, 0, NULL) || !EVP_MAC_update(c->ctx, (const unsigned char *)key, len) ||
            !EVP_MAC_final(c->ctx, mac, &n, sizeof mac))
            n = 0;
    }
    if (n != 32) {
        sl_err_set(err, "HMAC-SHA-256 failed: %s", ERR_error_string(ERR_get_error(), NULL));
        return -1;
    }
    to_hex(mac, out);
    if (m) {
        memcpy(m->print, print, sizeof print);
        memcpy(m->hash, out, 64);
        m->used = true;
    }
    return 0;
}

bool sl_key_hash_equal(const char *a, const char *b)
{
    if (!a || !b || strlen(a) != 64 || strlen(b) != 64)
        return false;
    return CRYPTO_memcmp(a, b, 64) == 0;
}

/* 1 for the base62 characters (digits and ASCII letters). */
static const unsigned char is_b62[256] = {
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1,
    ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1,
    ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1,
    ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1,
    ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
    ['y'] = 1, ['z'] = 1,
};

bool sl_key_well_formed(const char *key)
{
    if (!key || strncmp(key, SL_KEY_PREFIX, SL_KEY_PREFIX_LEN) != 0)
        return false;
    size_t i = SL_KEY_PREFIX_LEN;
    while (i < SL_KEY_LEN && is_b62[(unsigned char)key[i]])
        i++;
    return i == SL_KEY_LEN && key[i] == '\0';
}

void sl_key_shown_prefix(const char *key, char out[SL_KEY_SHOWN_SIZE])
{
    size_t n = strnlen(key, SL_KEY_SHOWN_LEN);
    memcpy(out, key, n);
    out[n] = '\0';
}

const char *sl_key_declared_consumer(const struct sl_config *c, const char *hash)
{
    const char *found = NULL;
    for (size_t i = 0; c && i < c->n_consumers; i++)
        for (size_t j = 0; j < c->consumers[i].n_key_hashes; j++)
            if (sl_key_hash_equal(c->consumers[i].key_hashes[j], hash) && !found)
                found = c->consumers[i].name;
    return found;
}
