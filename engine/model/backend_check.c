#include "backend.h"

int sl_backend_check_steps(const sl_backend *b, const int *cached, const sl_seq_step *steps, int n_steps,
                           int *total, sl_err *err)
{
    *total = 0;
    for (int i = 0; i < n_steps; i++) {
        const sl_seq_step *s = &steps[i];
        if (s->slot < 0 || s->slot >= b->max_seqs) {
            sl_err_set(err, "step %d: slot %d is outside 0..%d", i, s->slot, b->max_seqs - 1);
            return -1;
        }
        for (int k = 0; k < i; k++)
            if (steps[k].slot == s->slot) {
                sl_err_set(err, "steps %d and %d both use slot %d", k, i, s->slot);
                return -1;
            }
        if (s->n_tokens < 1 || s->pos < 0 || s->pos > cached[s->slot] || s->pos + s->n_tokens > b->max_len) {
            sl_err_set(err, "step %d (slot %d): tokens %d..%d do not follow the %d cached "
                       "tokens within max_len %d", i, s->slot, s->pos, s->pos + s->n_tokens - 1,
                       cached[s->slot], b->max_len);
            return -1;
        }
        for (int k = 0; k < s->n_tokens; k++)
            if (s->tokens[k] < 0 || s->tokens[k] >= b->model->cfg.vocab_size) {
                sl_err_set(err, "step %d: token id %d is outside the vocabulary (0..%d)", i,
                           s->tokens[k], b->model->cfg.vocab_size - 1);
                return -1;
            }
        *total += s->n_tokens;
    }
    return 0;
}
