"""Set the number of BLAS threads at run time (the CLIs' --threads).  The compiled kernels take their thread
count as an argument instead.  `minilab.core.machine.default_threads` is the count when --threads is not given."""
import os
import threading
import time

from . import config
from .blas import blas_threads, find_blas_sgemm, set_blas_threads  # noqa: F401  (the BLAS' side of the threads)


def _thread_cpu_ticks():
    ticks = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        ticks[int(tid)] = int(fields[11]) + int(fields[12])  # utime + stime
    return ticks


def blas_worker_threads():
    """Thread ids of OpenBLAS' worker threads: the threads other than this one that use CPU while this thread
    runs multi-threaded GEMMs (OpenBLAS does not name its threads).  Linux only; [] elsewhere."""
    import numpy as np

    if not os.path.isdir("/proc/self/task"):
        return []
    a = np.ones((768, 768), dtype=np.float32)
    before = _thread_cpu_ticks()
    deadline = time.perf_counter() + 0.1
    while time.perf_counter() < deadline:
        a @ a
    after = _thread_cpu_ticks()
    me = threading.get_native_id()
    return sorted(t for t, n in after.items() if t != me and n > before.get(t, 0))


def idle_blas_workers() -> int:
    """Put OpenBLAS' worker threads in the SCHED_IDLE class; returns how many.

    After every GEMM an OpenBLAS worker busy-waits (sched_yield in a loop) for about 0.1 s in case another GEMM
    follows — and this NumPy's OpenBLAS ignores OPENBLAS_THREAD_TIMEOUT.  A training step runs GEMMs every few
    milliseconds, so the worker never stops spinning and any other thread that wants its core (the compiled
    kernels' OpenMP threads) gets half of it.  In SCHED_IDLE the spinning worker yields the core at once to any
    ordinary thread, while it still runs at full speed inside a GEMM when nothing else wants the core.  The catch:
    other processes' threads also take precedence, so two trainings sharing a machine slow each other's GEMMs
    more; set MINILAB_IDLE_BLAS_WORKERS=0 to keep the default scheduling."""
    if not config.idle_blas_workers or not hasattr(os, "SCHED_IDLE"):
        return 0
    count = 0
    for tid in blas_worker_threads():
        try:
            os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
            count += 1
        except OSError:
            pass
    return count


def set_threads(n: int) -> bool:
    """The CLIs' --threads: how many cores a training or benchmark uses.

    With the compiled kernels and a GEMM they can call (their own in the AVX-512 module, else the BLAS' that
    `find_blas_sgemm` finds), the kernels' OpenMP threads run everything: their own loops and the conv GEMMs, split
    in blocks, each on that single-threaded GEMM (`_ext/sgemm.h`).
    One pool of threads, so no core changes hands between two pools between one op and the next.

    Otherwise (the NumPy path, or no such BLAS) NumPy's BLAS gets `n` threads and the kernels as many OpenMP
    threads, and the two pools take turns — BLAS inside GEMMs, the kernels between them — which only works when
    neither busy-waits while idle: OpenMP threads sleep (`minilab.core.config.load` sets OMP_WAIT_POLICY=PASSIVE then
    unless you chose, before the kernels load) and OpenBLAS' workers are moved to
    SCHED_IDLE (`idle_blas_workers`).  With both pools spinning, each keeps the other off its cores and a training
    step runs several times slower.
    Returns True when the BLAS' thread count could be set."""
    config.load()
    config.threads = max(1, int(n))
    if config.gemm_in_kernels():
        return set_blas_threads(1)
    done = set_blas_threads(n)
    if n > 1:
        idle_blas_workers()
    return done
