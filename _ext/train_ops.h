/* Float kernels of the training loop, one header per concern in train/: the fast twins of
 * minilab/ops/{binarizers,weight_quantizers,activation,norm,pool,conv}.py and minilab/optim/optimizers.py.
 * Plain C loops over contiguous float32 arrays that GCC vectorises.
 *
 * Where the NumPy reference is a fixed sequence of float32 operations (sign, the BatchNorm affine, max and average
 * pooling, the magnitude-aware weight quantizer, Adam) the same operations run here in the same order, so results are
 * bit-identical (the build uses -ffp-contract=off: no fused multiply-adds).  Reductions (BatchNorm statistics and
 * its backward sums) accumulate in double, so they agree with NumPy's float32 pairwise sums to float32 tolerance,
 * not bit for bit. */
#ifndef MINILAB_TRAIN_OPS_H
#define MINILAB_TRAIN_OPS_H
#include "train/sign.h"        /* sign + STE mask, the magnitude-aware weight quantizer, the ±1 check */
#include "train/activation.h"  /* ReLU, PReLU */
#include "train/batchnorm.h"   /* statistics, affine forward, training backward */
#include "train/pool.h"        /* max and average pooling */
#include "train/im2col.h"      /* im2col / col2im for the conv GEMMs */
#include "train/adam.h"        /* the optimizer step */
#endif
