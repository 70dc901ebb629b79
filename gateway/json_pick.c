#include "json_pick.h"

#include <string.h>

void sl_json_pick(const json_t *o, const char *const *names, json_t **out)
{
    size_t n = 0;
    while (names[n])
        out[n++] = NULL;
    if (!json_is_object(o))
        return;
    for (void *it = json_object_iter((json_t *)o); it; it = json_object_iter_next((json_t *)o, it)) {
        const char *key = json_object_iter_key(it);
        for (size_t i = 0; i < n; i++) /* the first byte first: most members differ there */
            if (!out[i] && key[0] == names[i][0] && strcmp(key, names[i]) == 0) {
                out[i] = json_object_iter_value(it);
                break;
            }
    }
}
