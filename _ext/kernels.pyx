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


cdef extern from "loop_schedule.h" nogil:
    void set_loop_schedule(int static_split, int chunk)

cdef bint loops_static = False     # split_loops_statically(True): every shared loop below splits statically


cdef inline Py_ssize_t chunk(Py_ssize_t items, int threads) noexcept nogil:
    """Items per chunk when a loop hands its items out dynamically: about 8 per thread.  Threads take the next
    chunk when they finish one, so when a thread loses its core to another process the others take over what it
    has not started, instead of all waiting for it at the loop's end (a static split gives each thread a fixed
    share).  Taking a chunk is one atomic add: rare enough at 8 per thread to cost nothing measurable."""
    cdef Py_ssize_t size = items // (8 * (threads if threads > 1 else 1))
    return size if size > 1 else 1


cdef inline void share_loop(Py_ssize_t items, int threads) noexcept nogil:
    """Say how the next `schedule="runtime"` loop of `items` items is shared among its threads.

    Dynamic chunks (the default) keep a training fast beside other programs: the threads that have a core take
    over the work of one that lost it.  A static split gives thread t the same contiguous share of every loop, so
    the planes a thread wrote in one loop are still in its core's cache when the next loop reads them; the packed
    engine runs ~60 short loops per image, and one image at a time its two-thread speed-up needs that
    (`split_loops_statically`; `minilab.config.for_latency` turns it on).
    OpenMP reads the schedule of a runtime loop from the calling thread (`omp_set_schedule`), so inside a
    `parallel()` block every thread calls this with the same arguments before the loop."""
    set_loop_schedule(loops_static, <int>chunk(items, threads))


def split_loops_statically(bint on):
    """Share every parallel loop of the kernels in a fixed, contiguous split per thread (True) or in dynamic
    chunks that free threads take over (False, the default).  Returns the previous setting.  The result of every
    kernel is the same either way: each item is computed whole by one thread."""
    global loops_static
    previous = loops_static
    loops_static = on
    return previous


def loops_split_statically():
    """True when the kernels' parallel loops split statically (`split_loops_statically`)."""
    return loops_static


# One file per concern; each declares the C headers it uses (cdef extern), once.
include "pyx/binary.pxi"
include "pyx/lab.pxi"
include "pyx/train.pxi"
include "pyx/sgemm.pxi"
include "pyx/engine.pxi"
include "pyx/packed_conv.pxi"
