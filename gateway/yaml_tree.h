/* A YAML document (libyaml) as a tree that remembers where every node was written, so
 * that validation can report FILE:LINE:COL for any mistake. Anchors/aliases are resolved. */
#ifndef SL_YAML_TREE_H
#define SL_YAML_TREE_H

#include <stdbool.h>
#include <stddef.h>

typedef enum sl_ynode_type { SL_Y_SCALAR, SL_Y_MAP, SL_Y_SEQ } sl_ynode_type;

typedef struct sl_ynode sl_ynode;
struct sl_ynode {
    sl_ynode_type type;
    int line, col;              /* 1-based, where the node starts */
    char *scalar;               /* SL_Y_SCALAR: the text (never NULL for scalars) */
    bool quoted;                /* scalar was quoted: "123" is a string, not a number */
    size_t n;                   /* SL_Y_MAP: pairs; SL_Y_SEQ: items */
    sl_ynode **keys;            /* SL_Y_MAP: key nodes, always scalars (others are diagnosed) */
    sl_ynode **items;           /* SL_Y_MAP: values; SL_Y_SEQ: items */
    sl_ynode *parent;           /* the map or seq holding this node (keys too); NULL at root */
};

/* Diagnostics: every error of a config, in file order, as "FILE:LINE:COL: message". */
typedef struct sl_diag {
    const char *file;
    char **lines;
    size_t n, cap;
    long long *order;           /* line << 20 | col of each line, for sl_diag_sort */
    char **warnings;            /* "FILE:LINE:COL: warning: ...", also printed to stderr */
    size_t n_warnings, cap_warnings;
    bool quiet;                 /* do not print warnings to stderr (tests) */
} sl_diag;

void sl_diag_init(sl_diag *d, const char *file);
__attribute__((format(printf, 3, 4)))
void sl_diag_add(sl_diag *d, const sl_ynode *at, const char *fmt, ...);
/* A warning: kept in d->warnings and printed to stderr unless d->quiet. Not an error. */
__attribute__((format(printf, 3, 4)))
void sl_diag_warn(sl_diag *d, const sl_ynode *at, const char *fmt, ...);
/* An error at a position that has no node (syntax errors); line/col 1-based, 0 = none. */
__attribute__((format(printf, 4, 5)))
void sl_diag_add_at(sl_diag *d, int line, int col, const char *fmt, ...);
/* Order the errors by position (stable), so they read in file order. */
void sl_diag_sort(sl_diag *d);
void sl_diag_free(sl_diag *d);

/* Parse path. Syntax errors go to d (with position) and give NULL. Mistakes that leave a
 * usable tree (duplicate keys, unknown aliases) go to d and the tree is returned, so that
 * validation can report more: check d->n. Caller frees with sl_ynode_free. */
sl_ynode *sl_yaml_load_file(const char *path, sl_diag *d);
sl_ynode *sl_yaml_load_string(const char *text, size_t len, const char *name, sl_diag *d);
void sl_ynode_free(sl_ynode *n);

/* Helpers for schema checks; each adds a diagnostic and returns -1 on a wrong value. */
const sl_ynode *sl_ymap_get(const sl_ynode *map, const char *key);
/* "upstreams.deepseek.timeouts.connect", "listen[1].address"; "" for the root.
 * Writes at most size bytes into buf (always terminated) and returns buf. */
char *sl_ynode_path(const sl_ynode *n, char *buf, size_t size);
/* A plain ~, null or empty scalar (what `key:` with nothing after it gives). */
bool sl_ynode_is_null(const sl_ynode *n);
/* Every key of map must be one of allowed (NULL-terminated; "x-*" allows a prefix): others
 * are diagnosed, with a
 * "did you mean" when one is close, and a pointer to K_env when K_env is allowed (secrets).
 * Returns -1 when a key was diagnosed (or map is not a map). */
int sl_ymap_check_keys(const sl_ynode *map, const char *const *allowed, sl_diag *d);
/* *out gets a strdup (caller frees), replacing (and freeing) what *out held. */
int sl_ynode_string(const sl_ynode *n, sl_diag *d, char **out);
int sl_ynode_int(const sl_ynode *n, sl_diag *d, long long min, long long max, long long *out);
int sl_ynode_double(const sl_ynode *n, sl_diag *d, double *out);
int sl_ynode_bool(const sl_ynode *n, sl_diag *d, bool *out);
int sl_ynode_size(const sl_ynode *n, sl_diag *d, long long *bytes);      /* 512, 64KiB, 256MiB, 1GiB */
int sl_ynode_duration_ms(const sl_ynode *n, sl_diag *d, long long *ms);  /* 250ms, 5s, 2m, 1h, 30d */
/* The choice (NULL-terminated list) close enough to word to be a typo of it, or NULL. */
const char *sl_closest_word(const char *word, const char *const *choices);
/* Parse unit strings outside YAML too (CLI flags like --expires 30d). 0 or -1.
 * Sizes: plain integer = bytes; B, KiB, MiB, GiB, TiB (powers of 1024); KB, MB, GB, TB
 * (powers of 1000); a fraction is allowed (1.5GiB) and rounds down to whole bytes.
 * Durations: one or more NUMBER UNIT parts (1h30m), units ms, s, m, h, d; a plain number
 * alone is seconds. Negative values are refused. */
int sl_parse_size(const char *s, long long *bytes);
int sl_parse_duration_ms(const char *s, long long *ms);

#endif
