#include <math.h>

#include "backend.h"

void sl_rope_inv_freq(const sl_model_config *c, float *f)
{
    int hd = c->head_dim;
    for (int i = 0; i < hd / 2; i++)
        f[i] = 1.0f / powf(c->rope_theta, (float)(2 * i) / (float)hd);
    if (c->rope_scaling_factor <= 0)
        return;
    /* Llama 3: long wavelengths slowed by factor, short kept, smooth blend between. */
    float factor = c->rope_scaling_factor, lo = c->rope_low_freq_factor;
    float hi = c->rope_high_freq_factor, old = (float)c->rope_original_max_pos;
    float lo_wavelen = old / lo, hi_wavelen = old / hi;
    for (int i = 0; i < hd / 2; i++) {
        float wavelen = 2.0f * (float)M_PI / f[i];
        if (wavelen > lo_wavelen) {
            f[i] = f[i] / factor;
        } else if (wavelen >= hi_wavelen) {
            float smooth = (old / wavelen - lo) / (hi - lo);
            f[i] = (1 - smooth) * f[i] / factor + smooth * f[i];
        }
    }
}
