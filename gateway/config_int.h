/* Shared by the config_*.c files only: small readers of optional keys, each leaving the
 * field as it was (its default) when the key is absent, and diagnosing a wrong value. */
#ifndef SL_CONFIG_INT_H
#define SL_CONFIG_INT_H

#include "config.h"

/* Each returns 0 when the key is absent or read, -1 when diagnosed. */
int sl_cfg_str(const sl_ynode *map, const char *key, sl_diag *d, char **out);
int sl_cfg_int(const sl_ynode *map, const char *key, sl_diag *d, long long min, long long max,
               long long *out);
int sl_cfg_int32(const sl_ynode *map, const char *key, sl_diag *d, int min, int max, int *out);
int sl_cfg_bool(const sl_ynode *map, const char *key, sl_diag *d, bool *out);
int sl_cfg_size(const sl_ynode *map, const char *key, sl_diag *d, long long min, long long *out);
int sl_cfg_duration(const sl_ynode *map, const char *key, sl_diag *d, long long min_ms, long long *out);
/* One of choices (NULL-terminated): *out = its index. */
int sl_cfg_enum(const sl_ynode *map, const char *key, sl_diag *d, const char *const *choices, int *out);
/* A *_env key: reads the variable's name into *env_name and its value into *value (NULL,
 * with a warning, when unset or empty). */
int sl_cfg_env(const sl_ynode *map, const char *key, sl_diag *d, char **env_name, char **value);
/* A list of strings (a single string is taken as a list of one). *out, *n: caller frees. */
int sl_cfg_str_list(const sl_ynode *node, sl_diag *d, char ***out, size_t *n);
/* The map under key, checked against allowed keys; NULL when absent or not a map. */
const sl_ynode *sl_cfg_section(const sl_ynode *map, const char *key, const char *const *allowed,
                               sl_diag *d);
/* "path: " of a node for messages, in buf. */
const char *sl_cfg_where(const sl_ynode *n, char *buf, size_t size);

/* Listen address check and normalisation ("8080" -> "0.0.0.0:8080"); caller frees. */
char *sl_cfg_listen_address(const sl_ynode *n, sl_diag *d);

int sl_cfg_upstreams(sl_config *c, const sl_ynode *node, sl_diag *d);
int sl_cfg_models(sl_config *c, const sl_ynode *node, sl_diag *d);
int sl_cfg_consumers(sl_config *c, const sl_ynode *node, sl_diag *d);
int sl_cfg_plugins(sl_config *c, const sl_ynode *paths, const sl_ynode *list, sl_diag *d);

void sl_cfg_free_upstream(sl_upstream_conf *u);
void sl_cfg_free_model(sl_model_conf *m);
void sl_cfg_free_consumer(sl_consumer_conf *k);
void sl_cfg_free_strings(char **v, size_t n);

#endif
