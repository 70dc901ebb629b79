/* Fuzz target: JWT credentials (gateway/jwt.c). Mode 0: the input is the token, verified
 * against an HS256 and an RS256 key (header, base64url, signature paths). Mode 1: the input
 * is a claims object, signed with the HS256 secret and verified (the claims paths a forger
 * cannot reach without the secret). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jwt.h"

static const char secret[] = "fuzz-secret-0123456789abcdef";
/* a throwaway 1024-bit public key, made for this test */
static const char pem[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDbWmzmzYihF8bHoXSa5ppcnPHs\n"
    "/UyW0/9Ori94IMjrO5NPl41JnOQiOR42+9WDiqL0UTqixG2dvIuBG0EMayiL5pbs\n"
    "w8jR4aHzcbLClbMUMc6nJcXgH9xEn5/Xpu1L2nVA6opBc3bHIW29/uEomqdMrbap\n"
    "KypQz34ievKwTSgf3QIDAQAB\n"
    "-----END PUBLIC KEY-----\n";

static sl_jwt_key *hs, *rs;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!hs) {
        hs = sl_jwt_key_hs256(secret, strlen(secret), NULL);
        rs = sl_jwt_key_rs256_pem(pem, strlen(pem), NULL);
    }
    if (size < 1)
        return 0;
    char *s = malloc(size);
    memcpy(s, data + 1, size - 1);
    s[size - 1] = 0;
    sl_jwt_claims claims;
    sl_err err;
    if (data[0] & 1) {
        char *tok = sl_jwt_sign_hs256(secret, strlen(secret), s);
        if (tok) {
            sl_jwt_verify(hs, tok, 1700000000, 30, &claims, &err);
            free(tok);
        }
    } else {
        sl_jwt_looks_like(s);
        sl_jwt_verify(hs, s, 1700000000, 30, &claims, &err);
        if (rs)
            sl_jwt_verify(rs, s, 1700000000, 30, &claims, &err);
        size_t n;
        free(sl_b64url_decode(s, strlen(s), &n));
    }
    free(s);
    return 0;
}
