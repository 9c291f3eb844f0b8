/* Adam's update (the twin of minilab/optim/optimizers.py's). */
#ifndef MINILAB_TRAIN_ADAM_H
#define MINILAB_TRAIN_ADAM_H
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- Adam --------------------------------------------------------------------------------------------
 * The reference's float32 steps, in its order:  m ← m·β1 + (1−β1)·g;  v ← v·β2 + ((1−β2)·g)·g;
 * m̂ = m / (1−β1ᵗ);  v̂ = v / (1−β2ᵗ);  w ← w − (lr·m̂) / (√v̂ + ε);  then, if clip >= 0, the latent-weight
 * clip w ← min(max(w, −clip), clip) (np.clip's result, NaN included).  Every constant arrives already rounded to
 * float32 from its double value, as NumPy rounds a Python float that meets a float32 array. */
static void adam_update_f32(float *restrict w, const float *restrict g, float *restrict m, float *restrict v,
                            int64_t n, float b1, float one_minus_b1, float b2, float one_minus_b2, float bias1,
                            float bias2, float lr, float eps, float clip) {
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i];
        float mi = m[i] * b1 + one_minus_b1 * gi;
        float vi = v[i] * b2 + (one_minus_b2 * gi) * gi;
        m[i] = mi;
        v[i] = vi;
        float step = (lr * (mi / bias1)) / (sqrtf(vi / bias2) + eps);
        float wi = w[i] - step;
        if (clip >= 0.0f) wi = wi < -clip ? -clip : (wi > clip ? clip : wi);
        w[i] = wi;
    }
}

#endif
