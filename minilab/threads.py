"""Set the number of BLAS threads at run time (the CLIs' --threads), by calling OpenBLAS' own setter in the
library NumPy has loaded.  The compiled kernels take their thread count as an argument instead."""
import ctypes

_SETTERS = ("openblas_set_num_threads", "scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
            "openblas_set_num_threads64_")


def _loaded_blas_paths():
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower() and line.strip().endswith(".so")
                     or "openblas" in line.lower() and ".so" in line}
    except OSError:
        return []
    return sorted(p for p in paths if p.startswith("/"))


def set_blas_threads(n: int) -> bool:
    """Returns True when an OpenBLAS was found and told to use `n` threads."""
    import numpy  # noqa: F401  (make sure the BLAS is loaded)

    done = False
    for path in _loaded_blas_paths():
        lib = ctypes.CDLL(path)
        for name in _SETTERS:
            fn = getattr(lib, name, None)
            if fn is not None:
                fn(int(n))
                done = True
                break
    return done


def set_threads(n: int) -> bool:
    """The CLIs' --threads: NumPy's BLAS threads.  The training kernels (im2col, col2im) stay single-threaded
    (minilab._backend.threads = 1): their OpenMP pool and OpenBLAS' pool fight over the cores — measured on
    Bi-Real training at 64 px with 2 threads each: 45 img/s instead of 138 (same minute, same machine)."""
    return set_blas_threads(n)
