"""Keep freed memory in the process instead of handing it back to the kernel between training steps.

Why: a training step allocates and frees the same large arrays every step (activations, im2col and Winograd
tiles, gradients: a few to ~30 MB each).  glibc's malloc serves blocks above its mmap threshold with a fresh
mmap and returns them with munmap, and trims the top of its heap when more than M_TRIM_THRESHOLD is free; so
every step the kernel hands the same memory back page by page, and each first touch of a 4 KB page is a page
fault that zeroes it.  A Bi-Real-18 sign step at 64 px, batch 64 takes thousands of page faults; with the two
settings below it takes a few dozen, and its peak memory does not change (the step's peak is what the process
keeps).
Fewer faults make the step faster (`python -m minilab.bench train` runs both paths with these settings).

    M_MMAP_THRESHOLD = 32 MB   (glibc's largest: blocks up to that come from the reusable heap)
    M_TRIM_THRESHOLD = 1 GB    (free memory at the heap's top is kept up to that)

Only on glibc (Linux); elsewhere, or with MINILAB_KEEP_FREED_MEMORY=0, or when the user already chose through
glibc's own MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ variables, nothing is changed."""
import ctypes
import os

M_TRIM_THRESHOLD = -1   # mallopt parameter numbers from glibc's <malloc.h>
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 1 << 30


def keep_freed_memory():
    """Set glibc's mmap and trim thresholds as above.  Returns True when they were set."""
    from ..core import config

    if not config.keep_freed_memory:
        return False
    if any(name in os.environ for name in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")):
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # only glibc has both, with these parameter numbers
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
