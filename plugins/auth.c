/* auth: finds the consumer from the request's credential — an API key (Authorization:
 * Bearer KEY, bare Authorization: KEY, api-key or x-api-key) or a JWT for consumers set up
 * for one — and enforces the consumer's model allow-list. Keys are looked up by their
 * HMAC in the store (or among the config's declared hashes); unknown, revoked and expired
 * credentials get the same 401. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "config.h"
#include "exchange.h"
#include "jwt.h"
#include "keys.h"
#include "log.h"
#include "plugin.h"
#include "store.h"

extern const sl_plugin sl_plugin_auth;

typedef struct auth_conf {
    const sl_config *cfg;
    sl_jwt_key **jwt;           /* parallel to cfg->consumers; NULL where none */
} auth_conf;

static const char *credential(sl_exchange *ex)
{
    const char *h = sl_ex_header(ex, "authorization");
    if (h) {
        if (strncasecmp(h, "Bearer ", 7) == 0)
            h += 7;
        while (*h == ' ')
            h++;
        return *h ? h : NULL;
    }
    h = sl_ex_header(ex, "api-key");
    if (!h)
        h = sl_ex_header(ex, "x-api-key");
    return h && *h ? h : NULL;
}

static void deny(sl_exchange *ex, const char *why)
{
    sl_ex_log_field(ex, "auth", json_string(why));
    sl_ex_respond_error(ex, 401, "invalid_request_error", "invalid_api_key", NULL,
                        "Incorrect API key provided. You can find your API key at your gateway admin.");
}

/* The consumer is known: check it still exists and may use the model asked for. */
static sl_step admit(sl_exchange *ex, const char *consumer)
{
    const sl_config *cfg = sl_ex_config(ex);
    const sl_consumer_conf *cc = sl_config_consumer(cfg, consumer);
    if (!cc) {
        deny(ex, "consumer_not_configured");
        return SL_STEP_RESPOND;
    }
    sl_ex_set_consumer(ex, consumer);
    sl_endpoint ep = sl_ex_endpoint(ex);
    const char *model = sl_ex_model(ex);
    if (ep != SL_EP_MODELS && model && cc->models) {
        bool ok = false;
        for (size_t i = 0; i < cc->n_models && !ok; i++)
            ok = strcmp(cc->models[i], model) == 0;
        if (!ok) {
            sl_ex_respond_error(ex, 404, "invalid_request_error", "model_not_found", "model",
                                "The model `%s` does not exist or you do not have access to it.", model);
            return SL_STEP_RESPOND;
        }
    }
    return SL_STEP_CONTINUE;
}

static void lookup_done(void *arg, sl_store_status st, const sl_key_info *key, const char *plaintext,
                        const sl_err *err)
{
    (void)plaintext;
    sl_exchange *ex = arg;
    switch (st) {
    case SL_STORE_OK:
        sl_ex_log_field(ex, "key_id", json_string(key->id));
        sl_ex_resume(ex, admit(ex, key->consumer));
        return;
    case SL_STORE_NOT_FOUND:
    case SL_STORE_REVOKED:
    case SL_STORE_EXPIRED:
        deny(ex, sl_store_status_name(st));
        break;
    default:
        sl_log_warn("auth: key lookup failed: %s", err ? err->msg : sl_store_status_name(st));
        sl_ex_respond_error(ex, 503, "api_error", "store_unavailable", NULL,
                            "the gateway cannot check credentials right now; retry shortly");
        break;
    }
    sl_ex_resume(ex, SL_STEP_RESPOND);
}

static sl_step by_jwt(sl_exchange *ex, auth_conf *ac, const char *token)
{
    /* the claims name the consumer whose key must verify them */
    const char *dot = strchr(token, '.');
    const char *dot2 = dot ? strchr(dot + 1, '.') : NULL;
    size_t plen = 0;
    unsigned char *payload = dot2 ? sl_b64url_decode(dot + 1, (size_t)(dot2 - dot - 1), &plen) : NULL;
    json_t *claims = payload ? json_loadb((const char *)payload, plen, 0, NULL) : NULL;
    free(payload);
    const char *sub = json_string_value(json_object_get(claims, "sub"));
    const sl_config *cfg = ac->cfg;
    sl_jwt_key *key = NULL;
    for (size_t i = 0; sub && i < cfg->n_consumers; i++)
        if (strcmp(cfg->consumers[i].name, sub) == 0)
            key = ac->jwt[i];
    json_decref(claims);
    if (!key) {
        deny(ex, "jwt_unknown_subject");
        return SL_STEP_RESPOND;
    }
    sl_jwt_claims c;
    sl_err err = {{0}};
    if (sl_jwt_verify(key, token, (int64_t)time(NULL), 30, &c, &err) < 0) {
        sl_ex_log_field(ex, "auth_detail", json_string(err.msg));
        deny(ex, "jwt_invalid");
        return SL_STEP_RESPOND;
    }
    return admit(ex, c.sub);
}

static sl_step auth_on_request(sl_exchange *ex, void *conf)
{
    auth_conf *ac = conf;
    const char *cred = credential(ex);
    if (!cred) {
        sl_ex_log_field(ex, "auth", json_string("missing"));
        sl_ex_respond_error(ex, 401, "invalid_request_error", "invalid_api_key", NULL,
                            "You didn't provide an API key. Send it as Authorization: Bearer KEY.");
        return SL_STEP_RESPOND;
    }
    if (sl_key_well_formed(cred)) {
        const sl_config *cfg = sl_ex_config(ex);
        char hash[SL_KEY_HASH_SIZE];
        bool hashed = false;
        if (cfg->store.secret && cfg->consumers &&
            sl_key_hash(cfg->store.secret, strlen(cfg->store.secret), cred, hash, NULL) == 0) {
            hashed = true;
            const char *declared = sl_key_declared_consumer(cfg, hash);
            if (declared)
                return admit(ex, declared);
        }
        sl_store_key_lookup_hashed(sl_ex_store(ex), cred, cfg->store.secret, hashed ? hash : NULL, lookup_done, ex);
        return SL_STEP_PENDING;
    }
    if (sl_jwt_looks_like(cred))
        return by_jwt(ex, ac, cred);
    deny(ex, "malformed");
    return SL_STEP_RESPOND;
}

static void auth_free(void *conf)
{
    auth_conf *ac = conf;
    if (!ac)
        return;
    for (size_t i = 0; ac->jwt && i < ac->cfg->n_consumers; i++)
        sl_jwt_key_free(ac->jwt[i]);
    free(ac->jwt);
    free(ac);
}

static int auth_parse(const sl_ynode *node, sl_plugin_ctx *ctx, void **out)
{
    if (node && !sl_ynode_is_null(node)) {
        sl_diag_add(ctx->diag, node, "plugins: auth takes no options (consumers and their keys are set under consumers:)");
        return -1;
    }
    auth_conf *ac = calloc(1, sizeof *ac);
    if (!ac)
        return -1;
    *out = ac;
    const sl_config *cfg = ctx->config;
    ac->cfg = cfg;
    ac->jwt = calloc(cfg->n_consumers + 1, sizeof *ac->jwt);
    if (!ac->jwt)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < cfg->n_consumers; i++) {
        const sl_consumer_conf *cc = &cfg->consumers[i];
        if (!cc->jwt_alg)
            continue;
        sl_err err = {{0}};
        if (strcmp(cc->jwt_alg, "HS256") == 0)
            ac->jwt[i] = cc->jwt_secret ? sl_jwt_key_hs256(cc->jwt_secret, strlen(cc->jwt_secret), &err) : NULL;
        else
            ac->jwt[i] = cc->jwt_public_key ? sl_jwt_key_rs256_file(cc->jwt_public_key, &err) : NULL;
        if (!ac->jwt[i] && err.msg[0]) {
            sl_diag_add(ctx->diag, node, "consumers.%s.jwt: %s", cc->name, err.msg);
            rc = -1;
        }
    }
    return rc;
}

const sl_plugin sl_plugin_auth = {
    .name = "auth",
    .api_version = SL_PLUGIN_API_VERSION,
    .config_parse = auth_parse,
    .config_free = auth_free,
    .on_request = auth_on_request,
};
