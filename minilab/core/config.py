"""Every run-time setting of minilab, in one place: the MINILAB_* environment variables, the compiled kernels'
handle, and the thread count.

    MINILAB_NO_EXT              on: use the pure-NumPy reference ops even when the compiled kernels are built
    MINILAB_KERNEL_GEMM         off: the conv GEMMs run on NumPy's BLAS threads instead of the kernels' threads
    MINILAB_WINOGRAD            off: the 3×3 stride-1 conv backward uses im2col + GEMM instead of Winograd
    MINILAB_ISA                 portable, avx2, avx512, neon or native: the compiled kernel variant to load
                                (default: the best this CPU supports; see minilab/_kernels.py)
    MINILAB_LOOPS               static or dynamic: how the kernels' parallel loops share their items among threads
                                (default: dynamic, or static for one image at a time: see `for_latency`)
    MINILAB_IDLE_BLAS_WORKERS   off: leave OpenBLAS' worker threads in the default scheduling class
    MINILAB_KEEP_FREED_MEMORY   off: let glibc hand freed memory back to the system between training steps
    MINILAB_CACHE               where downloaded data sets and their decoded caches go (~/.cache/minilab)
    MINILAB_IMAGENETTE          an Imagenette folder for the tutorials
    MINILAB_TUTORIAL_SMOKE      on: tutorials shrink data, epochs and sizes to run in seconds
    MINILAB_TUTORIAL_OUT        where tutorials write their figures (tutorials/output)

A switch is off when its variable is set to "", "0", "false", "off" or "no" (any case), on for any other value,
and at its default when unset.  The variables are read once, when this module is imported; inside a program,
`use(...)` changes the same settings for a block:

    with minilab.config.use(kernels=False, winograd=False, threads=2):
        ...   # the NumPy reference ops, 2 threads

Importing minilab changes nothing in the process.  The compiled kernels are loaded on first use, and the thread
pools are set up by `minilab.core.threads.set_threads` (the command-line tools call it first when given --threads)."""
import contextlib
import importlib
import os
import warnings

OFF = ("", "0", "false", "off", "no")


def switch(name: str, default: bool) -> bool:
    """The on/off value of environment variable `name` (`default` when it is unset)."""
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() not in OFF


no_ext = switch("MINILAB_NO_EXT", False)
kernel_gemm = switch("MINILAB_KERNEL_GEMM", True)
winograd = switch("MINILAB_WINOGRAD", True)
idle_blas_workers = switch("MINILAB_IDLE_BLAS_WORKERS", True)
keep_freed_memory = switch("MINILAB_KEEP_FREED_MEMORY", True)
cache_dir = os.environ.get("MINILAB_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "minilab")
imagenette = os.environ.get("MINILAB_IMAGENETTE") or None
tutorial_smoke = switch("MINILAB_TUTORIAL_SMOKE", False)
tutorial_out = os.environ.get("MINILAB_TUTORIAL_OUT") or None
loops = os.environ.get("MINILAB_LOOPS", "").strip().lower() or None   # None: static_loops() decides

threads = 1            # OpenMP threads of the compiled kernels; set_threads (the CLIs' --threads) sets it
gemm_parts = 0         # blocks of a split float GEMM, fixed whatever the threads (0: twice the threads; gemm_split)
packed_conv = True     # binary convs may run on the XNOR-popcount kernel (off: float convs, the baseline)

_enabled = True        # use(kernels=False) turns the kernels off for a block
_loaded = False
_ext = None
_reason = None
wait_policy_set = False   # load() set OMP_WAIT_POLICY (the user had not)
latency = False           # for_latency() was called: this process runs forward passes of one image at a time
LOOP_SCHEDULES = ("static", "dynamic")


def for_latency():
    """Set the threads up for a process that runs forward passes of one image at a time (`bench model` at batch 1
    and `predict` on one image call this before anything loads the kernels).

    A training shares each kernel loop's items in dynamic chunks and lets idle threads spin only briefly, so that
    beside other programs the threads that have a core take over the work of one that lost it, and none burns a
    shared core waiting.  A packed forward of one image is ~60 loops of a few microseconds each, with Python
    between them: there the threads should find their data where they left it (static splits: thread t takes the
    same share of every loop, so the planes it wrote are in its core's cache when the next layer reads them) and
    stay awake between loops (libgomp's own long spin): the engine's second thread then gains more on quiet
    cores and loses less beside a busy process.  Batches are another matter: at 32 images or 100 (`predict`'s
    and `evaluate`'s) the loops are long enough for dynamic chunks to pay, the two set-ups tie on quiet cores,
    and beside a busy process this one is far slower (the figures: docs/performance.md).  MINILAB_LOOPS and
    OMP_WAIT_POLICY / GOMP_SPINCOUNT override either choice.  Called after the kernels have loaded it still
    switches the loops; the spin is libgomp's to read once, at load."""
    global latency
    latency = True
    if _ext is not None:
        _ext.split_loops_statically(static_loops())


def static_loops() -> bool:
    """True when the kernels' parallel loops split statically: MINILAB_LOOPS if set, else `for_latency`'s
    choice (a MINILAB_LOOPS that is neither static nor dynamic is ignored, with a warning when the kernels load)."""
    return loops == "static" if loops in LOOP_SCHEDULES else latency


def kernels():
    """The compiled kernels module (`minilab._kernels`), or None: not built, MINILAB_NO_EXT, or switched off by
    `use(kernels=False)`.  The first call loads it."""
    if not _enabled:
        return None
    if not _loaded:
        load()
    return _ext


def reason() -> str:
    """Why `kernels()` is None."""
    if not _enabled:
        return "the kernels are switched off (minilab.config.use(kernels=False))"
    load()
    return _reason or ""


def available() -> bool:
    """True when the compiled kernels are built and allowed (whatever `use` says now)."""
    load()
    return _ext is not None


def load():
    """Load the compiled kernels once: the variant for this CPU (`minilab/_kernels.py`).  Their twins of the
    reference ops are registered with the dispatcher when the package root imports `minilab.fast`, which loads
    no kernel.

    Before the kernels load, so before their OpenMP runtime reads it, idle OpenMP threads are told to spin only
    briefly before they sleep, or to sleep at once when OpenBLAS' threads take turns with them, or (one image at
    a time: `for_latency`) to keep libgomp's long spin, unless OMP_WAIT_POLICY or GOMP_SPINCOUNT is set (see
    `minilab.core.machine.set_wait_policy`); the loops split as `static_loops()` says."""
    global _loaded, _ext, _reason, wait_policy_set
    if _loaded:
        return
    _loaded = True
    if no_ext:
        _reason = "MINILAB_NO_EXT is set"
    else:
        from .blas import find_blas_sgemm
        from .machine import choose_kernels, cpu_runs, set_wait_policy
        sgemm = find_blas_sgemm() if kernel_gemm else None
        variant = choose_kernels(os.environ.get("MINILAB_ISA", "").strip().lower() or None)[0]
        own_gemm = variant == "avx512" or (variant == "native" and cpu_runs("avx512"))   # _ext/sgemm/avx512.h
        if loops is not None and loops not in LOOP_SCHEDULES:
            warnings.warn(f"minilab: MINILAB_LOOPS={loops} is neither static nor dynamic; ignored", RuntimeWarning,
                          stacklevel=3)
        wait_policy_set = set_wait_policy(one_pool=kernel_gemm and (sgemm is not None or own_gemm),
                                          latency=latency)
        try:   # the compiled extension modules, built next to the package (not among its Python modules)
            _kernels = importlib.import_module("minilab._kernels")
        except ImportError as error:  # not built, or MINILAB_ISA asks for what this CPU cannot run
            _reason = f"the compiled kernels cannot be loaded: {error}"
        else:
            if sgemm is not None:
                _kernels.use_blas_sgemm(*sgemm)
            if kernel_gemm:
                _kernels.use_own_sgemm(True)   # where the module has one: not tied to the BLAS' kernel choice
            _kernels.split_loops_statically(static_loops())
            _ext = _kernels
    if _ext is None:
        warnings.warn(f"minilab: using the pure-NumPy reference ops because {_reason}", RuntimeWarning,
                      stacklevel=3)


class CompiledKernels:
    """`minilab._kernels` for the twins in minilab.fast, which call it as `ext.<kernel>(...)`: importing a twin
    loads nothing, and the first call loads the kernels (a twin only runs once `choose` found them loaded)."""

    def __getattr__(self, name):   # only for a name not yet kept on the instance: once per kernel
        load()
        if _ext is None:
            raise RuntimeError(f"minilab's compiled kernels are not available: {_reason}")
        value = getattr(_ext, name)
        setattr(self, name, value)     # later calls find it directly, without this lookup on every kernel call
        return value


compiled = CompiledKernels()


def gemm_split() -> int:
    """How many blocks a split float GEMM is cut into (`_ext/pyx/sgemm.pxi`): twice the kernels' threads, or
    `gemm_parts` when set and the GEMM is the BLAS'.  A BLAS block's bits depend on its shape, so with
    `gemm_parts` fixed a run gives the same bits on any thread count (a ThreadGovernor fixes it at twice the most
    threads it will run); the kernels' own GEMM keeps every value's bits however the output is cut, so with its
    loops split statically (one image at a time: `for_latency`) each thread takes one block — a second would
    only make it pack the other operand again."""
    own = _ext is not None and _ext.own_sgemm_in_use()
    if gemm_parts > 0 and not own:
        return gemm_parts
    if own and _ext.loops_split_statically():
        return max(threads, 1)
    return 2 * max(threads, 1)


def gemm_in_kernels() -> bool:
    """True when the conv GEMMs run on the kernels' threads: on their own GEMM (AVX-512 modules) or on the
    OpenBLAS GEMM NumPy loaded."""
    ext = kernels()
    return ext is not None and ext.has_sgemm()


@contextlib.contextmanager
def use(kernels=None, winograd=None, threads=None, packed_conv=None):
    """Change settings for a block; None leaves a setting as it is.

    kernels=False   the NumPy reference ops only (True cannot load kernels that are not built)
    winograd=False  the 3×3 conv backward on im2col + GEMM
    threads=n       the kernels' OpenMP threads (the BLAS' own thread count is `set_threads`' job)
    packed_conv=False  binary convs as float convs (the float baseline of the inference benchmark)"""
    global _enabled
    module = globals()   # the parameters are named after the settings they change, which hides the module's names
    saved = {"_enabled": _enabled, "winograd": module["winograd"], "threads": module["threads"],
             "packed_conv": module["packed_conv"]}
    if kernels is not None:
        _enabled = bool(kernels)
    for name, value in (("winograd", winograd), ("threads", threads), ("packed_conv", packed_conv)):
        if value is not None:
            module[name] = type(saved[name])(value)
    try:
        yield
    finally:
        module.update(saved)
