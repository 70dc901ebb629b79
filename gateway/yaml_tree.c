/* libyaml events -> sl_ynode tree with positions; aliases are expanded into copies so
 * that every node has one parent and one position, and frees simply. */
#include "yaml_tree.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

/* Alias expansion can blow up ("billion laughs"); refuse documents past this. */
#define MAX_NODES 500000

/* ---- diagnostics ---- */

static char *vformat(const char *fmt, va_list ap)
{
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        return NULL;
    return s;
}

static void diag_push(sl_diag *d, int line, int col, char *msg)
{
    if (!msg)
        return;
    char *full = NULL;
    int r;
    if (line > 0)
        r = asprintf(&full, "%s:%d:%d: %s", d->file ? d->file : "<config>", line, col, msg);
    else
        r = asprintf(&full, "%s: %s", d->file ? d->file : "<config>", msg);
    free(msg);
    if (r < 0)
        return;
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 8;
        char **l = realloc(d->lines, cap * sizeof *l);
        long long *o = realloc(d->order, cap * sizeof *o);
        if (l)
            d->lines = l;
        if (o)
            d->order = o;
        if (!l || !o) {
            free(full);
            return;
        }
        d->cap = cap;
    }
    d->order[d->n] = ((long long)line << 20) | (col & 0xfffff);
    d->lines[d->n++] = full;
}

void sl_diag_init(sl_diag *d, const char *file)
{
    memset(d, 0, sizeof *d);
    d->file = file;
}

void sl_diag_add(sl_diag *d, const sl_ynode *at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = vformat(fmt, ap);
    va_end(ap);
    diag_push(d, at ? at->line : 0, at ? at->col : 0, msg);
}

void sl_diag_add_at(sl_diag *d, int line, int col, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = vformat(fmt, ap);
    va_end(ap);
    diag_push(d, line, col, msg);
}

void sl_diag_warn(sl_diag *d, const sl_ynode *at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = vformat(fmt, ap);
    va_end(ap);
    if (!msg)
        return;
    char *full = NULL;
    int r;
    if (at)
        r = asprintf(&full, "%s:%d:%d: warning: %s", d->file ? d->file : "<config>", at->line, at->col, msg);
    else
        r = asprintf(&full, "%s: warning: %s", d->file ? d->file : "<config>", msg);
    free(msg);
    if (r < 0)
        return;
    if (!d->quiet)
        fprintf(stderr, "%s\n", full);
    if (d->n_warnings == d->cap_warnings) {
        size_t cap = d->cap_warnings ? d->cap_warnings * 2 : 4;
        char **w = realloc(d->warnings, cap * sizeof *w);
        if (!w) {
            free(full);
            return;
        }
        d->warnings = w;
        d->cap_warnings = cap;
    }
    d->warnings[d->n_warnings++] = full;
}

void sl_diag_sort(sl_diag *d)
{
    /* insertion sort: stable, and lists are short */
    for (size_t i = 1; i < d->n; i++) {
        char *l = d->lines[i];
        long long o = d->order[i];
        size_t j = i;
        for (; j > 0 && d->order[j - 1] > o; j--) {
            d->lines[j] = d->lines[j - 1];
            d->order[j] = d->order[j - 1];
        }
        d->lines[j] = l;
        d->order[j] = o;
    }
}

void sl_diag_free(sl_diag *d)
{
    for (size_t i = 0; i < d->n; i++)
        free(d->lines[i]);
    for (size_t i = 0; i < d->n_warnings; i++)
        free(d->warnings[i]);
    free(d->lines);
    free(d->order);
    free(d->warnings);
    const char *file = d->file;
    bool quiet = d->quiet;
    sl_diag_init(d, file);
    d->quiet = quiet;
}

/* ---- nodes ---- */

void sl_ynode_free(sl_ynode *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->n; i++) {
        if (n->keys)
            sl_ynode_free(n->keys[i]);
        sl_ynode_free(n->items[i]);
    }
    free(n->keys);
    free(n->items);
    free(n->scalar);
    free(n);
}

static sl_ynode *node_new(sl_ynode_type type, int line, int col)
{
    sl_ynode *n = calloc(1, sizeof *n);
    if (!n)
        return NULL;
    n->type = type;
    n->line = line;
    n->col = col;
    return n;
}

/* Appends a pair (map: key+value) or an item (seq: key NULL). 0 or -1. */
static int node_append(sl_ynode *parent, sl_ynode *key, sl_ynode *value)
{
    size_t n = parent->n;
    if (n == 0 || (n >= 4 && (n & (n - 1)) == 0)) {
        size_t cap = n ? n * 2 : 4;
        sl_ynode **items = realloc(parent->items, cap * sizeof *items);
        if (!items)
            return -1;
        parent->items = items;
        if (parent->type == SL_Y_MAP) {
            sl_ynode **keys = realloc(parent->keys, cap * sizeof *keys);
            if (!keys)
                return -1;
            parent->keys = keys;
        }
    }
    if (parent->type == SL_Y_MAP) {
        parent->keys[n] = key;
        key->parent = parent;
    }
    parent->items[n] = value;
    value->parent = parent;
    parent->n++;
    return 0;
}

/* Deep copy; *budget counts the nodes still allowed. Caller frees with sl_ynode_free. */
static sl_ynode *node_copy(const sl_ynode *src, long *budget)
{
    if (--*budget < 0)
        return NULL;
    sl_ynode *n = node_new(src->type, src->line, src->col);
    if (!n)
        return NULL;
    n->quoted = src->quoted;
    if (src->scalar && !(n->scalar = strdup(src->scalar)))
        goto fail;
    for (size_t i = 0; i < src->n; i++) {
        sl_ynode *k = NULL, *v = node_copy(src->items[i], budget);
        if (v && src->type == SL_Y_MAP)
            k = node_copy(src->keys[i], budget);
        if (!v || (src->type == SL_Y_MAP && !k) || node_append(n, k, v) < 0) {
            sl_ynode_free(k);
            sl_ynode_free(v);
            goto fail;
        }
    }
    return n;
fail:
    sl_ynode_free(n);
    return NULL;
}

/* ---- loading ---- */

typedef struct anchor {
    char *name;
    sl_ynode *node;   /* a node of the tree (not owned) */
} anchor;

typedef struct loader {
    sl_diag *d;
    sl_ynode *root;
    sl_ynode *stack[256];
    sl_ynode *pending_key[256];  /* map frames: key read, value not yet */
    char *stack_anchor[256];
    int depth;
    anchor *anchors;
    size_t n_anchors;
    long budget;
    bool failed;
} loader;

static bool is_merge_key(const sl_ynode *k)
{
    return k->type == SL_Y_SCALAR && !k->quoted && strcmp(k->scalar, "<<") == 0;
}

static int add_anchor(loader *L, char *name, sl_ynode *node)
{
    anchor *a = realloc(L->anchors, (L->n_anchors + 1) * sizeof *a);
    if (!a)
        return -1;
    L->anchors = a;
    /* a later anchor of the same name shadows an earlier one (YAML rule) */
    a[L->n_anchors].name = name;
    a[L->n_anchors].node = node;
    L->n_anchors++;
    return 0;
}

static const sl_ynode *find_anchor(loader *L, const char *name)
{
    for (size_t i = L->n_anchors; i-- > 0;)
        if (strcmp(L->anchors[i].name, name) == 0)
            return L->anchors[i].node;
    return NULL;
}

/* Anchors defined inside a subtree about to be freed must not be used after, nor walked
 * from by the next call: their node is dropped too. */
static void forget_anchors_in(loader *L, const sl_ynode *sub)
{
    for (size_t i = 0; i < L->n_anchors; i++)
        for (const sl_ynode *p = L->anchors[i].node; p; p = p->parent)
            if (p == sub) {
                L->anchors[i].name[0] = '\0';   /* never matches an alias name */
                L->anchors[i].node = NULL;
                break;
            }
}

static bool map_has_key(const sl_ynode *map, size_t upto, const char *key)
{
    for (size_t i = 0; i < upto; i++)
        if (map->keys[i]->type == SL_Y_SCALAR && strcmp(map->keys[i]->scalar, key) == 0)
            return true;
    return false;
}

/* `<<: *base` or `<<: [*a, *b]`: pairs of the merged maps whose keys this map does not
 * set itself are added (explicit keys win; earlier merged maps win over later ones). */
static void map_merge(loader *L, sl_ynode *map)
{
    for (size_t i = 0; i < map->n; i++) {
        if (!is_merge_key(map->keys[i]))
            continue;
        sl_ynode *k = map->keys[i], *v = map->items[i];
        memmove(map->keys + i, map->keys + i + 1, (map->n - i - 1) * sizeof *map->keys);
        memmove(map->items + i, map->items + i + 1, (map->n - i - 1) * sizeof *map->items);
        map->n--;
        i--;
        size_t nsrc = v->type == SL_Y_SEQ ? v->n : 1;
        for (size_t s = 0; s < nsrc; s++) {
            const sl_ynode *src = v->type == SL_Y_SEQ ? v->items[s] : v;
            if (src->type != SL_Y_MAP) {
                sl_diag_add(L->d, src, "'<<' merges maps only (write <<: *anchor of a map)");
                continue;
            }
            for (size_t j = 0; j < src->n; j++) {
                if (map_has_key(map, map->n, src->keys[j]->scalar))
                    continue;
                sl_ynode *ck = node_copy(src->keys[j], &L->budget);
                sl_ynode *cv = ck ? node_copy(src->items[j], &L->budget) : NULL;
                if (!cv || node_append(map, ck, cv) < 0) {
                    sl_ynode_free(ck);
                    sl_ynode_free(cv);
                    L->failed = true;
                    break;
                }
            }
        }
        forget_anchors_in(L, k); /* `&a <<: ...` anchors the key, freed here too */
        forget_anchors_in(L, v);
        sl_ynode_free(k);
        sl_ynode_free(v);
    }
}

static void map_check_duplicates(loader *L, const sl_ynode *map)
{
    for (size_t i = 1; i < map->n; i++) {
        const sl_ynode *k = map->keys[i];
        if (k->type != SL_Y_SCALAR)
            continue;
        for (size_t j = 0; j < i; j++) {
            const sl_ynode *p = map->keys[j];
            if (p->type == SL_Y_SCALAR && strcmp(p->scalar, k->scalar) == 0) {
                char path[256];
                sl_ynode_path(map, path, sizeof path);
                sl_diag_add(L->d, k, "%s%sduplicate key '%s' (first written at line %d)",
                            path, *path ? ": " : "", k->scalar, p->line);
                break;
            }
        }
    }
}

/* Places a finished node into its parent (or as the root). 0 or -1. */
static int place(loader *L, sl_ynode *n)
{
    if (L->depth == 0) {
        if (L->root) {
            sl_ynode_free(n);
            return 0;
        }
        L->root = n;
        return 0;
    }
    sl_ynode *top = L->stack[L->depth - 1];
    if (top->type == SL_Y_SEQ)
        return node_append(top, NULL, n);
    if (!L->pending_key[L->depth - 1]) {
        if (n->type != SL_Y_SCALAR) {
            /* diagnosed, and replaced by an empty key so that every key is a scalar */
            sl_diag_add(L->d, n, "a key must be a plain string, not a %s",
                        n->type == SL_Y_MAP ? "map" : "list");
            char *empty = strdup("");
            if (!empty)
                return -1;
            forget_anchors_in(L, n);
            for (size_t i = 0; i < n->n; i++) {
                if (n->keys)
                    sl_ynode_free(n->keys[i]);
                sl_ynode_free(n->items[i]);
            }
            free(n->keys);
            free(n->items);
            n->keys = n->items = NULL;
            n->n = 0;
            n->type = SL_Y_SCALAR;   /* in place: the caller still holds n */
            n->scalar = empty;
        }
        L->pending_key[L->depth - 1] = n;
        return 0;
    }
    sl_ynode *k = L->pending_key[L->depth - 1];
    L->pending_key[L->depth - 1] = NULL;
    if (node_append(top, k, n) < 0) {
        sl_ynode_free(k);
        return -1;
    }
    return 0;
}

static void syntax_error(loader *L, yaml_parser_t *p, const char *text, size_t len)
{
    const char *what = p->problem ? p->problem : "cannot read the YAML";
    size_t at = p->problem_mark.index;
    if (at < len && text[at] == '\t')
        what = "a tab character here: YAML indents with spaces only";
    if (p->context)
        sl_diag_add_at(L->d, (int)p->problem_mark.line + 1, (int)p->problem_mark.column + 1,
                       "YAML syntax error: %s (%s at line %d)", what, p->context,
                       (int)p->context_mark.line + 1);
    else
        sl_diag_add_at(L->d, (int)p->problem_mark.line + 1, (int)p->problem_mark.column + 1,
                       "YAML syntax error: %s", what);
}

static sl_ynode *load(yaml_parser_t *parser, const char *text, size_t len, sl_diag *d)
{
    loader L = {.d = d, .budget = MAX_NODES};
    int docs = 0;
    bool done = false;
    size_t errors_before = d->n;
    while (!done && !L.failed) {
        yaml_event_t ev;
        if (!yaml_parser_parse(parser, &ev)) {
            syntax_error(&L, parser, text, len);
            L.failed = true;
            break;
        }
        int line = (int)ev.start_mark.line + 1, col = (int)ev.start_mark.column + 1;
        sl_ynode *n = NULL;
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (++docs > 1) {
                sl_diag_add_at(d, line, col, "only one YAML document is allowed in a config file");
                L.failed = true;
            }
            break;
        case YAML_SCALAR_EVENT:
            n = node_new(SL_Y_SCALAR, line, col);
            if (!n || !(n->scalar = strndup((const char *)ev.data.scalar.value, ev.data.scalar.length))) {
                sl_ynode_free(n);
                L.failed = true;
                break;
            }
            n->quoted = ev.data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
            if (--L.budget < 0 || place(&L, n) < 0) {
                sl_ynode_free(n);
                L.failed = true;
                break;
            }
            if (ev.data.scalar.anchor) {
                char *name = strdup((const char *)ev.data.scalar.anchor);
                if (!name || add_anchor(&L, name, n) < 0) {
                    free(name);
                    L.failed = true;
                }
            }
            break;
        case YAML_ALIAS_EVENT: {
            const sl_ynode *src = find_anchor(&L, (const char *)ev.data.alias.anchor);
            if (!src) {
                sl_diag_add_at(d, line, col, "alias *%s: no anchor &%s is defined before it "
                               "(an anchor cannot refer to itself)", ev.data.alias.anchor,
                               ev.data.alias.anchor);
                n = node_new(SL_Y_SCALAR, line, col);
                if (n)
                    n->scalar = strdup("");
                if (!n || !n->scalar) {
                    sl_ynode_free(n);
                    L.failed = true;
                    break;
                }
            } else if (!(n = node_copy(src, &L.budget))) {
                L.failed = true;
                break;
            }
            if (place(&L, n) < 0) {
                sl_ynode_free(n);
                L.failed = true;
            }
            break;
        }
        case YAML_MAPPING_START_EVENT:
        case YAML_SEQUENCE_START_EVENT: {
            bool map = ev.type == YAML_MAPPING_START_EVENT;
            if (L.depth == (int)(sizeof L.stack / sizeof L.stack[0])) {
                sl_diag_add_at(d, line, col, "nesting is too deep");
                L.failed = true;
                break;
            }
            n = node_new(map ? SL_Y_MAP : SL_Y_SEQ, line, col);
            if (!n || --L.budget < 0) {
                sl_ynode_free(n);
                L.failed = true;
                break;
            }
            const yaml_char_t *a = map ? ev.data.mapping_start.anchor : ev.data.sequence_start.anchor;
            L.stack_anchor[L.depth] = a ? strdup((const char *)a) : NULL;
            L.pending_key[L.depth] = NULL;
            L.stack[L.depth++] = n;
            break;
        }
        case YAML_MAPPING_END_EVENT:
        case YAML_SEQUENCE_END_EVENT: {
            n = L.stack[--L.depth];
            char *a = L.stack_anchor[L.depth];
            if (n->type == SL_Y_MAP)
                map_merge(&L, n);
            if (place(&L, n) < 0) {
                sl_ynode_free(n);
                free(a);
                L.failed = true;
                break;
            }
            if (n->type == SL_Y_MAP)   /* placed: its path is known for the message */
                map_check_duplicates(&L, n);
            if (a && add_anchor(&L, a, n) < 0) {
                free(a);
                L.failed = true;
            }
            break;
        }
        default:
            break;
        }
        yaml_event_delete(&ev);
    }

    if (L.failed && d->n == errors_before)
        sl_diag_add_at(d, 0, 0, L.budget < 0 ? "the document is too large once its aliases are expanded"
                                              : "out of memory reading the YAML");
    while (L.depth > 0) {
        L.depth--;
        sl_ynode_free(L.pending_key[L.depth]);
        free(L.stack_anchor[L.depth]);
        sl_ynode_free(L.stack[L.depth]);
    }
    for (size_t i = 0; i < L.n_anchors; i++)
        free(L.anchors[i].name);
    free(L.anchors);
    if (L.failed) {
        sl_ynode_free(L.root);
        return NULL;
    }
    if (!L.root) {
        /* an empty document: an empty map, so "nothing configured" uses the defaults */
        L.root = node_new(SL_Y_MAP, 1, 1);
    }
    return L.root;
}

sl_ynode *sl_yaml_load_string(const char *text, size_t len, const char *name, sl_diag *d)
{
    if (!d->file)
        d->file = name;
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        sl_diag_add_at(d, 0, 0, "out of memory");
        return NULL;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    sl_ynode *root = load(&parser, text, len, d);
    yaml_parser_delete(&parser);
    return root;
}

/* Config files are small; a bigger one is a mistake (a wrong path). */
#define MAX_FILE (64u << 20)

sl_ynode *sl_yaml_load_file(const char *path, sl_diag *d)
{
    if (!d->file)
        d->file = path;
    char *text = NULL;
    size_t len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        sl_diag_add_at(d, 0, 0, "cannot open: %s", strerror(errno));
        return NULL;
    }
    for (;;) {
        char *grown = realloc(text, len + 65536 + 1);
        if (!grown) {
            sl_diag_add_at(d, 0, 0, "out of memory");
            goto fail;
        }
        text = grown;
        size_t got = fread(text + len, 1, 65536, f);
        len += got;
        if (got < 65536)
            break;
        if (len > MAX_FILE) {
            sl_diag_add_at(d, 0, 0, "cannot read: larger than %u MiB (is this the config file?)", MAX_FILE >> 20);
            goto fail;
        }
    }
    if (ferror(f)) {
        sl_diag_add_at(d, 0, 0, "cannot read: %s", strerror(errno));
        goto fail;
    }
    fclose(f);
    sl_ynode *root = sl_yaml_load_string(text, len, path, d);
    free(text);
    return root;
fail:
    fclose(f);
    free(text);
    return NULL;
}
