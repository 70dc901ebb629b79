/* An OpenAI-shaped error: {"error":{"message","type","param","code"}} plus its HTTP status. */
#ifndef SL_API_ERROR_H
#define SL_API_ERROR_H

typedef struct sl_api_error {
    int status;
    const char *type;      /* static string */
    const char *code;      /* static string or NULL */
    char param[64];        /* empty = null */
    char message[512];
} sl_api_error;

__attribute__((format(printf, 6, 7)))
void sl_api_error_set(sl_api_error *e, int status, const char *type, const char *code,
                      const char *param, const char *fmt, ...);

/* 400 invalid_request_error / invalid_request, the common case. */
__attribute__((format(printf, 3, 4)))
void sl_api_error_bad(sl_api_error *e, const char *param, const char *fmt, ...);

/* The JSON body of the error. Caller frees. */
char *sl_api_error_json(const sl_api_error *e);

#endif
