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
import multiprocessing.context
import os
import signal
import sys
import threading
from multiprocessing import popen_spawn_posix, spawn

PR_SET_PDEATHSIG = 1
_LAUNCHING = threading.Lock()


class _WorkerPopen(popen_spawn_posix.Popen):
    """multiprocessing's spawn, less one step: the new interpreter does not import the parent's main script.  A
    worker needs only minilab's own functions and classes; a script that calls `minilab.train.main()` at its top
    level, without an `if __name__ == "__main__":` guard (a tutorial), would otherwise run again in every worker."""

    def _launch(self, process_obj):
        original = spawn.get_preparation_data

        def without_main(name):
            data = original(name)
            data.pop("init_main_from_name", None)
            data.pop("init_main_from_path", None)
            return data

        with _LAUNCHING:
            spawn.get_preparation_data = without_main
            try:
                super()._launch(process_obj)
            finally:
                spawn.get_preparation_data = original


class _WorkerProcess(multiprocessing.context.SpawnProcess):
    @staticmethod
    def _Popen(process_obj):
        return _WorkerPopen(process_obj)


class _WorkerStart(multiprocessing.context.SpawnContext):
    Process = _WorkerProcess


# how workers start: a fresh interpreter (fork + exec), never a bare fork of a process that already runs threads
# (BLAS, OpenMP, tqdm's monitor): the child of such a fork may inherit a lock another thread held, and hang on it
WORKER_START = _WorkerStart()
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
