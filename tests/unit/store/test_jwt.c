/* JWT credentials: HS256/RS256 verify, exp/nbf enforced, algorithm confusion refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "config.h"
#include "jwt.h"

static char *claims(const char *sub, int64_t exp_delta, int64_t nbf_delta)
{
    char *s = NULL;
    int64_t now = time(NULL);
    if (nbf_delta)
        assert_true(asprintf(&s, "{\"sub\":\"%s\",\"exp\":%lld,\"nbf\":%lld}", sub,
                             (long long)(now + exp_delta), (long long)(now + nbf_delta)) > 0);
    else
        assert_true(asprintf(&s, "{\"sub\":\"%s\",\"exp\":%lld}", sub, (long long)(now + exp_delta)) > 0);
    return s;
}

static void hs256_round_trip(void **state)
{
    sl_jwt_key *k = sl_jwt_key_hs256("s3cret", 6, NULL);
    char *c = claims("acme", 60, 0);
    char *tok = sl_jwt_sign_hs256("s3cret", 6, c);
    assert_true(sl_jwt_looks_like(tok));
    sl_jwt_claims out;
    sl_err err = {{0}};
    assert_int_equal(sl_jwt_verify(k, tok, time(NULL), 0, &out, &err), 0);
    assert_string_equal(out.sub, "acme");
    assert_int_equal(out.exp, time(NULL) + 60);
    /* another secret does not verify */
    sl_jwt_key *other = sl_jwt_key_hs256("other", 5, NULL);
    assert_int_equal(sl_jwt_verify(other, tok, time(NULL), 0, &out, &err), -1);
    assert_non_null(strstr(err.msg, "bad signature"));
    /* a changed claim does not verify */
    char *dot = strchr(tok, '.');
    dot[3] = dot[3] == 'A' ? 'B' : 'A';
    assert_int_equal(sl_jwt_verify(k, tok, time(NULL), 0, &out, &err), -1);
    free(tok);
    free(c);
    sl_jwt_key_free(k);
    sl_jwt_key_free(other);
}

/* The jwt.io example token: its signature verifies; it has no exp, so it is refused. */
static void known_token_verifies_but_needs_exp(void **state)
{
    const char *tok = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
                      "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ."
                      "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
    sl_jwt_key *k = sl_jwt_key_hs256("your-256-bit-secret", 19, NULL);
    sl_jwt_claims out;
    sl_err err = {{0}};
    assert_int_equal(sl_jwt_verify(k, tok, time(NULL), 0, &out, &err), -1);
    assert_non_null(strstr(err.msg, "exp"));
    sl_jwt_key_free(k);
}

static void expiry_and_nbf_are_enforced(void **state)
{
    sl_jwt_key *k = sl_jwt_key_hs256("s", 1, NULL);
    sl_jwt_claims out;
    sl_err err = {{0}};
    char *c = claims("acme", -100, 0), *tok = sl_jwt_sign_hs256("s", 1, c);
    assert_int_equal(sl_jwt_verify(k, tok, time(NULL), 0, &out, &err), -1);
    assert_non_null(strstr(err.msg, "expired"));
    assert_int_equal(sl_jwt_verify(k, tok, time(NULL), 200, &out, &err), 0);   /* leeway */
    free(c);
    free(tok);
    c = claims("acme", 600, 300);
    tok = sl_jwt_sign_hs256("s", 1, c);
    assert_int_equal(sl_jwt_verify(k, tok, time(NULL), 0, &out, &err), -1);
    assert_non_null(strstr(err.msg, "nbf"));
    free(c);
    free(tok);
    c = strdup("{\"exp\":99999999999}");
    tok = sl_jwt_sign_hs256("s", 1, c);
    assert_int_equal(sl_jwt_verify(k, tok, time(NULL), 0, &out, &err), -1);
    assert_non_null(strstr(err.msg, "sub"));
    free(c);
    free(tok);
    sl_jwt_key_free(k);
}

static char *b64(const char *s)
{
    return sl_b64url_encode(s, strlen(s));
}

static void alg_none_and_garbage_are_refused(void **state)
{
    sl_jwt_key *k = sl_jwt_key_hs256("s", 1, NULL);
    sl_jwt_claims out;
    sl_err err = {{0}};
    char *h = b64("{\"alg\":\"none\"}"), *c = b64("{\"sub\":\"acme\",\"exp\":99999999999}"), *tok;
    assert_true(asprintf(&tok, "%s.%s.", h, c) > 0);
    assert_int_equal(sl_jwt_verify(k, tok, time(NULL), 0, &out, &err), -1);
    assert_non_null(strstr(err.msg, "none"));
    free(tok);
    assert_int_equal(sl_jwt_verify(k, "a.b", time(NULL), 0, &out, &err), -1);
    assert_int_equal(sl_jwt_verify(k, "a.b.c.d", time(NULL), 0, &out, &err), -1);
    assert_int_equal(sl_jwt_verify(k, "!!.??.--", time(NULL), 0, &out, &err), -1);
    assert_false(sl_jwt_looks_like("sk-sluice-0123456789ABCDEFGHIJabcdefghijKL"));
    assert_false(sl_jwt_looks_like("eyJ.abc"));
    free(h);
    free(c);
    sl_jwt_key_free(k);
}

static EVP_PKEY *rsa_key(void)
{
    EVP_PKEY *pkey = EVP_RSA_gen(2048);
    assert_non_null(pkey);
    return pkey;
}

static sl_jwt_key *public_of(EVP_PKEY *pkey)
{
    BIO *bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PUBKEY(bio, pkey), 1);
    char *pem;
    long n = BIO_get_mem_data(bio, &pem);
    sl_err err = {{0}};
    sl_jwt_key *k = sl_jwt_key_rs256_pem(pem, (size_t)n, &err);
    BIO_free(bio);
    if (!k)
        fail_msg("%s", err.msg);
    return k;
}

static char *rs256_sign(EVP_PKEY *pkey, const char *claims_json)
{
    char *h = b64("{\"alg\":\"RS256\",\"typ\":\"JWT\"}"), *c = b64(claims_json), *msg, *tok;
    assert_true(asprintf(&msg, "%s.%s", h, c) > 0);
    unsigned char sig[512];
    size_t siglen = sizeof sig;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, pkey), 1);
    assert_int_equal(EVP_DigestSign(ctx, sig, &siglen, (unsigned char *)msg, strlen(msg)), 1);
    EVP_MD_CTX_free(ctx);
    char *s = sl_b64url_encode(sig, siglen);
    assert_true(asprintf(&tok, "%s.%s", msg, s) > 0);
    free(h);
    free(c);
    free(msg);
    free(s);
    return tok;
}

static void rs256_verifies_with_the_public_key_only(void **state)
{
    EVP_PKEY *a = rsa_key(), *b = rsa_key();
    sl_jwt_key *ka = public_of(a), *kb = public_of(b);
    char *c = claims("beta", 60, 0), *tok = rs256_sign(a, c);
    sl_jwt_claims out;
    sl_err err = {{0}};
    assert_int_equal(sl_jwt_verify(ka, tok, time(NULL), 0, &out, &err), 0);
    assert_string_equal(out.sub, "beta");
    assert_int_equal(sl_jwt_verify(kb, tok, time(NULL), 0, &out, &err), -1);
    assert_non_null(strstr(err.msg, "bad signature"));
    /* an HS256 token is refused by an RS256 consumer (algorithm confusion) */
    char *hs = sl_jwt_sign_hs256("x", 1, c);
    assert_int_equal(sl_jwt_verify(ka, hs, time(NULL), 0, &out, &err), -1);
    assert_non_null(strstr(err.msg, "HS256"));
    assert_null(sl_jwt_key_rs256_pem("not a key", 9, &err));
    assert_non_null(strstr(err.msg, "PUBLIC KEY"));
    free(hs);
    free(c);
    free(tok);
    sl_jwt_key_free(ka);
    sl_jwt_key_free(kb);
    EVP_PKEY_free(a);
    EVP_PKEY_free(b);
}

static void consumer_config_gives_its_key(void **state)
{
    sl_consumer_conf c;
    memset(&c, 0, sizeof c);
    c.name = "acme";
    sl_jwt_key *k = (sl_jwt_key *)1;
    sl_err err = {{0}};
    assert_int_equal(sl_jwt_key_for_consumer(&c, &k, &err), 0);
    assert_null(k);
    c.jwt_alg = "HS256";
    c.jwt_secret_env = "ACME_JWT";
    assert_int_equal(sl_jwt_key_for_consumer(&c, &k, &err), -1);
    assert_non_null(strstr(err.msg, "ACME_JWT"));
    c.jwt_secret = "s";
    assert_int_equal(sl_jwt_key_for_consumer(&c, &k, &err), 0);
    char *cl = claims("acme", 60, 0), *tok = sl_jwt_sign_hs256("s", 1, cl);
    sl_jwt_claims out;
    assert_int_equal(sl_jwt_verify(k, tok, time(NULL), 0, &out, &err), 0);
    sl_jwt_key_free(k);
    free(cl);
    free(tok);
    c.jwt_alg = "RS256";
    c.jwt_public_key = "/nonexistent/key.pem";
    assert_int_equal(sl_jwt_key_for_consumer(&c, &k, &err), -1);
    assert_non_null(strstr(err.msg, "acme"));
    assert_non_null(strstr(err.msg, "/nonexistent/key.pem"));
}

static void base64url_round_trip(void **state)
{
    unsigned char data[256];
    for (int i = 0; i < 256; i++)
        data[i] = (unsigned char)(i * 7);
    for (size_t n = 0; n < 40; n++) {
        char *e = sl_b64url_encode(data, n);
        assert_null(strpbrk(e, "+/="));
        size_t len;
        unsigned char *d = sl_b64url_decode(e, strlen(e), &len);
        assert_non_null(d);
        assert_int_equal(len, n);
        assert_memory_equal(d, data, n);
        free(d);
        free(e);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hs256_round_trip),
        cmocka_unit_test(known_token_verifies_but_needs_exp),
        cmocka_unit_test(expiry_and_nbf_are_enforced),
        cmocka_unit_test(alg_none_and_garbage_are_refused),
        cmocka_unit_test(rs256_verifies_with_the_public_key_only),
        cmocka_unit_test(consumer_config_gives_its_key),
        cmocka_unit_test(base64url_round_trip),
    };
    return cmocka_run_group_tests_name("store_jwt", tests, NULL, NULL);
}
