#include "openai_error.h"

#include <jansson.h>
#include <string.h>

char *sl_openai_error_json(const char *type, const char *code, const char *param,
                           const char *message, size_t *len)
{
    json_t *o = json_pack("{s:{s:s, s:s, s:s?, s:s?}}", "error", "message", message ? message : "",
                          "type", type, "param", param, "code", code);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!s) {
        s = strdup("{\"error\":{\"message\":\"internal error\",\"type\":\"api_error\",\"param\":null,\"code\":null}}");
    }
    if (len)
        *len = s ? strlen(s) : 0;
    return s;
}
