/* CUDA backend facts beyond sl_backend_ops, for tools and tests. */
#ifndef SL_CUDA_BACKEND_H
#define SL_CUDA_BACKEND_H

#include <stdio.h>

#include "backend.h"

/* Blocks in the paged KV cache's pool, and how many are free now. */
void sl_backend_cuda_blocks(const sl_backend *b, int *total, int *free_now);

/* Where SL_CUDA_PROFILE=1 was set at create: GPU time per stage of the forward pass
 * (events between stages; decode steps then run without CUDA graphs), as a table. */
void sl_backend_cuda_profile_print(const sl_backend *b, FILE *f);

#endif
