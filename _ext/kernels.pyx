# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled twins of minilab's NumPy reference ops (minilab/ops/*.py is the readable version of each).

The Cython wrappers live in one file per concern, included below; the C they call lives in _ext/*.h:
  pyx/binary.pxi  bit-packing (bit = 1 means -1), packed im2col, the XNOR-popcount GEMM  pack.h, bgemm.h
  pyx/lab.pxi     depthwise 3x3 forward / backward and LAB's ArgMax (training)           depthwise.h
  pyx/train.pxi   the training loop's float work: im2col / col2im, sign + STE mask, the
                  magnitude-aware weight quantizer, BatchNorm, PReLU, pooling, Adam         train_ops.h
  pyx/sgemm.pxi   float32 GEMM on the kernels' own threads, Winograd F(2x2, 3x3)         sgemm.h, winograd.h
  pyx/engine.pxi  the packed inference engine's fused kernels (LAB straight into bits, …)
  pyx/packed_conv.pxi  the engine's binary conv: receptive-field gather + popcount GEMM in one call
This file is compiled once per instruction-set level (setup.py; minilab/_kernels.py loads the one the CPU runs).
bgemm.h only selects the popcount GEMM for the level being compiled: bgemm/portable.h is the reference loop, and
avx512.h, avx2.h and neon.h compute the same integers with wider registers."""
import numpy as np
cimport numpy as cnp
from cython.parallel cimport parallel, prange, threadid
from libc.stdint cimport uint64_t, int64_t, int32_t, int16_t, uint8_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset
from libc.math cimport INFINITY

cnp.import_array()


cdef inline Py_ssize_t chunk(Py_ssize_t items, int threads) noexcept nogil:
    """Items per chunk of the parallel loops, which hand out chunks dynamically: about 8 per thread.  Threads take
    the next chunk when they finish one, so when a thread loses its core to another process the others take over
    what it has not started, instead of all waiting for it at the loop's end (a static split gives each thread a
    fixed share).  Taking a chunk is one atomic add: rare enough at 8 per thread to cost nothing measurable."""
    cdef Py_ssize_t size = items // (8 * (threads if threads > 1 else 1))
    return size if size > 1 else 1


# One file per concern; each declares the C headers it uses (cdef extern), once.
include "pyx/binary.pxi"
include "pyx/lab.pxi"
include "pyx/train.pxi"
include "pyx/sgemm.pxi"
include "pyx/engine.pxi"
include "pyx/packed_conv.pxi"
