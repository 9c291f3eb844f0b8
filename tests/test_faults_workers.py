"""Child processes: a dead loader worker is reported (no hang), a signal ends a wait, workers restore default
signal handling and die with their parent (loader and cache builder)."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from minilab.data.loader import ArrayDataset, Loader

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _worker_pids():
    """This process's children but multiprocessing's resource tracker (a helper of every process that starts
    workers as fresh interpreters): the loader's workers."""
    from multiprocessing import resource_tracker

    tracker = getattr(resource_tracker._resource_tracker, "_pid", None)
    with open(f"/proc/{os.getpid()}/task/{os.getpid()}/children") as f:
        return [int(p) for p in f.read().split() if int(p) != tracker]


def _dataset(n=64, size=8):
    images = np.random.default_rng(0).integers(0, 255, size=(n, size, size, 3), dtype=np.uint8)
    return ArrayDataset(images, np.arange(n) % 2, ["a", "b"])


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:   # a zombie (exited, not yet reaped by a dead parent's reaper) counts as gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _wait_gone(pids, seconds=10):
    deadline = time.time() + seconds
    while time.time() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)
    return [p for p in pids if _alive(p)]


def test_killed_worker_is_reported_not_waited_for():
    from minilab.data.loader import WorkerDied

    # the loader's own timeout bounds a wait that never ends: a death that went unnoticed would end in its
    # "gave no batch for 30 s" error, which the message match below refuses
    loader = Loader(_dataset(), 4, workers=2, prefetch=2, timeout=30)
    try:
        it = loader.batches(0)
        next(it)
        for pid in _worker_pids():   # all of them: a live one could finish the few batches left before the pool
            os.kill(pid, signal.SIGKILL)   # notices the death, and the run would rightly end without an error
        with pytest.raises(WorkerDied, match="worker process died.*signal 9"):
            for _ in it:
                pass
    finally:
        loader.close()


def test_stop_ends_a_wait_on_a_stuck_worker():
    """A trainer waiting on a worker that never answers still sees its SIGINT/SIGTERM flag."""
    requested = {"stop": False}
    # a stop flag the wait did not look at would leave it to the loader's own timeout, which raises WorkerDied
    loader = Loader(_dataset(), 4, workers=1, prefetch=1, timeout=30)
    try:
        it = loader.batches(0, stop=lambda: requested["stop"])
        next(it)
        for pid in _worker_pids():
            os.kill(pid, signal.SIGSTOP)
        requested["stop"] = True
        assert list(it) == []
    finally:
        for pid in _worker_pids():
            os.kill(pid, signal.SIGCONT)
        loader.close()


def test_hung_worker_times_out():
    from minilab.data.loader import WorkerDied

    loader = Loader(_dataset(), 4, workers=1, prefetch=1, timeout=0.5)
    try:
        it = loader.batches(0)
        next(it)
        for pid in _worker_pids():
            os.kill(pid, signal.SIGSTOP)
        with pytest.raises(WorkerDied, match="gave no batch"):
            next(it)
    finally:
        for pid in _worker_pids():
            os.kill(pid, signal.SIGCONT)
        loader.close()


def test_workers_restore_default_sigterm_and_close_ends_them():
    loader = Loader(_dataset(), 4, workers=2)
    old = signal.signal(signal.SIGTERM, lambda *a: None)   # the trainer's kind of handler
    try:
        next(loader.batches(0))
        pids = _worker_pids()
        os.kill(pids[0], signal.SIGTERM)
        assert _wait_gone(pids[:1]) == [], "a worker kept the trainer's SIGTERM handler"
    finally:
        signal.signal(signal.SIGTERM, old)
        loader.close()
    assert _wait_gone(pids) == []


ORPHAN_SCRIPT = textwrap.dedent("""
    import os, sys, time
    import numpy as np
    from minilab.data.loader import ArrayDataset, Loader
    images = np.zeros((64, 8, 8, 3), np.uint8)
    loader = Loader(ArrayDataset(images, np.arange(64) % 2, ["a", "b"]), 4, workers=2)
    next(loader.batches(0))
    print(" ".join(str(p.pid) for p in loader._pool._processes.values()), flush=True)
    time.sleep(60)
""")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_loader_workers_die_with_their_parent(sig):
    parent = subprocess.Popen([sys.executable, "-c", ORPHAN_SCRIPT], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    pids = [int(p) for p in parent.stdout.readline().split()]
    assert len(pids) == 2
    parent.send_signal(sig)
    parent.wait(10)
    assert _wait_gone(pids) == [], "orphaned loader workers survived their parent"


# a sitecustomize module on PYTHONPATH: every interpreter of the test, the workers too, reads images slowly.  Each
# worker says its pid in one write (a pipe keeps a short write whole): print() writes the number and its newline
# separately, and two workers' lines could interleave.
SLOW_READS = textwrap.dedent("""
    import os, time
    import minilab.data.cache as cache
    def load_slowly(path, size):
        os.write(1, f"{os.getpid()}\\n".encode())
        time.sleep(60)
    cache.read_image = load_slowly
""")
CACHE_SCRIPT = \
    "import sys, minilab.data.cache as c; c.build_cache(sys.argv[1], 'train', 16, sys.argv[2], workers=2, progress=False)"


def test_cache_builder_workers_die_with_their_parent(tmp_path):
    from PIL import Image

    for c in "ab":
        (tmp_path / "d" / "train" / c).mkdir(parents=True)
        for i in range(80):
            Image.new("RGB", (20, 20)).save(tmp_path / "d" / "train" / c / f"{i}.png")
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(SLOW_READS)
    parent = subprocess.Popen([sys.executable, "-c", CACHE_SCRIPT, str(tmp_path / "d"), str(tmp_path / "c")],
                              cwd=ROOT, stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), ROOT])})
    pids = {int(parent.stdout.readline()), int(parent.stdout.readline())}
    parent.kill()
    parent.wait(10)
    assert _wait_gone(list(pids)) == [], "orphaned cache workers survived their parent"


CLOSE_WHILE_WRITING = textwrap.dedent("""
    import numpy as np
    from minilab.data.loader import ArrayDataset, Loader
    images = np.random.default_rng(0).integers(0, 255, size=(64, 96, 96, 3), dtype=np.uint8)
    data = ArrayDataset(images, np.arange(64) % 2, ["a", "b"])
    for _ in range(25):   # batches far larger than a pipe's buffer: the workers are mostly writing results
        loader = Loader(data, 32, workers=2, prefetch=4, timeout=30)
        it = loader.batches(0)
        next(it)
        loader.close()
    print("closed")
""")


def test_closing_the_loader_while_workers_write_their_batches_never_hangs():
    """A worker killed halfway through writing its result would leave the pool's reader thread waiting for the
    rest of the message forever; close() lets the workers finish their writes first."""
    done = subprocess.run([sys.executable, "-c", CLOSE_WHILE_WRITING], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and "closed" in done.stdout, done.stderr
