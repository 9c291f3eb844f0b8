"""Worker processes that never outlive the process that started them.

A worker forked by the trainer or the cache builder inherits the parent's signal handlers (the trainer's SIGINT/
SIGTERM handler only sets a flag, so an orphan would ignore both) and, if the parent dies, nothing tells it to
stop: it blocks forever on its task queue holding hundreds of MB.  `start_worker` — the first thing every worker
runs — fixes both:

- SIGTERM gets its default action back (die), SIGINT is ignored: Ctrl-C reaches the whole process group, and the
  parent, which owns the run, decides how to stop and then ends its workers;
- on Linux the kernel sends the worker SIGKILL when its parent exits (prctl PR_SET_PDEATHSIG), and everywhere a
  watchdog thread checks once a second that the parent is still its parent, and ends the worker when it is not
  (the fallback where prctl is missing, and a second guard where it exists)."""
import ctypes
import os
import signal
import sys
import threading

PR_SET_PDEATHSIG = 1
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
    creates the pool, read before the fork."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _set_parent_death_signal()
    if os.getppid() != parent_pid:   # the parent died between the fork and the prctl call
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True, name="parent-watchdog").start()
