// Compiled once by meson at configure time: proves nvcc can build for sm_90a here.
__global__ void sl_probe(float *x) { x[threadIdx.x] *= 2.0f; }
