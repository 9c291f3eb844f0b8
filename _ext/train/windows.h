/* Which output columns of a sliding window read inside the input row: shared by pooling and
 * im2col. */
#ifndef MINILAB_TRAIN_WINDOWS_H
#define MINILAB_TRAIN_WINDOWS_H
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* the output columns j in [0, ow) whose tap v, at stride sw after pw columns of padding, reads inside a row of
 * w values: j in [*j0, *j1) (used by max pooling and im2col / col2im) */
static void valid_columns(int64_t w, int sw, int pw, int v, int64_t ow, int64_t *j0, int64_t *j1) {
    int64_t lo = 0, hi = ow;
    while (lo < ow && lo * sw + v - pw < 0) lo++;
    while (hi > lo && (hi - 1) * sw + v - pw >= w) hi--;
    *j0 = lo;
    *j1 = hi;
}

#endif
