#include "api_error.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Truncation may cut a UTF-8 character; drop its leading bytes so the JSON stays valid. */
static void trim_partial_utf8(char *s)
{
    size_t n = strlen(s), i = n;
    while (i > 0 && ((unsigned char)s[i - 1] & 0xC0) == 0x80)
        i--;
    if (i == 0 || (unsigned char)s[i - 1] < 0xC0)
        return;
    unsigned char lead = (unsigned char)s[i - 1];
    size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
    if (n - (i - 1) < need)
        s[i - 1] = '\0';
}

static void set_v(sl_api_error *e, int status, const char *type, const char *code,
                  const char *param, const char *fmt, va_list ap)
{
    e->status = status;
    e->type = type;
    e->code = code;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    trim_partial_utf8(e->message);
}

void sl_api_error_set(sl_api_error *e, int status, const char *type, const char *code,
                      const char *param, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_v(e, status, type, code, param, fmt, ap);
    va_end(ap);
}

void sl_api_error_bad(sl_api_error *e, const char *param, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_v(e, 400, "invalid_request_error", "invalid_request", param, fmt, ap);
    va_end(ap);
}

char *sl_api_error_json(const sl_api_error *e)
{
    json_t *inner = json_pack("{s:s, s:s, s:o, s:o}",
        "message", e->message,
        "type", e->type ? e->type : "api_error",
        "param", e->param[0] ? json_string(e->param) : json_null(),
        "code", e->code ? json_string(e->code) : json_null());
    json_t *root = json_pack("{s:o}", "error", inner);
    char *s = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return s;
}
