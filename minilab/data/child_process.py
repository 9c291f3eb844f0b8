"""Worker processes that never outlive the process that started them.

A worker of the trainer or the cache builder must take its signals from its parent, not from the terminal (the
trainer's SIGINT/SIGTERM handling decides how a run stops), and if the parent dies, nothing tells it to stop: it
blocks forever on its task queue holding hundreds of MB.  Workers start as fresh interpreters (`WORKER_START`),
and `start_worker` — the first thing every worker runs — handles both:

- SIGTERM gets its default action back (die), SIGINT is ignored: Ctrl-C reaches the whole process group, and the
  parent, which owns the run, decides how to stop and then ends its workers;
- on Linux the kernel sends the worker SIGKILL when its parent exits (prctl PR_SET_PDEATHSIG), and everywhere a
  watchdog thread checks once a second that the parent is still its parent, and ends the worker when it is not
  (the fallback where prctl is missing, and a second guard where it exists)."""
import ctypes
import multiprocessing
import os
import signal
import sys
import threading

PR_SET_PDEATHSIG = 1
# how workers start: a fresh interpreter (fork + exec), never a bare fork of a process that already runs threads
# (BLAS, OpenMP, tqdm's monitor): the child of such a fork may inherit a lock another thread held, and hang on it
WORKER_START = multiprocessing.get_context("spawn")
WATCHDOG_PERIOD_S = 1.0


def _set_parent_death_signal():
    """Ask Linux to SIGKILL this process when its parent exits; False where that is not available."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(parent_pid):
    stopped = threading.Event()
    while not stopped.wait(WATCHDOG_PERIOD_S):
        if os.getppid() != parent_pid:
            os._exit(1)   # the parent is gone: no cleanup to do, nothing to report to


def start_worker(parent_pid):
    """Run first in every worker process (a pool initializer); `parent_pid` is the pid of the process that
    creates the pool, read before the worker starts."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _set_parent_death_signal()
    if os.getppid() != parent_pid:   # the parent died between the start and the prctl call
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True, name="parent-watchdog").start()
