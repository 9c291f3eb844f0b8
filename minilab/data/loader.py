"""Datasets held as uint8 arrays (a memory-mapped cache or generated images) and a batch loader whose batches are
prepared in background worker processes.

Order and augmentation depend only on (seed, epoch, batch index), so an interrupted run that resumes at batch b
of epoch e sees exactly the batches it would have seen — the loader's whole state is (epoch, batch)."""
import multiprocessing as mp
from collections import deque

import numpy as np

from .augment import augment, normalize


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


_worker_dataset = None


def _init_worker(dataset):
    global _worker_dataset
    _worker_dataset = dataset


def _worker_batch(args):
    return make_batch(_worker_dataset, *args)


class Loader:
    """Iterate over (x float32 NCHW, y int64) batches of one epoch, starting at `start_batch`."""

    def __init__(self, dataset, batch_size, shuffle=True, augmentation="none", seed=0, workers=0, prefetch=4,
                 drop_last=False):
        if batch_size < 1:
            raise ValueError(f"batch size must be positive, got {batch_size}")
        self.dataset, self.batch_size, self.shuffle = dataset, batch_size, shuffle
        self.augmentation, self.seed, self.workers, self.prefetch = augmentation, seed, workers, prefetch
        self.drop_last = drop_last
        self._pool = None

    def __len__(self):
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def batches(self, epoch, start_batch=0):
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
            pending.append(pool.apply_async(_worker_batch, (job,)))
            if len(pending) >= self.prefetch:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()

    def _get_pool(self):
        if self._pool is None:
            ctx = mp.get_context("fork")
            self._pool = ctx.Pool(self.workers, initializer=_init_worker, initargs=(self.dataset,))
        return self._pool

    def close(self):
        if self._pool is not None:
            self._pool.terminate()
            self._pool = None
