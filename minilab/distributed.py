"""Data-parallel training over MPI: N processes ("ranks") each run forward and backward on B/N images of every
global batch of B, average their gradients, and take the same optimizer step — so the weights stay identical
without ever being sent after the start.

    launch      `mpiexec -n N python -m minilab.train ...` (or Slurm's `srun`, or a hostfile across machines).
                minilab sees the launcher's environment variables (below) and only then imports mpi4py; a plain
                `python -m minilab.train` never imports it.  `--mpi on` forces MPI, `--mpi off` ignores a launcher.
    averaging   rank r's loss is the mean over its n_r images, the global loss L = Σ_r (n_r/n)·L_r, so
                ∂L/∂w = Σ_r (n_r/n)·∂L_r/∂w: each rank scales its gradient by n_r/n and the ranks sum.  The
                gradients are packed into a few contiguous float32 buckets in the order the backward finishes
                them (the last layers first); each bucket's sum (`Iallreduce`) starts as soon as its last gradient
                is final, while the backward of the earlier layers still runs — the overlap PyTorch's DDP uses.
    failure     an exception on one rank would leave the others waiting forever in the next collective, so any
                error ends the whole job with `Abort` after printing the failing rank's message.

`SingleProcess` is the one-rank stand-in with the same methods, used when no launcher is present."""
import hashlib
import os
import sys
import time

import numpy as np

# Set by the launchers for every rank: MPICH/Intel MPI (Hydra), Open MPI, MVAPICH, Slurm's srun.
LAUNCHER_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE", "SLURM_STEP_NUM_TASKS")
ABORT_GRACE_S = 0.5
BUCKET_BYTES = 16 << 20   # a few buckets for an 11.7 M-parameter model; the first starts after its last layers


def launched_ranks(environ=None) -> int:
    """How many ranks the launcher started, from its environment variables (1 when there is none)."""
    environ = os.environ if environ is None else environ
    for name in LAUNCHER_SIZE_VARIABLES:
        value = environ.get(name, "")
        if value.isdigit() and int(value) > 1:
            return int(value)
    return 1


def connect(mode="auto"):
    """The world this process trains in: `MPIWorld` under a launcher with more than one rank (mode 'auto') or
    always (mode 'on'), otherwise `SingleProcess`.  mpi4py is imported here and nowhere else."""
    if mode == "off" or (mode == "auto" and launched_ranks() == 1):
        return SingleProcess()
    try:
        from mpi4py import MPI
    except ImportError as error:
        raise RuntimeError(f"this process was started by an MPI launcher ({launched_ranks()} ranks) but mpi4py "
                           f"cannot be imported ({error}); install it with `pip install -e \".[mpi]\"`, or run "
                           "with --mpi off") from None
    return MPIWorld(MPI)


class SingleProcess:
    """One rank: every collective is the identity."""
    rank, size, is_root = 0, 1, True

    def broadcast(self, obj):
        return obj

    def broadcast_arrays(self, arrays):
        pass

    def barrier(self):
        pass

    def sum(self, values):
        return np.asarray(values, dtype=np.float64)

    def any(self, flag):
        return bool(flag)

    def average_arrays(self, arrays):
        pass

    def gather_digests(self, digest):
        return [digest]

    def gradient_buckets(self, params, share):
        return None

    def ranks_on_node(self):
        return 1

    def fail(self, message, code):
        print(message, file=sys.stderr, flush=True)
        return code


class MPIWorld:
    """COMM_WORLD of mpi4py, with the few collectives training needs (all on contiguous NumPy buffers)."""

    def __init__(self, MPI):
        self.MPI, self.comm = MPI, MPI.COMM_WORLD
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.is_root = self.rank == 0

    def broadcast(self, obj):
        """A picklable object from rank 0 (options, checkpoint records)."""
        return self.comm.bcast(obj, root=0)

    def barrier(self):
        self.comm.Barrier()

    def broadcast_arrays(self, arrays):
        """Rank 0's values into every rank's arrays, in place (the initial weights and buffers)."""
        for a in arrays:
            self.comm.Bcast(a, root=0)

    def sum(self, values):
        """Σ over ranks of a few numbers, in float64."""
        out = np.array(values, dtype=np.float64)
        self.comm.Allreduce(self.MPI.IN_PLACE, out, op=self.MPI.SUM)
        return out

    def any(self, flag):
        return bool(self.sum([1.0 if flag else 0.0])[0] > 0)

    def average_arrays(self, arrays):
        """Every array replaced by its mean over ranks (per-rank BatchNorm running statistics), in place."""
        for a in arrays:
            self.comm.Allreduce(self.MPI.IN_PLACE, a, op=self.MPI.SUM)
            a *= np.asarray(1.0 / self.size, dtype=a.dtype)

    def gather_digests(self, digest):
        return self.comm.allgather(digest)

    def gradient_buckets(self, params, share):
        return GradientBuckets(self, params, share)

    def ranks_on_node(self):
        """How many ranks share this machine's cores (this one included): the default thread count divides the
        cores among them."""
        node = self.comm.Split_type(self.MPI.COMM_TYPE_SHARED)
        try:
            return node.Get_size()
        finally:
            node.Free()

    def fail(self, message, code):
        """Print this rank's message and end every rank of the job now (never returns)."""
        print(f"[rank {self.rank}/{self.size}] {message}", file=sys.stderr, flush=True)
        # the launcher relays each rank's output through its own pipes, and Abort tears them down at once: give
        # it a moment to pass the message on first
        time.sleep(ABORT_GRACE_S)
        self.comm.Abort(code)


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


def parameter_digest(model, optimizer=None):
    """A hash of every parameter and buffer (and the optimizer's state): equal digests on all ranks prove the
    replicas are identical, bit for bit."""
    h = hashlib.blake2b(digest_size=16)
    for name, value in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(np.ascontiguousarray(value).tobytes())
    if optimizer is not None:
        for name, value in sorted(optimizer.state_dict().items()):
            h.update(name.encode())
            h.update(np.ascontiguousarray(value).tobytes())
    return h.hexdigest()


def check_replicas(world, model, optimizer, where):
    """Raise when the ranks' weights, buffers or optimizer state differ (`--check-replicas`)."""
    digests = world.gather_digests(parameter_digest(model, optimizer))
    if len(set(digests)) > 1:
        differing = [r for r, d in enumerate(digests) if d != digests[0]]
        raise RuntimeError(f"the replicas diverged {where}: ranks {differing} differ from rank 0")
