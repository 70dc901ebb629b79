/* OpenAI-shaped error bodies: {"error":{"message","type","param","code"}}. */
#ifndef SL_OPENAI_ERROR_H
#define SL_OPENAI_ERROR_H

#include <stddef.h>

/* Returns a malloc'd JSON text (caller frees) and its length in *len. param/code may be NULL. */
char *sl_openai_error_json(const char *type, const char *code, const char *param,
                           const char *message, size_t *len);

#endif
