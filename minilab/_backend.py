"""Loads the compiled kernels (`minilab._kernels`), or says once why the NumPy reference is used instead.

Set MINILAB_NO_EXT=1 to force the pure-NumPy path (the readable twin every kernel is tested against)."""
import os
import warnings

ext = None
reason = None

blas_sgemm = None  # (address, index bits) of the cblas_sgemm the kernels call, when they have one

if os.environ.get("MINILAB_NO_EXT", "") not in ("", "0"):
    reason = "MINILAB_NO_EXT is set"
else:
    if os.environ.get("MINILAB_KERNEL_GEMM", "1") not in ("0", ""):
        from .threads import find_blas_sgemm
        blas_sgemm = find_blas_sgemm()
    if blas_sgemm is None:
        # Two pools (OpenBLAS' and OpenMP's) take turns on the cores: OpenMP threads that finish a parallel loop
        # must sleep instead of spinning (spinning made training 3x slower next to OpenBLAS' threads).  With the
        # kernels' GEMM there is one pool, and its threads spin a few ms between loops (libgomp's default), which
        # saves a wake-up per loop: a Bi-Real step went from ~360 to ~315 ms.  Read when libgomp loads.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        from . import _kernels as ext  # noqa: F811
    except ImportError as error:  # not built (plain checkout without `pip install -e .`)
        reason = f"the compiled extension is missing ({error}); run `pip install -e .` to build it"

if ext is None:
    warnings.warn(f"minilab: using the pure-NumPy reference ops because {reason}", RuntimeWarning, stacklevel=2)


def available() -> bool:
    return ext is not None


def gemm_in_kernels() -> bool:
    """True when the conv GEMMs run on the kernels' threads (ext.sgemm): the compiled extension is loaded, it found
    NumPy's OpenBLAS GEMM, and MINILAB_KERNEL_GEMM is not 0."""
    return ext is not None and ext.has_sgemm()


if ext is not None and blas_sgemm is not None:
    ext.use_blas_sgemm(*blas_sgemm)

threads = 1  # OpenMP threads of the training kernels; minilab.threads.set_threads sets it (--threads)
