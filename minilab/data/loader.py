"""Datasets held as uint8 arrays (a memory-mapped cache or generated images) and a batch loader whose batches are
prepared in background worker processes (it takes any dataset with `labels` and `example(i, rng, mode)`, such as
the streaming one in minilab.data.stream).

Order and augmentation depend only on (seed, epoch, batch index, image's place in the batch), so an interrupted run
that resumes at batch b of epoch e sees exactly the batches it would have seen — the loader's whole state is
(epoch, batch) — and N data-parallel ranks, each taking its slice of every global batch, together see exactly the
batches of one process."""
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


def shard_batches(order, batch_size, rank, ranks, split):
    """[(batch index, image indices, place of the first image)] that rank `rank` of `ranks` prepares.
    split=True (training): every global batch of `order` is cut into `ranks` near-equal slices (a last batch with
    fewer images than ranks is dropped, so that no rank is left without images); split=False (evaluation): whole
    batches, rank r taking batches r, r + ranks, …"""
    n_batches = -(-len(order) // batch_size)
    jobs = []
    for b in range(n_batches):
        indices = order[b * batch_size:(b + 1) * batch_size]
        if ranks == 1:
            jobs.append((b, indices, 0))
        elif split and len(indices) >= ranks:
            bounds = np.linspace(0, len(indices), ranks + 1).round().astype(int)
            jobs.append((b, indices[bounds[rank]:bounds[rank + 1]], int(bounds[rank])))
        elif not split and b % ranks == rank:
            jobs.append((b, indices, 0))
    return jobs


_worker_dataset = None


def _init_worker(dataset):
    global _worker_dataset
    _worker_dataset = dataset


def _worker_batch(args):
    return make_batch(_worker_dataset, *args)


class Loader:
    """Iterate over (x float32 NCHW, y int64) batches of one epoch, starting at `start_batch`.

    With `ranks` > 1 (data-parallel training) this loader prepares only rank `rank`'s part: its slice of every
    global batch of `batch_size` images (`split_batches`, training), or every `ranks`-th whole batch
    (evaluation).  len() is the number of batches this rank yields."""

    def __init__(self, dataset, batch_size, shuffle=True, augmentation="none", seed=0, workers=0, prefetch=4,
                 drop_last=False, rank=0, ranks=1, split_batches=True):
        if batch_size < 1:
            raise ValueError(f"batch size must be positive, got {batch_size}")
        self.dataset, self.batch_size, self.shuffle = dataset, batch_size, shuffle
        self.augmentation, self.seed, self.workers, self.prefetch = augmentation, seed, workers, prefetch
        self.drop_last, self.rank, self.ranks, self.split_batches = drop_last, rank, ranks, split_batches
        self._pool = None

    def _jobs(self, epoch, shuffle=None):
        order = epoch_order(len(self.dataset), self.seed, epoch, self.shuffle if shuffle is None else shuffle)
        if self.drop_last:
            order = order[:len(order) // self.batch_size * self.batch_size]
        return shard_batches(order, self.batch_size, self.rank, self.ranks, self.split_batches)

    def __len__(self):
        return len(self._jobs(0, shuffle=False))   # the count does not depend on the order

    def batches(self, epoch, start_batch=0):
        """Batches from global batch `start_batch` on."""
        jobs = [(indices, self.augmentation, self.seed, epoch, b, first)
                for b, indices, first in self._jobs(epoch) if b >= start_batch]
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
