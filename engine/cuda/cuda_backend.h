/* CUDA backend facts beyond sl_backend_ops, for tools and tests. */
#ifndef SL_CUDA_BACKEND_H
#define SL_CUDA_BACKEND_H

#include "backend.h"

/* Blocks in the paged KV cache's pool, and how many are free now. */
void sl_backend_cuda_blocks(const sl_backend *b, int *total, int *free_now);

#endif
