"""Averaging one step's gradients over the ranks while the backward still runs (PyTorch DDP's overlap)."""
import numpy as np

BUCKET_BYTES = 16 << 20   # a few buckets for an 11.7 M-parameter model; the first starts after its last layers


class GradientBuckets:
    """Averaging one step's gradients: `on_leaf` (given to `Tensor.backward`) copies each parameter's gradient,
    scaled by this rank's share n_r/n, into its slot of a contiguous float32 bucket and starts the bucket's
    in-place `Iallreduce` when its last gradient arrived; `finish()` waits for them and points every `p.grad` at
    its averaged slot.  Parameters are bucketed in reverse order (the backward meets the last layers first)."""

    def __init__(self, world, params, share):
        self.world, self.dtype = world, params[0].data.dtype   # float32 in training; float64 in the tests
        self.share = self.dtype.type(share)
        self.slots, self.buckets, self.requests, self.waiting = {}, [], [], []
        group, size = [], 0
        for p in reversed(params):
            group.append(p)
            size += p.data.size
            if size * self.dtype.itemsize >= BUCKET_BYTES:
                self._add_bucket(group, size)
                group, size = [], 0
        if group:
            self._add_bucket(group, size)

    def _add_bucket(self, group, size):
        buffer, offset = np.zeros(size, self.dtype), 0
        for p in group:
            self.slots[id(p)] = (len(self.buckets), buffer[offset:offset + p.data.size].reshape(p.data.shape))
            offset += p.data.size
        self.buckets.append(buffer)
        self.waiting.append(len(group))
        self.requests.append(None)

    def on_leaf(self, p):
        slot = self.slots.get(id(p))
        if slot is None:   # an input that requires grad, not a parameter
            return
        index, view = slot
        np.multiply(p.grad, self.share, out=view)
        self.waiting[index] -= 1
        if self.waiting[index] == 0:
            self._start(index)
        self.world.MPI.Request.Testall([r for r in self.requests if r is not None])   # let MPI make progress

    def _start(self, index):
        self.requests[index] = self.world.comm.Iallreduce(self.world.MPI.IN_PLACE, self.buckets[index],
                                                         op=self.world.MPI.SUM)

    def finish(self, params):
        """Start the buckets some of whose parameters got no gradient this step (the same ones on every rank),
        wait for all sums, and make each `p.grad` a view of its summed slot."""
        for index, request in enumerate(self.requests):
            if request is None:
                self._start(index)
        self.world.MPI.Request.Waitall(self.requests)
        for p in params:
            if p.grad is not None:
                p.grad = self.slots[id(p)][1]
