/* The gateway's configuration: one YAML file, validated as a whole, immutable once loaded
 * and reference-counted (a request holds the config it started with; reload swaps). */
#ifndef SL_CONFIG_H
#define SL_CONFIG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "yaml_tree.h"

struct sl_plugin;
struct sl_static_files;

typedef struct sl_listen_conf {
    char *address;              /* "host:port", "[v6]:port" or "unix:/path" */
    char *tls_cert, *tls_key;   /* both NULL for plain HTTP */
} sl_listen_conf;

typedef enum sl_upstream_type { SL_UPSTREAM_OPENAI, SL_UPSTREAM_ENGINE } sl_upstream_type;

typedef struct sl_header_conf { char *name, *value; } sl_header_conf;

typedef struct sl_upstream_conf {
    char *name;
    sl_upstream_type type;
    /* openai */
    char *base_url;             /* e.g. https://api.deepseek.com/v1 (no trailing slash) */
    char *api_key_env;
    char *api_key;              /* read from api_key_env at load; NULL if unset */
    sl_header_conf *headers;
    size_t n_headers;
    long long connect_timeout_ms;     /* default 10 s */
    long long first_byte_timeout_ms;  /* default 120 s */
    long long total_timeout_ms;       /* default 600 s */
    long long stream_idle_timeout_ms; /* default 60 s: no bytes for this long ends a stream */
    int pool_size;                    /* max connections per worker thread, default 64 */
    /* engine */
    char *model_dir;
    char *served_model_name;    /* default: basename of model_dir */
    int workers;                /* default 1 */
    int prefix_affinity;        /* a conversation's worker may carry this many more requests
                                   than the least busy one and still get it; 0 = off (default 4) */
    int **gpus;                 /* workers lists of GPU ids, or NULL */
    int *n_gpus;
    char *backend;              /* auto | cuda | cpu */
    char **args;
    size_t n_args;
} sl_upstream_conf;

typedef struct sl_target_conf {
    char *upstream;             /* name, resolved below */
    sl_upstream_conf *up;
    char *model;                /* the model name sent upstream */
    int weight;                 /* default 1 */
} sl_target_conf;

typedef struct sl_profile_conf {
    bool has_temperature;
    double temperature;
    long long max_tokens;       /* default cap when the request has none; 0 = none */
    long long max_tokens_limit; /* requests asking more are lowered to this; 0 = none */
    bool system_prompt_merge;
    bool force_thinking;
} sl_profile_conf;

typedef struct sl_model_conf {
    char *name;
    char *alias;                /* when set, everything else is empty */
    sl_target_conf *targets;
    size_t n_targets;
    char **fallback;            /* other model names, in order */
    size_t n_fallback;
    bool sticky;                /* weighted choice sticky per consumer */
    sl_profile_conf profile;
} sl_model_conf;

typedef enum sl_window { SL_WINDOW_MINUTE, SL_WINDOW_HOUR, SL_WINDOW_DAY, SL_WINDOW_MONTH, SL_WINDOW_TOTAL } sl_window;

typedef struct sl_consumer_conf {
    char *name;
    char **models;              /* allow-list of client-facing names; NULL = all */
    size_t n_models;
    long long quota_tokens;     /* 0 = no quota */
    sl_window quota_window;
    long long rpm, tpm;         /* 0 = no limit */
    bool rate_per_model;
    bool allow_target_pin;      /* may pin a target with a request header (testing) */
    char *jwt_alg;              /* NULL, "HS256" or "RS256" */
    char *jwt_secret_env, *jwt_secret;
    char *jwt_public_key;       /* PEM file path */
    char **key_hashes;          /* keys declared by hash (sluice key hash) */
    size_t n_key_hashes;
} sl_consumer_conf;

typedef struct sl_plugin_conf {
    const struct sl_plugin *plugin;
    void *conf;                 /* what plugin->config_parse made; plugin->config_free frees */
} sl_plugin_conf;

typedef enum sl_store_backend { SL_STORE_MEMORY, SL_STORE_REDIS } sl_store_backend;

typedef struct sl_config {
    atomic_int refs;
    char *path;

    sl_listen_conf *listen;
    size_t n_listen;

    struct {
        int workers;                    /* 0 = one per core */
        long long max_body_bytes;       /* default 8 MiB */
        long long header_timeout_ms;    /* default 10 s: whole request head must arrive */
        long long idle_timeout_ms;      /* default 60 s keep-alive idle */
        long long body_timeout_ms;      /* default 60 s */
        long long shutdown_timeout_ms;  /* default 30 s to finish in-flight on SIGTERM */
        long long stream_buffer_bytes;  /* default 256 KiB: pause upstream above this */
    } server;

    struct {
        char *listen;                   /* NULL = no admin listener */
        char *token_env, *token;
    } admin;

    struct {
        sl_store_backend backend;
        char *path;                     /* memory journal */
        char *redis_url, *redis_prefix;
        char *secret_env, *secret;      /* default env SLUICE_SECRET */
        bool fail_open;                 /* on_failure: open */
        long long fsync_every_ms;       /* memory: fdatasync the journal at least this often;
                                         * 0 = every write (10 ms batches); default 1 s */
    } store;

    struct {
        char *access_log;               /* "-" = stdout (default), "off", or a file path */
        char *level;                    /* error | warn | info | debug */
        char *file;                     /* the operational log: "-" = stderr (default), or a file path */
        char *audit_log;                /* audit events (JSON lines): "-" = stdout (default), "off", or a path */
    } log;

    struct {
        char *dir;                      /* the built console; NULL = no console */
        bool client;                    /* chat page on the client listeners (default true) */
        struct sl_static_files *files;  /* dir's files, read at load; NULL when off */
    } console;

    sl_upstream_conf *upstreams;
    size_t n_upstreams;
    sl_model_conf *models;
    size_t n_models;
    sl_consumer_conf *consumers;
    size_t n_consumers;
    sl_plugin_conf *plugins;            /* in chain order; route is always last */
    size_t n_plugins;
} sl_config;

/* Load and validate path. On any error returns NULL and d holds every diagnostic.
 * Warnings (e.g. an unset *_env variable) are logged, not fatal. refs starts at 1. */
sl_config *sl_config_load(const char *path, sl_diag *d);
sl_config *sl_config_ref(sl_config *c);
void sl_config_unref(sl_config *c);

/* Find a model by client-facing name, following aliases; NULL if none. */
const sl_model_conf *sl_config_model(const sl_config *c, const char *name);
const sl_upstream_conf *sl_config_upstream(const sl_config *c, const char *name);
const sl_consumer_conf *sl_config_consumer(const sl_config *c, const char *name);

#endif
