/* Chat templates: the model's tokenizer_config.json names its template by its text; we
 * recognise the family and its variant from that text and render in C what Hugging
 * Face's jinja2 rendering of the same template gives (tests/unit/text checks this against
 * jinja2 on the real templates). */
#include "chat_template.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sl_chat_template {
    sl_template_kind kind;
    char *bos, *eos;
    bool reasoning;
    /* DeepSeek */
    bool ds_join_systems;      /* V3: systems joined by \n\n; R1: the last one wins */
    bool ds_drop_think;        /* R1: history keeps only what follows </think> */
    bool ds_think_prompt;      /* R1 (2025): generation prompt ends with <think>\n */
    /* ChatML */
    char *default_system;      /* Qwen2/2.5: written when messages has no system */
    bool qwen3;                /* Qwen3: <think> blocks after the last user query */
    /* Llama 3 */
    bool llama_prompt_always;  /* some Llama 3 templates add the assistant header always */
};

/* A growing string. On allocation failure it stays failed and the render reports it. */
typedef struct strbuf {
    char *s;
    size_t len, cap;
    bool failed;
} strbuf;

static void sb_add(strbuf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->failed = true;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

static void sb_puts(strbuf *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

/* ---- recognising a template ---------------------------------------------------- */

static char *token_text(json_t *v)
{
    if (json_is_object(v))
        v = json_object_get(v, "content");
    return strdup(json_is_string(v) ? json_string_value(v) : "");
}

/* Qwen2-style default system prompt: '<|im_start|>system\n' followed by literal text. */
static char *find_default_system(const char *tpl)
{
    static const char head[] = "<|im_start|>system\\n";
    for (const char *p = strstr(tpl, head); p; p = strstr(p + 1, head)) {
        const char *text = p + strlen(head), *end = strstr(text, "<|im_end|>");
        if (!end || *text == '\'' || *text == '"')
            continue;
        strbuf b = {0};
        for (const char *q = text; q < end; q++) {
            if (q[0] == '\\' && q + 1 < end) {
                q++;
                sb_add(&b, *q == 'n' ? "\n" : q, 1);
            } else {
                sb_add(&b, q, 1);
            }
        }
        if (b.failed)
            return NULL;
        return b.s ? b.s : strdup("");
    }
    return NULL;
}

sl_chat_template *sl_chat_template_load(const char *path, sl_err *err)
{
    json_error_t je;
    sl_chat_template *t = NULL;
    /* INT_AS_REAL: some configs hold model_max_length = 1e30 */
    json_t *root = json_load_file(path, JSON_DECODE_INT_AS_REAL, &je);
    if (!root) {
        sl_err_set(err, "%s:%d:%d: %s", path, je.line, je.column, je.text);
        return NULL;
    }
    json_t *jt = json_object_get(root, "chat_template");
    if (json_is_array(jt)) { /* named templates: use "default" */
        size_t i;
        json_t *e, *found = NULL;
        json_array_foreach(jt, i, e)
            if (json_is_string(json_object_get(e, "name")) &&
                !strcmp(json_string_value(json_object_get(e, "name")), "default"))
                found = json_object_get(e, "template");
        jt = found;
    }
    const char *tpl = json_string_value(jt);
    if (!tpl) {
        sl_err_set(err, "%s has no chat_template string", path);
        goto fail;
    }
    t = calloc(1, sizeof *t);
    if (!t)
        goto oom;
    t->bos = token_text(json_object_get(root, "bos_token"));
    t->eos = token_text(json_object_get(root, "eos_token"));
    if (!t->bos || !t->eos)
        goto oom;
    t->reasoning = strstr(tpl, "</think>") != NULL;
    if (strstr(tpl, "<｜User｜>") && strstr(tpl, "<｜Assistant｜>")) {
        t->kind = SL_TEMPLATE_DEEPSEEK_R1;
        t->ds_join_systems = strstr(tpl, "is_first_sp") != NULL;
        t->ds_drop_think = strstr(tpl, "split('</think>')") != NULL;
        t->ds_think_prompt = strstr(tpl, "<｜Assistant｜><think>") != NULL;
    } else if (strstr(tpl, "<|im_start|>")) {
        t->kind = SL_TEMPLATE_CHATML;
        t->qwen3 = strstr(tpl, "reasoning_content") != NULL;
        t->default_system = find_default_system(tpl);
    } else if (strstr(tpl, "<|start_header_id|>")) {
        t->kind = SL_TEMPLATE_LLAMA3;
        if (strstr(tpl, "Cutting Knowledge Date")) {
            sl_err_set(err, "%s: the Llama 3.1 tool-calling chat template is not supported yet", path);
            goto fail;
        }
        t->llama_prompt_always = strstr(tpl, "add_generation_prompt") == NULL;
    } else {
        sl_err_set(err, "%s: chat_template not recognised (sluice knows DeepSeek-R1, Qwen ChatML and Llama 3)", path);
        goto fail;
    }
    json_decref(root);
    return t;
oom:
    sl_err_set(err, "out of memory");
fail:
    json_decref(root);
    sl_chat_template_free(t);
    return NULL;
}

void sl_chat_template_free(sl_chat_template *t)
{
    if (!t)
        return;
    free(t->bos);
    free(t->eos);
    free(t->default_system);
    free(t);
}

sl_template_kind sl_chat_template_kind(const sl_chat_template *t)
{
    return t->kind;
}

const char *sl_chat_template_bos_token(const sl_chat_template *t)
{
    return t->bos;
}

const char *sl_chat_template_eos_token(const sl_chat_template *t)
{
    return t->eos;
}

const char *sl_chat_template_end_of_turn(const sl_chat_template *t)
{
    switch (t->kind) {
    case SL_TEMPLATE_DEEPSEEK_R1: return "<｜end▁of▁sentence｜>";
    case SL_TEMPLATE_CHATML: return "<|im_end|>";
    case SL_TEMPLATE_LLAMA3: return "<|eot_id|>";
    }
    return "";
}

bool sl_chat_template_is_reasoning(const sl_chat_template *t)
{
    return t->reasoning;
}

/* ---- messages -------------------------------------------------------------------- */

typedef struct msg {
    const char *role;
    char *content;        /* NULL when the message has none (assistant with tool calls) */
    const char *reasoning; /* reasoning_content, if given */
    json_t *tool_calls;   /* non-empty array or NULL */
} msg;

/* Content as one string: text parts are joined by \n, as vLLM does for text-only models. */
static int content_text(json_t *c, size_t idx, char **out, sl_err *err)
{
    *out = NULL;
    if (!c || json_is_null(c))
        return 0;
    if (json_is_string(c)) {
        *out = strdup(json_string_value(c));
        goto done;
    }
    if (!json_is_array(c)) {
        sl_err_set(err, "messages[%zu].content must be a string or an array of text parts", idx);
        return -1;
    }
    strbuf b = {0};
    sb_add(&b, "", 0);
    size_t i;
    json_t *part;
    json_array_foreach(c, i, part) {
        const char *type = json_string_value(json_object_get(part, "type"));
        json_t *text = json_object_get(part, "text");
        if (!type || strcmp(type, "text") || !json_is_string(text)) {
            free(b.s);
            sl_err_set(err, "messages[%zu].content[%zu]: only {\"type\": \"text\", \"text\": ...} parts are "
                            "supported by this model", idx, i);
            return -1;
        }
        if (i)
            sb_add(&b, "\n", 1);
        sb_add(&b, json_string_value(text), json_string_length(text));
    }
    if (b.failed) {
        free(b.s);
        b.s = NULL;
    }
    *out = b.s;
done:
    if (!*out) {
        sl_err_set(err, "out of memory");
        return -1;
    }
    return 0;
}

static void free_msgs(msg *m, size_t n)
{
    for (size_t i = 0; m && i < n; i++)
        free(m[i].content);
    free(m);
}

static msg *read_msgs(const json_t *messages, bool any_role, size_t *n, sl_err *err)
{
    if (!json_is_array(messages) || !json_array_size(messages)) {
        sl_err_set(err, "messages must be a non-empty array");
        return NULL;
    }
    *n = json_array_size(messages);
    msg *m = calloc(*n, sizeof *m);
    if (!m) {
        sl_err_set(err, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < *n; i++) {
        json_t *jm = json_array_get(messages, i);
        const char *role = json_string_value(json_object_get(jm, "role"));
        if (!role) {
            sl_err_set(err, "messages[%zu].role must be a string", i);
            goto fail;
        }
        if (!any_role && strcmp(role, "system") && strcmp(role, "user") && strcmp(role, "assistant") &&
            strcmp(role, "tool")) {
            sl_err_set(err, "messages[%zu].role \"%s\" is not one of system, user, assistant, tool", i, role);
            goto fail;
        }
        m[i].role = role;
        if (content_text(json_object_get(jm, "content"), i, &m[i].content, err))
            goto fail;
        json_t *tc = json_object_get(jm, "tool_calls");
        if (json_is_array(tc) && json_array_size(tc) && !strcmp(role, "assistant"))
            m[i].tool_calls = tc;
        m[i].reasoning = json_string_value(json_object_get(jm, "reasoning_content"));
        if (!m[i].content && !m[i].tool_calls) {
            sl_err_set(err, "messages[%zu].content is missing", i);
            goto fail;
        }
    }
    return m;
fail:
    free_msgs(m, *n);
    return NULL;
}

static bool is(const msg *m, const char *role)
{
    return !strcmp(m->role, role);
}

static const char *str_or_empty(const char *s)
{
    return s ? s : "";
}

/* The function name/arguments of an OpenAI tool call (or of a bare {name, arguments}). */
static json_t *call_function(json_t *call)
{
    json_t *f = json_object_get(call, "function");
    return json_is_object(f) ? f : call;
}

/* Python's json.dumps(x, ensure_ascii=False), as HF's tojson filter writes it. */
static void tojson(strbuf *b, json_t *v)
{
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t n = json_string_length(v);
        sb_add(b, "\"", 1);
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)s[i];
            char esc[8];
            switch (c) {
            case '"': sb_add(b, "\\\"", 2); break;
            case '\\': sb_add(b, "\\\\", 2); break;
            case '\n': sb_add(b, "\\n", 2); break;
            case '\r': sb_add(b, "\\r", 2); break;
            case '\t': sb_add(b, "\\t", 2); break;
            case '\b': sb_add(b, "\\b", 2); break;
            case '\f': sb_add(b, "\\f", 2); break;
            default:
                if (c < 0x20) {
                    snprintf(esc, sizeof esc, "\\u%04x", c);
                    sb_add(b, esc, 6);
                } else {
                    sb_add(b, (const char *)&s[i], 1);
                }
            }
        }
        sb_add(b, "\"", 1);
        return;
    }
    if (json_is_object(v)) {
        const char *k;
        json_t *x;
        bool first = true;
        sb_add(b, "{", 1);
        json_object_foreach(v, k, x) {
            if (!first)
                sb_add(b, ", ", 2);
            first = false;
            json_t *key = json_string(k);
            tojson(b, key);
            json_decref(key);
            sb_add(b, ": ", 2);
            tojson(b, x);
        }
        sb_add(b, "}", 1);
        return;
    }
    if (json_is_array(v)) {
        size_t i;
        json_t *x;
        sb_add(b, "[", 1);
        json_array_foreach(v, i, x) {
            if (i)
                sb_add(b, ", ", 2);
            tojson(b, x);
        }
        sb_add(b, "]", 1);
        return;
    }
    if (json_is_true(v) || json_is_false(v) || json_is_null(v)) {
        sb_puts(b, json_is_true(v) ? "true" : json_is_false(v) ? "false" : "null");
        return;
    }
    char *s = json_dumps(v, JSON_ENCODE_ANY);
    if (s)
        sb_puts(b, s);
    free(s);
}

/* ---- DeepSeek (V3 and R1 / R1-Distill) --------------------------------------------- */

static void ds_tool_call(strbuf *b, json_t *call, const char *prefix)
{
    json_t *f = json_object_get(call, "function");
    sb_puts(b, prefix);
    sb_puts(b, "<｜tool▁call▁begin｜>");
    sb_puts(b, str_or_empty(json_string_value(json_object_get(call, "type"))));
    sb_puts(b, "<｜tool▁sep｜>");
    sb_puts(b, str_or_empty(json_string_value(json_object_get(f, "name"))));
    sb_puts(b, "\n```json\n");
    sb_puts(b, str_or_empty(json_string_value(json_object_get(f, "arguments"))));
    sb_puts(b, "\n```<｜tool▁call▁end｜>");
}

static void render_deepseek(const sl_chat_template *t, const msg *m, size_t n, bool gen, strbuf *b)
{
    /* the flags live across messages, as the template's namespace does (is_first and
     * is_output_first are never reset there either) */
    bool is_first = false, is_tool = false, is_output_first = true, first_sp = true;
    sb_puts(b, t->bos);
    if (t->ds_join_systems) {
        for (size_t i = 0; i < n; i++) {
            if (!is(&m[i], "system"))
                continue;
            if (!first_sp)
                sb_puts(b, "\n\n");
            sb_puts(b, str_or_empty(m[i].content));
            first_sp = false;
        }
    } else {
        for (size_t i = n; i-- > 0;)
            if (is(&m[i], "system")) {
                sb_puts(b, str_or_empty(m[i].content));
                break;
            }
    }
    for (size_t i = 0; i < n; i++) {
        const msg *x = &m[i];
        if (is(x, "user")) {
            is_tool = false;
            sb_puts(b, "<｜User｜>");
            sb_puts(b, x->content);
        }
        if (is(x, "assistant") && !x->content) {
            is_tool = false;
            size_t k;
            json_t *call;
            json_array_foreach(x->tool_calls, k, call) {
                if (!is_first) {
                    ds_tool_call(b, call, "<｜Assistant｜><｜tool▁calls▁begin｜>");
                    is_first = true;
                } else {
                    ds_tool_call(b, call, "\n");
                    sb_puts(b, "<｜tool▁calls▁end｜><｜end▁of▁sentence｜>");
                }
            }
        }
        if (is(x, "assistant") && x->content) {
            if (is_tool) {
                sb_puts(b, "<｜tool▁outputs▁end｜>");
                sb_puts(b, x->content);
                sb_puts(b, "<｜end▁of▁sentence｜>");
                is_tool = false;
            } else {
                const char *c = x->content;
                if (t->ds_drop_think)
                    for (const char *p = strstr(c, "</think>"); p; p = strstr(p + 1, "</think>"))
                        c = p + strlen("</think>");
                sb_puts(b, "<｜Assistant｜>");
                sb_puts(b, c);
                sb_puts(b, "<｜end▁of▁sentence｜>");
            }
        }
        if (is(x, "tool")) {
            is_tool = true;
            sb_puts(b, is_output_first ? "<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>" : "\n<｜tool▁output▁begin｜>");
            sb_puts(b, x->content);
            sb_puts(b, "<｜tool▁output▁end｜>");
            is_output_first = false;
        }
    }
    if (is_tool)
        sb_puts(b, "<｜tool▁outputs▁end｜>");
    if (gen && !is_tool)
        sb_puts(b, t->ds_think_prompt ? "<｜Assistant｜><think>\n" : "<｜Assistant｜>");
}

/* ---- ChatML (Qwen2, Qwen2.5, Qwen3) ------------------------------------------------ */

static bool starts_with(const char *s, const char *p)
{
    return !strncmp(s, p, strlen(p));
}

static bool ends_with(const char *s, const char *p)
{
    size_t n = strlen(s), k = strlen(p);
    return n >= k && !memcmp(s + n - k, p, k);
}

/* s[a, e) with the given char stripped off the left and/or right, as str.strip(ch) */
static void strip_ch(const char **a, const char **e, char ch, bool left, bool right)
{
    while (left && *a < *e && **a == ch)
        (*a)++;
    while (right && *e > *a && (*e)[-1] == ch)
        (*e)--;
}

static void chatml_tool_calls(const sl_chat_template *t, strbuf *b, const msg *x, bool has_content)
{
    size_t k;
    json_t *call;
    json_array_foreach(x->tool_calls, k, call) {
        json_t *f = call_function(call), *args = json_object_get(f, "arguments");
        if (!t->qwen3 || has_content || k)
            sb_puts(b, "\n");
        sb_puts(b, "<tool_call>\n{\"name\": \"");
        sb_puts(b, str_or_empty(json_string_value(json_object_get(f, "name"))));
        sb_puts(b, "\", \"arguments\": ");
        if (t->qwen3 && json_is_string(args))
            sb_puts(b, json_string_value(args));
        else
            tojson(b, args);
        sb_puts(b, "}\n</tool_call>");
    }
}

static void render_chatml(const sl_chat_template *t, const msg *m, size_t n, bool gen, strbuf *b)
{
    if (is(&m[0], "system")) {
        sb_puts(b, "<|im_start|>system\n");
        sb_puts(b, str_or_empty(m[0].content));
        sb_puts(b, "<|im_end|>\n");
    } else if (t->default_system) {
        sb_puts(b, "<|im_start|>system\n");
        sb_puts(b, t->default_system);
        sb_puts(b, "<|im_end|>\n");
    }
    size_t last_query = n - 1;
    for (size_t i = n; i-- > 0;)
        if (is(&m[i], "user") && m[i].content &&
            !(starts_with(m[i].content, "<tool_response>") && ends_with(m[i].content, "</tool_response>"))) {
            last_query = i;
            break;
        }
    for (size_t i = 0; i < n; i++) {
        const msg *x = &m[i];
        const char *content = str_or_empty(x->content);
        if (is(x, "user") || (is(x, "system") && i) || (!t->qwen3 && is(x, "assistant") && !x->tool_calls)) {
            sb_puts(b, "<|im_start|>");
            sb_puts(b, x->role);
            sb_puts(b, "\n");
            sb_puts(b, content);
            sb_puts(b, "<|im_end|>\n");
        } else if (is(x, "assistant") && !t->qwen3) {
            sb_puts(b, "<|im_start|>assistant");
            if (*content) {
                sb_puts(b, "\n");
                sb_puts(b, content);
            }
            chatml_tool_calls(t, b, x, *content);
            sb_puts(b, "<|im_end|>\n");
        } else if (is(x, "assistant")) {
            const char *c = content, *ce = content + strlen(content);
            const char *r = "", *re = r;
            if (x->reasoning) {
                r = x->reasoning;
                re = r + strlen(r);
            } else if (strstr(content, "</think>")) {
                const char *first = strstr(content, "</think>"), *last = first;
                for (const char *p = first; p; p = strstr(p + 1, "</think>"))
                    last = p;
                c = last + strlen("</think>");
                strip_ch(&c, &ce, '\n', true, false);
                r = content;
                re = first;
                strip_ch(&r, &re, '\n', false, true);
                for (const char *p = r; (p = strstr(p, "<think>")) && p < re; p++)
                    if (p + strlen("<think>") <= re)
                        r = p + strlen("<think>");
                strip_ch(&r, &re, '\n', true, false);
            }
            sb_puts(b, "<|im_start|>assistant\n");
            if (i > last_query && (i == n - 1 || re > r)) {
                strip_ch(&r, &re, '\n', true, true);
                strip_ch(&c, &ce, '\n', true, false);
                sb_puts(b, "<think>\n");
                sb_add(b, r, (size_t)(re - r));
                sb_puts(b, "\n</think>\n\n");
            }
            sb_add(b, c, (size_t)(ce - c));
            if (x->tool_calls)
                chatml_tool_calls(t, b, x, ce > c);
            sb_puts(b, "<|im_end|>\n");
        } else if (is(x, "tool")) {
            if (i == 0 || !is(&m[i - 1], "tool"))
                sb_puts(b, "<|im_start|>user");
            sb_puts(b, "\n<tool_response>\n");
            sb_puts(b, content);
            sb_puts(b, "\n</tool_response>");
            if (i == n - 1 || !is(&m[i + 1], "tool"))
                sb_puts(b, "<|im_end|>\n");
        }
    }
    if (gen)
        sb_puts(b, "<|im_start|>assistant\n");
}

/* ---- Llama 3 ------------------------------------------------------------------------ */

/* Length of the Python-whitespace character at s (str.strip() with no argument), or 0. */
static size_t py_space(const unsigned char *s, size_t n)
{
    if (!n)
        return 0;
    if (s[0] == ' ' || (s[0] >= 0x09 && s[0] <= 0x0D) || (s[0] >= 0x1C && s[0] <= 0x1F))
        return 1;
    if (n >= 2 && s[0] == 0xC2 && (s[1] == 0x85 || s[1] == 0xA0))
        return 2;
    if (n >= 3 && s[0] == 0xE1 && s[1] == 0x9A && s[2] == 0x80)
        return 3;
    if (n >= 3 && s[0] == 0xE2 && s[1] == 0x80 && ((s[2] >= 0x80 && s[2] <= 0x8A) || s[2] == 0xA8 || s[2] == 0xA9 || s[2] == 0xAF))
        return 3;
    if (n >= 3 && s[0] == 0xE2 && s[1] == 0x81 && s[2] == 0x9F)
        return 3;
    if (n >= 3 && s[0] == 0xE3 && s[1] == 0x80 && s[2] == 0x80)
        return 3;
    return 0;
}

static void py_trim(const char **a, const char **e)
{
    size_t k;
    while ((k = py_space((const unsigned char *)*a, (size_t)(*e - *a))))
        *a += k;
    while (*e > *a) {
        const char *p = *e - 1; /* the start of the last character */
        while (p > *a && ((unsigned char)*p & 0xC0) == 0x80)
            p--;
        if (py_space((const unsigned char *)p, (size_t)(*e - p)) != (size_t)(*e - p))
            break;
        *e = p;
    }
}

static void render_llama3(const sl_chat_template *t, const msg *m, size_t n, bool gen, strbuf *b)
{
    for (size_t i = 0; i < n; i++) {
        const char *c = str_or_empty(m[i].content), *ce = c + strlen(c);
        py_trim(&c, &ce);
        if (i == 0)
            sb_puts(b, t->bos);
        sb_puts(b, "<|start_header_id|>");
        sb_puts(b, m[i].role);
        sb_puts(b, "<|end_header_id|>\n\n");
        sb_add(b, c, (size_t)(ce - c));
        sb_puts(b, "<|eot_id|>");
    }
    if (gen || t->llama_prompt_always)
        sb_puts(b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

int sl_chat_template_render(const sl_chat_template *t, const json_t *messages, bool add_generation_prompt,
                            char **out, sl_err *err)
{
    size_t n;
    *out = NULL;
    msg *m = read_msgs(messages, t->kind == SL_TEMPLATE_LLAMA3, &n, err);
    if (!m)
        return -1;
    strbuf b = {0};
    sb_add(&b, "", 0);
    switch (t->kind) {
    case SL_TEMPLATE_DEEPSEEK_R1: render_deepseek(t, m, n, add_generation_prompt, &b); break;
    case SL_TEMPLATE_CHATML: render_chatml(t, m, n, add_generation_prompt, &b); break;
    case SL_TEMPLATE_LLAMA3: render_llama3(t, m, n, add_generation_prompt, &b); break;
    }
    free_msgs(m, n);
    if (b.failed) {
        free(b.s);
        sl_err_set(err, "out of memory rendering the chat template");
        return -1;
    }
    *out = b.s;
    return 0;
}
