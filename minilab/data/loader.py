"""Datasets held as uint8 arrays (a memory-mapped cache or generated images) and a batch loader whose batches are
prepared in background worker processes.

Order and augmentation depend only on (seed, epoch, batch index), so an interrupted run that resumes at batch b
of epoch e sees exactly the batches it would have seen — the loader's whole state is (epoch, batch).

No wait is unbounded: a worker that dies (killed, out of memory) breaks the pool and `batches` raises WorkerDied at
once; a worker that stops answering for `timeout` seconds is reported the same way; while it waits, `batches`
asks its `stop` callable a few times a second, so a signal ends the epoch instead of waiting on a dead queue.
Workers die with the loader's process (`child_process.start_worker`)."""
import multiprocessing as mp
import os
import signal
import time
from collections import deque
from concurrent.futures import ProcessPoolExecutor, TimeoutError
from concurrent.futures.process import BrokenProcessPool

import numpy as np

from .augment import augment, normalize
from .child_process import start_worker

POLL_S = 0.2


class ArrayDataset:
    def __init__(self, images, labels, classes, name="data"):
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images, self.labels, self.classes, self.name = images, np.asarray(labels, np.int64), list(classes), name

    def __len__(self):
        return len(self.labels)

    @property
    def image_size(self):
        return self.images.shape[1]


def epoch_order(n, seed, epoch, shuffle):
    if not shuffle:
        return np.arange(n)
    return np.random.default_rng([seed, epoch]).permutation(n)


def make_batch(dataset, indices, mode, seed, epoch, batch_index):
    rng = np.random.default_rng([seed, epoch, batch_index, 1])
    imgs = np.stack([augment(dataset.images[i], rng, mode) for i in indices])
    return normalize(imgs), dataset.labels[indices]


class WorkerDied(RuntimeError):
    """A batch-preparing worker process died or hung; the message says which and how."""


_worker_dataset = None


def _init_worker(dataset, parent_pid):
    global _worker_dataset
    start_worker(parent_pid)
    _worker_dataset = dataset


def _worker_batch(args):
    return make_batch(_worker_dataset, *args)


class Loader:
    """Iterate over (x float32 NCHW, y int64) batches of one epoch, starting at `start_batch`.

    `min_batch`: a final batch smaller than this is left out of the epoch (training uses 2, since batch norm
    cannot normalise a batch of one image); `timeout`: seconds a worker may take for one batch."""

    def __init__(self, dataset, batch_size, shuffle=True, augmentation="none", seed=0, workers=0, prefetch=4,
                 drop_last=False, min_batch=1, timeout=600.0):
        if batch_size < 1:
            raise ValueError(f"batch size must be positive, got {batch_size}")
        self.dataset, self.batch_size, self.shuffle = dataset, batch_size, shuffle
        self.augmentation, self.seed, self.workers, self.prefetch = augmentation, seed, workers, prefetch
        self.drop_last, self.min_batch, self.timeout = drop_last, max(1, min_batch), timeout
        self._pool = None

    def __len__(self):
        n = len(self.dataset)
        if self.drop_last:
            return n // self.batch_size
        full, rest = divmod(n, self.batch_size)
        return full + (1 if rest >= self.min_batch else 0)

    def batches(self, epoch, start_batch=0, stop=None):
        """The batches of `epoch` from `start_batch` on; ends early (without an error) when `stop()` is true."""
        order = epoch_order(len(self.dataset), self.seed, epoch, self.shuffle)
        jobs = [(order[b * self.batch_size:(b + 1) * self.batch_size], self.augmentation, self.seed, epoch, b)
                for b in range(start_batch, len(self))]
        if self.workers <= 0:
            for job in jobs:
                yield make_batch(self.dataset, *job)
            return
        pool = self._get_pool()
        pending = deque()
        for job in jobs:
            pending.append(self._submit(pool, job))
            if len(pending) >= self.prefetch:
                batch = self._wait(pending.popleft(), stop)
                if batch is None:
                    return
                yield batch
        while pending:
            batch = self._wait(pending.popleft(), stop)
            if batch is None:
                return
            yield batch

    def _submit(self, pool, job):
        try:
            return pool.submit(_worker_batch, job)
        except BrokenProcessPool:
            raise WorkerDied(self._death_message()) from None

    def _wait(self, future, stop):
        """The batch of `future`; None when `stop()` became true first."""
        waited = 0.0
        while True:
            try:
                return future.result(timeout=POLL_S)
            except TimeoutError:
                waited += POLL_S
            except BrokenProcessPool:
                raise WorkerDied(self._death_message()) from None
            if stop is not None and stop():
                return None
            if waited >= self.timeout:
                raise WorkerDied(f"a data-loading worker gave no batch for {self.timeout:.0f} s; stopping (is the "
                                 "data on a stalled network drive? --workers 0 loads in the main process)")

    def _death_message(self):
        processes = worker_processes(self._pool)
        for p in processes:   # the pool ends the others once one died: wait until every exit status is known
            p.join(timeout=5)
        codes = [p.exitcode for p in processes if p.exitcode not in (None, 0)]
        codes.sort(key=lambda c: c == -signal.SIGTERM)   # the one that died first, not those ended after it
        how = ""
        if codes:
            code = codes[0]
            how = f" (killed by signal {-code})" if code < 0 else f" (exit code {code})"
        self.close()
        return (f"a data-loading worker process died{how}; the system may be short of memory — try fewer "
                "--workers, or --workers 0 to load batches in the main process")

    def _get_pool(self):
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=mp.get_context("fork"),
                                             initializer=_init_worker, initargs=(self.dataset, os.getpid()))
        return self._pool

    def close(self):
        """End the workers now (a batch in progress is abandoned) and wait, boundedly, for them to exit: SIGTERM,
        then SIGKILL for any still there after a second (a stopped or stuck process ignores SIGTERM)."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            end_processes(worker_processes(pool))
            pool.shutdown(wait=True, cancel_futures=True)


def end_processes(processes, grace_s=1.0):
    for p in processes:
        if p.is_alive():
            p.terminate()
    deadline = time.monotonic() + grace_s
    for p in processes:
        p.join(timeout=max(0.0, deadline - time.monotonic()))
    for p in processes:
        if p.is_alive():
            p.kill()
            p.join(timeout=5)


def worker_processes(pool):
    """The worker processes of a ProcessPoolExecutor (it keeps them in a private dict; [] if that changes)."""
    processes = getattr(pool, "_processes", None) if pool is not None else None
    return list(processes.values()) if processes else []
