/* Prints our rendering of chat messages as JSON, for template_check.py to compare with
 * jinja2. stdin: one {"messages": [...], "add_generation_prompt": bool} per line;
 * stdout: one {"kind": ..., "out": "..."} or {"error": "..."} per line.
 * usage: tmpl_render TOKENIZER_CONFIG_JSON */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "chat_template.h"

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: tmpl_render TOKENIZER_CONFIG_JSON < cases.jsonl\n");
        return 2;
    }
    sl_err err = {0};
    sl_chat_template *t = sl_chat_template_load(argv[1], &err);
    if (!t) {
        fprintf(stderr, "tmpl_render: %s\n", err.msg);
        return 1;
    }
    static const char *kinds[] = {"deepseek_r1", "chatml", "llama3"};
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    while ((got = getline(&line, &cap, stdin)) > 0) {
        json_error_t je;
        json_t *c = json_loadb(line, (size_t)got, 0, &je), *res;
        char *out = NULL;
        if (!c)
            res = json_pack("{s:s}", "error", je.text);
        else if (sl_chat_template_render(t, json_object_get(c, "messages"),
                                         json_is_true(json_object_get(c, "add_generation_prompt")), &out, &err))
            res = json_pack("{s:s}", "error", err.msg);
        else
            res = json_pack("{s:s,s:s,s:b}", "kind", kinds[sl_chat_template_kind(t)], "out", out, "reasoning",
                            sl_chat_template_is_reasoning(t));
        char *s = json_dumps(res, JSON_COMPACT);
        puts(s);
        free(s);
        free(out);
        json_decref(res);
        json_decref(c);
    }
    free(line);
    sl_chat_template_free(t);
    return 0;
}
