"""Datasets held as uint8 arrays (a memory-mapped cache or generated images) and a batch loader whose batches are
prepared in background worker processes (it takes any dataset with `labels` and `example(i, rng, mode)`, such as
the streaming one in minilab.data.stream).

Order and augmentation depend only on (seed, epoch, batch index, image's place in the batch), so an interrupted run
that resumes at batch b of epoch e sees exactly the batches it would have seen — the loader's whole state is
(epoch, batch) — and N data-parallel ranks, each taking its slice of every global batch, together see exactly the
batches of one process.

No wait is unbounded: a worker that dies (killed, out of memory) breaks the pool and `batches` raises WorkerDied at
once; a worker that stops answering for `timeout` seconds is reported the same way; while it waits, `batches`
asks its `stop` callable a few times a second, so a signal ends the epoch instead of waiting on a dead queue.
Workers die with the loader's process (`child_process.start_worker`).  They are started as fresh interpreters
(`child_process.WORKER_START`), never forked: the loader's process already runs threads (BLAS, OpenMP, tqdm), and
a fork copies whatever lock one of them held at that instant, which can deadlock the child.  The dataset travels
to each worker pickled; a memory-mapped cache travels as its file's name and is mapped again there."""
import collections
import mmap
import os
import signal
import time
from collections import deque
from concurrent.futures import ProcessPoolExecutor, TimeoutError
from concurrent.futures.process import BrokenProcessPool

import numpy as np

from .augment import augment, normalize
from .child_process import WORKER_START, start_worker

POLL_S = 0.2
MappedArray = collections.namedtuple("MappedArray", "filename dtype offset shape")


class ArrayDataset:
    def __init__(self, images, labels, classes, name="data"):
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images, self.labels, self.classes, self.name = images, np.asarray(labels, np.int64), list(classes), name

    def __getstate__(self):
        """For a worker process: a whole memory-mapped file is sent as (file, dtype, offset, shape), not as its
        bytes (pickling a memmap would copy the whole cache into every worker)."""
        state = dict(self.__dict__)
        images = self.images
        if isinstance(images, np.memmap) and isinstance(images.base, mmap.mmap) and images.filename \
                and images.flags.c_contiguous:
            state["images"] = MappedArray(images.filename, images.dtype.str, images.offset, images.shape)
        return state

    def __setstate__(self, state):
        if isinstance(state["images"], MappedArray):
            m = state["images"]
            state["images"] = np.memmap(m.filename, dtype=m.dtype, mode="r", offset=m.offset, shape=m.shape)
        self.__dict__.update(state)

    def __len__(self):
        return len(self.labels)

    @property
    def image_size(self):
        return self.images.shape[1]

    def example(self, i, rng, mode):
        """Image i as (S, S, 3) uint8, augmented by `mode` with `rng`."""
        return augment(self.images[i], rng, mode)


def epoch_order(n, seed, epoch, shuffle):
    if not shuffle:
        return np.arange(n)
    return np.random.default_rng([seed, epoch]).permutation(n)


def image_rng(seed, epoch, batch_index, place):
    """The random stream that augments the image at `place` in global batch `batch_index` of `epoch`."""
    return np.random.default_rng([seed, epoch, batch_index, place, 1])


def make_batch(dataset, indices, mode, seed, epoch, batch_index, first=0):
    """Images `indices` (places first, first+1, … of global batch `batch_index`), augmented and normalised."""
    imgs = np.stack([dataset.example(i, image_rng(seed, epoch, batch_index, first + k), mode)
                     for k, i in enumerate(indices)])
    return normalize(imgs), dataset.labels[indices]


def shard_batches(order, batch_size, rank, ranks, split, min_batch=1):
    """[(batch index, image indices, place of the first image)] that rank `rank` of `ranks` prepares.
    split=True (training): every global batch of `order` is cut into `ranks` near-equal slices; split=False
    (evaluation): whole batches, rank r taking batches r, r + ranks, ….  A last batch with fewer than `min_batch`
    images per rank (split) or in all (whole batches) is left out, so that no rank gets too few images."""
    n_batches = -(-len(order) // batch_size)
    jobs = []
    for b in range(n_batches):
        indices = order[b * batch_size:(b + 1) * batch_size]
        if len(indices) < min_batch * (ranks if split else 1):
            continue
        if ranks == 1:
            jobs.append((b, indices, 0))
        elif split:
            bounds = np.linspace(0, len(indices), ranks + 1).round().astype(int)
            jobs.append((b, indices[bounds[rank]:bounds[rank + 1]], int(bounds[rank])))
        elif b % ranks == rank:
            jobs.append((b, indices, 0))
    return jobs


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

    With `ranks` > 1 (data-parallel training) this loader prepares only rank `rank`'s part: its slice of every
    global batch of `batch_size` images (`split_batches`, training), or every `ranks`-th whole batch
    (evaluation).  len() is the number of batches this rank yields.
    `min_batch`: a final batch smaller than this (per rank) is left out of the epoch (training uses 2, since batch
    norm cannot normalise a batch of one image); `timeout`: seconds a worker may take for one batch."""

    def __init__(self, dataset, batch_size, shuffle=True, augmentation="none", seed=0, workers=0, prefetch=4,
                 drop_last=False, min_batch=1, timeout=600.0, rank=0, ranks=1, split_batches=True):
        if batch_size < 1:
            raise ValueError(f"batch size must be positive, got {batch_size}")
        self.dataset, self.batch_size, self.shuffle = dataset, batch_size, shuffle
        self.augmentation, self.seed, self.workers, self.prefetch = augmentation, seed, workers, prefetch
        self.drop_last, self.min_batch, self.timeout = drop_last, max(1, min_batch), timeout
        self.rank, self.ranks, self.split_batches = rank, ranks, split_batches
        self._pool = None

    def _jobs(self, epoch, shuffle=None):
        order = epoch_order(len(self.dataset), self.seed, epoch, self.shuffle if shuffle is None else shuffle)
        if self.drop_last:
            order = order[:len(order) // self.batch_size * self.batch_size]
        return shard_batches(order, self.batch_size, self.rank, self.ranks, self.split_batches, self.min_batch)

    def __len__(self):
        return len(self._jobs(0, shuffle=False))   # the count does not depend on the order

    def batches(self, epoch, start_batch=0, stop=None):
        """The batches of global batch `start_batch` on; ends early (without an error) when `stop()` is true."""
        jobs = [(indices, self.augmentation, self.seed, epoch, b, first)
                for b, indices, first in self._jobs(epoch) if b >= start_batch]
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
            # a worker killed while writing its result to the pool's pipe can leave the pool's own watcher
            # waiting for the rest of that message, never marking the pool broken: look at the workers too
            if any(p.exitcode is not None for p in worker_processes(self._pool)):
                raise WorkerDied(self._death_message())
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
            self._pool = ProcessPoolExecutor(self.workers, mp_context=WORKER_START,
                                             initializer=_init_worker, initargs=(self.dataset, os.getpid()))
        return self._pool

    def close(self):
        """End the workers and wait, boundedly, for them to exit (`shut_down_pool`)."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            shut_down_pool(pool)


def shut_down_pool(pool, grace_s=2.0):
    """Stop a ProcessPoolExecutor in bounded time, whatever its workers are doing.

    Queued jobs are cancelled and each worker is asked to finish the job it holds and exit.  Killing a worker
    at once is not safe: one killed while writing its result to the pool's pipe leaves the pool's reader thread
    waiting forever for the rest of that message (and `shutdown(wait=True)`, or the interpreter's exit, waiting
    for that thread).  So the workers get `grace_s` to exit on their own; only one still there after it — stopped,
    or stuck in a job — is ended with SIGTERM, then SIGKILL."""
    processes = worker_processes(pool)
    pool.shutdown(wait=False, cancel_futures=True)
    deadline = time.monotonic() + grace_s
    for p in processes:
        p.join(timeout=max(0.0, deadline - time.monotonic()))
    end_processes(processes)
    manager = getattr(pool, "_executor_manager_thread", None)
    if manager is not None:
        manager.join(timeout=grace_s)


def end_processes(processes, grace_s=1.0):
    """SIGTERM every process still alive, then SIGKILL any that outlive `grace_s` (a stopped process)."""
    for p in processes:
        if p.is_alive():
            p.terminate()
    deadline = time.monotonic() + grace_s
    for p in processes:
        p.join(timeout=max(0.0, deadline - time.monotonic()))
    for p in processes:
        if p.is_alive():
            p.kill()
    for p in processes:
        p.join(timeout=5)


def worker_processes(pool):
    """The worker processes of a ProcessPoolExecutor (it keeps them in a private dict; [] if that changes)."""
    processes = getattr(pool, "_processes", None) if pool is not None else None
    return list(processes.values()) if processes else []
