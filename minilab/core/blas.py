"""The BLAS NumPy loaded: its thread count (set through threadpoolctl), and the OpenBLAS sgemm the compiled
kernels call from their own threads (`config.load` hands it to them), found among the process' shared libraries."""
import ctypes


_SETTERS = ("openblas_set_num_threads", "scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
            "openblas_set_num_threads64_")


def loaded_blas_paths():
    """The paths of the OpenBLAS libraries loaded in this process."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower() and line.strip().endswith(".so")
                     or "openblas" in line.lower() and ".so" in line}
    except OSError:
        return []
    return sorted(p for p in paths if p.startswith("/"))


def blas_threads():
    """How many threads the loaded OpenBLAS uses, or None when there is no OpenBLAS to ask."""
    import numpy  # noqa: F401

    for path in loaded_blas_paths():
        lib = ctypes.CDLL(path)
        for name in ("openblas_get_num_threads", "scipy_openblas_get_num_threads64_",
                     "scipy_openblas_get_num_threads", "openblas_get_num_threads64_"):
            fn = getattr(lib, name, None)
            if fn is not None:
                return int(fn())
    return None


def set_blas_threads(n: int) -> bool:
    """Tell every BLAS NumPy loaded (OpenBLAS, MKL, BLIS, …) to use `n` threads, with threadpoolctl (the
    ecosystem's tool for it, which knows each library's own setter).  Returns True when a BLAS was found."""
    import numpy  # noqa: F401  (make sure the BLAS is loaded)
    from threadpoolctl import threadpool_info, threadpool_limits

    if not any(pool.get("user_api") == "blas" for pool in threadpool_info()):
        return False
    threadpool_limits(limits=int(n), user_api="blas")   # stays set: the limiter is never restored
    return True


_SGEMMS = (("scipy_cblas_sgemm64_", 64), ("cblas_sgemm64_", 64), ("scipy_cblas_sgemm", 32), ("cblas_sgemm", 32))


def find_blas_sgemm():
    """(address, index bits) of cblas_sgemm in the OpenBLAS NumPy loaded, or None.  Only an OpenBLAS whose thread
    count we can also set qualifies: the compiled kernels call its GEMM from their own threads, one BLAS thread
    each (`_ext/sgemm.h`)."""
    import numpy  # noqa: F401  (make sure the BLAS is loaded)

    for path in loaded_blas_paths():
        lib = ctypes.CDLL(path)
        if not any(hasattr(lib, name) for name in _SETTERS):
            continue
        for name, bits in _SGEMMS:
            fn = getattr(lib, name, None)
            if fn is not None:
                return ctypes.cast(fn, ctypes.c_void_p).value, bits
    return None


# OpenBLAS kernel families without AVX-512: on a CPU with AVX-512 their float GEMMs run at about half speed
WITHOUT_AVX512 = ("haswell", "zen", "sandybridge", "nehalem", "core2", "penryn", "dunnington", "atom", "bulldozer",
                  "piledriver", "steamroller", "excavator", "prescott", "barcelona", "opteron")


def blas_kernels():
    """(name, version, kernel family, forced by) of the BLAS NumPy loaded, e.g. ('openblas', '0.3.31',
    'SkylakeX', None); forced by is OPENBLAS_CORETYPE's value when that setting chose the kernels instead of
    OpenBLAS' own look at the CPU.  None when threadpoolctl finds no BLAS."""
    import os

    import numpy  # noqa: F401
    from threadpoolctl import threadpool_info

    for pool in threadpool_info():
        if pool.get("user_api") == "blas":
            forced = os.environ.get("OPENBLAS_CORETYPE") if pool.get("internal_api") == "openblas" else None
            return pool.get("internal_api"), pool.get("version"), pool.get("architecture"), forced or None
    return None


def describe_blas(avx512_cpu=False, own_gemm=None):
    """One line on the BLAS' kernels for a report beside timings: 'openblas 0.3.31, SkylakeX kernels', with why
    when OPENBLAS_CORETYPE chose them, and a warning when they lack the AVX-512 this CPU has — unless the compiled
    kernels run their float GEMMs on their own GEMM (`own_gemm`, e.g. 'avx512'), which the line then says."""
    found = blas_kernels()
    if found is None:
        line = "no BLAS found"
    else:
        name, version, family, forced = found
        line = f"{name} {version}" + (f", {family} kernels" if family else "")
        if forced:
            line += f" (chosen by OPENBLAS_CORETYPE={forced}; unset it to let OpenBLAS choose for this CPU)"
        if avx512_cpu and family and family.lower() in WITHOUT_AVX512 and not own_gemm:
            line += " — kernels without AVX-512 on a CPU that has it: float GEMMs at about half speed"
    if own_gemm:
        line += f"; the conv GEMMs run on minilab's own {own_gemm.upper().replace('AVX512', 'AVX-512')} GEMM"
    return line
