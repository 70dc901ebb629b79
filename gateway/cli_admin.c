#include "cli_admin.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <curl/curl.h>
#include <jansson.h>

#include "config.h"
#include "keys.h"

#define DEFAULT_CONFIG "conf/sluice.yaml"

static const char usage_key[] =
    "usage: sluice key issue --consumer NAME [--expires 30d] [--name LABEL] [--json]\n"
    "       sluice key list [--consumer NAME] [--json]\n"
    "       sluice key revoke ID\n"
    "       sluice key hash [KEY]       (KEY from stdin when not given)\n"
    "\n"
    "issue/list/revoke call the admin API of a running gateway: its URL and token come from\n"
    "the config (-c FILE, default " DEFAULT_CONFIG ": admin.listen, admin.token_env), or from\n"
    "--admin URL and the environment variable SLUICE_ADMIN_TOKEN.\n"
    "hash prints HMAC-SHA-256(server secret, KEY), to declare a key in the config by hash\n"
    "(consumers.NAME.keys); the secret comes from SLUICE_SECRET or store.secret_env.\n";

typedef struct cli_target {
    char url[512];
    char token[512];
    sl_config *cfg;
} cli_target;

static int resolve_target(cli_target *t, const char *config_path, const char *admin_url, bool need_admin)
{
    const char *env_token = getenv("SLUICE_ADMIN_TOKEN");
    if (env_token)
        snprintf(t->token, sizeof t->token, "%s", env_token);
    if (admin_url)
        snprintf(t->url, sizeof t->url, "%s", admin_url);
    if (!admin_url || !env_token || !need_admin) {
        sl_diag d;
        sl_diag_init(&d, config_path);
        d.quiet = true;
        t->cfg = sl_config_load(config_path, &d);
        if (!t->cfg && need_admin && (!admin_url || !env_token)) {
            for (size_t i = 0; i < d.n; i++)
                fprintf(stderr, "%s\n", d.lines[i]);
            fprintf(stderr, "sluice: cannot read the admin address and token from %s; give --admin URL and SLUICE_ADMIN_TOKEN\n",
                    config_path);
            sl_diag_free(&d);
            return -1;
        }
        sl_diag_free(&d);
    }
    if (!need_admin)
        return 0;
    if (!t->url[0]) {
        if (!t->cfg || !t->cfg->admin.listen) {
            fprintf(stderr, "sluice: %s has no admin.listen; give --admin URL\n", config_path);
            return -1;
        }
        const char *a = t->cfg->admin.listen;
        if (strncmp(a, "0.0.0.0:", 8) == 0)
            snprintf(t->url, sizeof t->url, "http://127.0.0.1:%s", a + 8);
        else if (strncmp(a, "[::]:", 5) == 0)
            snprintf(t->url, sizeof t->url, "http://[::1]:%s", a + 5);
        else
            snprintf(t->url, sizeof t->url, "http://%s", a);
    }
    if (!t->token[0] && t->cfg && t->cfg->admin.token)
        snprintf(t->token, sizeof t->token, "%s", t->cfg->admin.token);
    if (!t->token[0]) {
        fprintf(stderr, "sluice: no admin token: set SLUICE_ADMIN_TOKEN (or the variable admin.token_env names)\n");
        return -1;
    }
    return 0;
}

static size_t collect(char *data, size_t size, size_t n, void *arg)
{
    size_t len = size * n;
    char **buf = arg;
    size_t old = *buf ? strlen(*buf) : 0;
    char *grown = realloc(*buf, old + len + 1);
    if (!grown)
        return 0;
    memcpy(grown + old, data, len);
    grown[old + len] = 0;
    *buf = grown;
    return len;
}

/* One admin call; returns the HTTP status (0 when unreachable) and the parsed body. */
static long admin_call(const cli_target *t, const char *method, const char *path, const char *body, json_t **out)
{
    CURL *c = curl_easy_init();
    char url[1024], auth[600];
    snprintf(url, sizeof url, "%s%s", t->url, path);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", t->token);
    struct curl_slist *h = curl_slist_append(NULL, auth);
    h = curl_slist_append(h, "Content-Type: application/json");
    char *resp = NULL;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &resp);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    if (body)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    long status = 0;
    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    else
        fprintf(stderr, "sluice: %s: %s\n", url, curl_easy_strerror(rc));
    *out = resp ? json_loads(resp, 0, NULL) : NULL;
    free(resp);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return status;
}

static int report_error(long status, json_t *body)
{
    const char *msg = json_string_value(json_object_get(json_object_get(body, "error"), "message"));
    if (status)
        fprintf(stderr, "sluice: the gateway answered %ld: %s\n", status, msg ? msg : "(no message)");
    json_decref(body);
    return 1;
}

static void print_time(int64_t t)
{
    if (!t) {
        printf("%-20s  ", "never");
        return;
    }
    char buf[32];
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    printf("%-20s  ", buf);
}

static int key_hash(int argc, char **argv, const char *config_path)
{
    char line[256];
    const char *key = argc > 0 ? argv[0] : NULL;
    if (!key) {
        if (!fgets(line, sizeof line, stdin)) {
            fprintf(stderr, "sluice: give the key as an argument or on stdin\n");
            return 2;
        }
        line[strcspn(line, "\r\n")] = 0;
        key = line;
    }
    if (!sl_key_well_formed(key)) {
        fprintf(stderr, "sluice: not a sluice key (sk-sluice- and 32 base62 characters)\n");
        return 1;
    }
    const char *secret = getenv("SLUICE_SECRET");
    cli_target t = {0};
    if (!secret) {
        resolve_target(&t, config_path, NULL, false);
        secret = t.cfg ? t.cfg->store.secret : NULL;
    }
    if (!secret || !secret[0]) {
        fprintf(stderr, "sluice: no server secret: set SLUICE_SECRET (or the variable store.secret_env names)\n");
        return 1;
    }
    char hash[SL_KEY_HASH_SIZE];
    sl_err err = {{0}};
    int rc = sl_key_hash(secret, strlen(secret), key, hash, &err);
    if (t.cfg)
        sl_config_unref(t.cfg);
    if (rc < 0) {
        fprintf(stderr, "sluice: %s\n", err.msg);
        return 1;
    }
    printf("%s\n", hash);
    return 0;
}

int sl_cli_key(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},  {"admin", required_argument, NULL, 'a'},
        {"consumer", required_argument, NULL, 'C'}, {"expires", required_argument, NULL, 'e'},
        {"name", required_argument, NULL, 'n'},    {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    const char *config_path = DEFAULT_CONFIG, *admin = NULL, *consumer = NULL, *expires = NULL, *name = NULL;
    bool as_json = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config_path = optarg; break;
        case 'a': admin = optarg; break;
        case 'C': consumer = optarg; break;
        case 'e': expires = optarg; break;
        case 'n': name = optarg; break;
        case 'j': as_json = true; break;
        case 'h': fputs(usage_key, stdout); return 0;
        default: fputs(usage_key, stderr); return 2;
        }
    }
    if (optind >= argc) {
        fputs(usage_key, stderr);
        return 2;
    }
    const char *sub = argv[optind++];
    if (strcmp(sub, "hash") == 0)
        return key_hash(argc - optind, argv + optind, config_path);
    cli_target t = {0};
    int rc = 1;
    json_t *body = NULL;
    long st;
    if (strcmp(sub, "issue") == 0) {
        if (!consumer) {
            fprintf(stderr, "sluice: key issue needs --consumer NAME\n");
            return 2;
        }
        long long ms;
        if (expires && sl_parse_duration_ms(expires, &ms) < 0) {
            fprintf(stderr, "sluice: --expires: a duration like 30d, 12h or 90m\n");
            return 2;
        }
        if (resolve_target(&t, config_path, admin, true) < 0)
            goto out;
        json_t *req = json_pack("{s:s, s:s?, s:s?}", "consumer", consumer, "name", name, "expires_in", expires);
        char *s = json_dumps(req, JSON_COMPACT);
        json_decref(req);
        st = admin_call(&t, "POST", "/admin/v1/keys", s, &body);
        free(s);
        if (st != 201) {
            rc = report_error(st, body);
            goto out;
        }
        if (as_json) {
            char *out = json_dumps(body, JSON_INDENT(2));
            printf("%s\n", out);
            free(out);
        } else {
            printf("%s\n", json_string_value(json_object_get(body, "key")));
            fprintf(stderr, "issued %s for consumer %s; the key is shown this once\n",
                    json_string_value(json_object_get(body, "id")), consumer);
        }
        rc = 0;
    } else if (strcmp(sub, "list") == 0) {
        if (resolve_target(&t, config_path, admin, true) < 0)
            goto out;
        char path[400];
        snprintf(path, sizeof path, "/admin/v1/keys%s%s", consumer ? "?consumer=" : "", consumer ? consumer : "");
        st = admin_call(&t, "GET", path, NULL, &body);
        if (st != 200) {
            rc = report_error(st, body);
            goto out;
        }
        json_t *data = json_object_get(body, "data");
        if (as_json) {
            char *out = json_dumps(data, JSON_INDENT(2));
            printf("%s\n", out);
            free(out);
        } else {
            printf("%-22s  %-16s  %-16s  %-14s  %-20s  %-20s  %s\n", "ID", "CONSUMER", "NAME", "PREFIX", "CREATED",
                   "EXPIRES", "REVOKED");
            size_t i;
            json_t *k;
            json_array_foreach(data, i, k) {
                printf("%-22s  %-16s  %-16s  %-14s  ", json_string_value(json_object_get(k, "id")),
                       json_string_value(json_object_get(k, "consumer")), json_string_value(json_object_get(k, "name")),
                       json_string_value(json_object_get(k, "prefix")));
                print_time(json_integer_value(json_object_get(k, "created")));
                print_time(json_integer_value(json_object_get(k, "expires")));
                printf("%s\n", json_is_true(json_object_get(k, "revoked")) ? "yes" : "no");
            }
        }
        rc = 0;
    } else if (strcmp(sub, "revoke") == 0) {
        if (optind >= argc) {
            fprintf(stderr, "sluice: key revoke needs the key's ID (sluice key list shows it)\n");
            return 2;
        }
        if (resolve_target(&t, config_path, admin, true) < 0)
            goto out;
        char path[300];
        snprintf(path, sizeof path, "/admin/v1/keys/%s", argv[optind]);
        st = admin_call(&t, "DELETE", path, NULL, &body);
        if (st != 200) {
            rc = report_error(st, body);
            goto out;
        }
        printf("revoked %s\n", argv[optind]);
        rc = 0;
    } else {
        fprintf(stderr, "sluice: unknown key command '%s'\n%s", sub, usage_key);
        return 2;
    }
    json_decref(body);
out:
    if (t.cfg)
        sl_config_unref(t.cfg);
    return rc;
}

static const char usage_usage[] =
    "usage: sluice usage [--consumer NAME] [--json] [-c FILE | --admin URL]\n"
    "\n"
    "Token usage and remaining quota per consumer in the current window, from a running\n"
    "gateway's admin API (URL and token as for sluice key).\n";

int sl_cli_usage(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"admin", required_argument, NULL, 'a'},
        {"consumer", required_argument, NULL, 'C'}, {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    const char *config_path = DEFAULT_CONFIG, *admin = NULL, *consumer = NULL;
    bool as_json = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config_path = optarg; break;
        case 'a': admin = optarg; break;
        case 'C': consumer = optarg; break;
        case 'j': as_json = true; break;
        case 'h': fputs(usage_usage, stdout); return 0;
        default: fputs(usage_usage, stderr); return 2;
        }
    }
    cli_target t = {0};
    int rc = 1;
    json_t *body = NULL;
    if (resolve_target(&t, config_path, admin, true) < 0)
        goto out;
    char path[400];
    snprintf(path, sizeof path, "/admin/v1/usage%s%s", consumer ? "?consumer=" : "", consumer ? consumer : "");
    long st = admin_call(&t, "GET", path, NULL, &body);
    if (st != 200) {
        rc = report_error(st, body);
        goto out;
    }
    json_t *data = json_object_get(body, "data");
    if (as_json) {
        char *s = json_dumps(data, JSON_INDENT(2));
        printf("%s\n", s);
        free(s);
    } else {
        printf("%-16s  %-7s  %12s  %12s  %12s  %12s  %9s  %s\n", "CONSUMER", "WINDOW", "LIMIT", "USED", "RESERVED",
               "REMAINING", "REQUESTS", "RESETS");
        size_t i;
        json_t *u;
        json_array_foreach(data, i, u) {
            const char *name = json_string_value(json_object_get(u, "consumer"));
            if (!json_object_get(u, "limit")) {
                printf("%-16s  %-7s  %12s\n", name, "-", "no quota");
                continue;
            }
            printf("%-16s  %-7s  %12lld  %12lld  %12lld  %12lld  %9lld  ", name,
                   json_string_value(json_object_get(u, "window")),
                   (long long)json_integer_value(json_object_get(u, "limit")),
                   (long long)json_integer_value(json_object_get(u, "used")),
                   (long long)json_integer_value(json_object_get(u, "reserved")),
                   (long long)json_integer_value(json_object_get(u, "remaining")),
                   (long long)json_integer_value(json_object_get(u, "requests")));
            print_time(json_integer_value(json_object_get(u, "resets_at")));
            printf("\n");
        }
    }
    rc = 0;
    json_decref(body);
    body = NULL;
out:
    json_decref(body);
    if (t.cfg)
        sl_config_unref(t.cfg);
    return rc;
}
