/* DeepSeek-R1 reasoning split, as vLLM's deepseek_r1 parser: everything before </think>
 * is reasoning (a leading <think> is dropped), everything after is content. With no
 * </think> at all, the whole output is reasoning (vLLM does the same: R1 no longer writes
 * <think> itself, so reasoning is assumed to come first). */
#include "chat_template.h"

#include <string.h>

enum { ST_START, ST_REASONING, ST_CONTENT };

static const char open_tag[] = "<think>", close_tag[] = "</think>";

void sl_reasoning_split_init(sl_reasoning_split *s)
{
    memset(s, 0, sizeof *s);
    s->state = ST_START;
}

typedef struct outs {
    char *r, *c;
    size_t *nr, *nc;
} outs;

static void feed(sl_reasoning_split *s, unsigned char ch, outs *o);

/* The held bytes are no longer a tag prefix: the first goes out as plain text of the
 * current state, the rest are looked at again. */
static void release(sl_reasoning_split *s, outs *o)
{
    char rest[sizeof s->hold];
    size_t n = s->n_hold;
    memcpy(rest, s->hold, n);
    s->n_hold = 0;
    if (s->state == ST_START)
        s->state = ST_REASONING;
    o->r[(*o->nr)++] = rest[0];
    for (size_t i = 1; i < n; i++)
        feed(s, (unsigned char)rest[i], o);
}

static void feed(sl_reasoning_split *s, unsigned char ch, outs *o)
{
    if (s->state == ST_CONTENT) {
        o->c[(*o->nc)++] = (char)ch;
        return;
    }
    const char *tag = s->state == ST_START ? open_tag : close_tag;
    size_t tag_len = strlen(tag);
    s->hold[s->n_hold++] = (char)ch;
    if (memcmp(s->hold, tag, s->n_hold) == 0) {
        if (s->n_hold == tag_len) {
            s->n_hold = 0;
            s->state = s->state == ST_START ? ST_REASONING : ST_CONTENT;
        }
        return;
    }
    if (s->state == ST_START) {
        /* not <think>: reread the held bytes as reasoning, where they may begin </think> */
        char again[sizeof s->hold];
        size_t n = s->n_hold;
        memcpy(again, s->hold, n);
        s->n_hold = 0;
        s->state = ST_REASONING;
        for (size_t i = 0; i < n; i++)
            feed(s, (unsigned char)again[i], o);
        return;
    }
    release(s, o);
}

void sl_reasoning_split_push(sl_reasoning_split *s, const char *text, size_t len, char *reasoning,
                             size_t *n_reasoning, char *content, size_t *n_content)
{
    outs o = {reasoning, content, n_reasoning, n_content};
    *n_reasoning = *n_content = 0;
    for (size_t i = 0; i < len; i++)
        feed(s, (unsigned char)text[i], &o);
}

void sl_reasoning_split_finish(sl_reasoning_split *s, char *reasoning, size_t *n_reasoning, char *content,
                               size_t *n_content)
{
    *n_reasoning = *n_content = 0;
    if (s->state != ST_CONTENT) {
        memcpy(reasoning, s->hold, s->n_hold);
        *n_reasoning = s->n_hold;
    }
    s->n_hold = 0;
}
