/* Prefix reuse: the token ids whose KV cache a free slot still holds after its sequence
 * ended, so that a new prompt starting with them prefills only the rest (the backend
 * rewinds a slot: a forward at a pos below its cached length overwrites what follows).
 * One kept prefix serves one sequence at a time: several running sequences never share
 * one slot's cache. Used by the scheduler thread only. */
#ifndef SL_PREFIX_H
#define SL_PREFIX_H

#include <stdint.h>

typedef struct sl_prefix sl_prefix;

/* n_slots: the backend's slots; min_tokens: the shortest prefix worth reusing (at least 1).
 * NULL when out of memory. Caller frees with sl_prefix_free. */
sl_prefix *sl_prefix_new(int n_slots, int min_tokens);
void sl_prefix_free(sl_prefix *p);

/* The slot is free again; its cache holds a[0..na) then b[0..nb). -1 when out of memory
 * (then nothing is kept for it). */
int sl_prefix_keep(sl_prefix *p, int slot, const int32_t *a, int na, const int32_t *b, int nb);
/* The slot keeps nothing (its cache was released, or a sequence runs in it now). */
void sl_prefix_drop(sl_prefix *p, int slot);
/* Tokens kept for the slot (0: none). */
int sl_prefix_kept(const sl_prefix *p, int slot);

/* Among the slots free[0..n_free): the index (into free) of the one whose kept ids share
 * the longest prefix with ids[0..n), counting at most n - 1 tokens (the last prompt token
 * is always computed: its logits are needed); *common gets that length. -1 (and *common 0)
 * when no slot shares at least min_tokens. Ties go to the most recently kept. */
int sl_prefix_best(const sl_prefix *p, const int *free, int n_free, const int32_t *ids, int n,
                   int *common);
/* Index into free of a slot that keeps nothing, else of the least recently kept one. */
int sl_prefix_victim(const sl_prefix *p, const int *free, int n_free);
/* Index into free of the least recently kept slot; -1 when none keeps anything. */
int sl_prefix_oldest(const sl_prefix *p, const int *free, int n_free);

#endif
