/* ReLU and PReLU (the twins of minilab/ops/activation.py). */
#ifndef MINILAB_TRAIN_ACTIVATION_H
#define MINILAB_TRAIN_ACTIVATION_H
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- PReLU on one channel's plane: y = x if x > 0 else a·x.  A vector compare and blend: setup.py's
 * -fno-trapping-math lets GCC compute a·x for every value (without it GCC branches on every sign, which random
 * signs mispredict half the time, and the loop runs tens of times slower). */
/* y = max(x, 0) as NumPy's np.maximum(x, 0) gives it: NaN stays NaN, -0.0 becomes +0.0 */
static void relu_f32(const float *restrict x, float *restrict y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = (x[i] > 0.0f || x[i] != x[i]) ? x[i] : 0.0f;
}

static void prelu_plane_f32(const float *restrict x, float a, float *restrict y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : a * x[i];
}

#endif
