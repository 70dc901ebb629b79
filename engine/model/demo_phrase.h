/* The demo model's one skill: after a newline it writes a fixed phrase, then its eos. A
 * bigram memory in the first layer's MLP (each phrase token's embedding is a key whose
 * value moves the residual to the next token's embedding); the other weights are zero, so
 * it is not trained, only built. Used by sluice-make-demo-model --phrase. */
#ifndef SL_DEMO_PHRASE_H
#define SL_DEMO_PHRASE_H

#include <jansson.h>
#include <stdint.h>

#include "err.h"

typedef struct sl_demo_chain {
    int32_t from[128], to[128];   /* "\n" -> first token -> ... -> last token -> eos; and
                                   * "\n\n" -> first token unless the phrase holds "\n\n" */
    int n;
} sl_demo_chain;

/* Splits phrase into tokens of tokenizer (tokenizer.json: added tokens such as <think> by
 * content, the rest by longest match in the byte-level vocabulary), and chains them from
 * the newline token to eos. Fails when a token would repeat (a bigram has one successor
 * per token) or the phrase needs more than max_pairs. */
int sl_demo_chain_build(sl_demo_chain *c, json_t *tokenizer, const char *phrase, int32_t eos,
                        int max_pairs, sl_err *err);

/* Layer-0 MLP rows for the chain, given the (bf16-rounded) embeddings E [vocab x H]:
 * gate and up [I x H], down [H x I], all float32, rows past the chain left zero. */
void sl_demo_chain_mlp(const sl_demo_chain *c, const float *E, int H, int I, float *gate,
                       float *up, float *down);

#endif
