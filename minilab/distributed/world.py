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

Every run has a world: `SingleProcess` (a world of one rank, every collective the identity) or `MPIWorld`.  The
training loop calls the same methods on either — the gradient average, BatchNorm statistics, the actions rank 0
alone takes, barriers, each rank's shard of the data — and never asks how many ranks there are: that is this
module's business."""
import contextlib
import hashlib
import os
import sys
import time

import numpy as np

from .buckets import GradientBuckets

# Set by the launchers for every rank: MPICH/Intel MPI (Hydra), Open MPI, MVAPICH, Slurm's srun.
LAUNCHER_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE", "SLURM_STEP_NUM_TASKS")
ABORT_GRACE_S = 0.5


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
    """One rank: every collective is the identity, and the loop's steps are the single-machine ones."""
    rank, size, is_root = 0, 1, True
    acts_alone = True   # an error met here may still save a checkpoint: no other rank waits in a collective

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

    def ranks_on_node(self):
        return 1

    def fail(self, message, code):
        print(message, file=sys.stderr, flush=True)
        return code

    # ---- what the training loop asks of its world
    def describe(self, batch_size=None, sync_bn=False):
        """Words for the log lines: '' in one process."""
        return ""

    def shard(self):
        """This rank's part of the data, as the loader's (rank, ranks) options."""
        return {"rank": 0, "ranks": 1}

    def min_batch(self, batch_size, sync_bn):
        """The fewest images of a batch BatchNorm can train on (2); --batch-size is checked at parse time."""
        return 2

    def batch_totals(self, loss, hits, count):
        """(mean loss, top-1 hits) of the global batch, and this rank's share of it."""
        return loss, hits, 1.0

    def backward(self, loss, params, share):
        """The gradients of the global loss in every `params`' .grad."""
        loss.backward()

    def prepare_model(self, model, sync_bn):
        """The model as this world trains it (--sync-bn is a no-op in one process)."""
        return model

    def average_running_statistics(self, model, sync_bn):
        """BatchNorm's running statistics of every rank made one (nothing to do in one process)."""

    def share_state(self, model, optimizer, position):
        """Rank 0's weights, buffers, optimizer state and position on every rank; returns the position."""
        return position

    def check_replicas(self, model, optimizer, where):
        """--check-replicas: every rank holds the same weights (one process always does)."""

    @contextlib.contextmanager
    def root_first(self):
        """A block rank 0 runs before the others (building the data they then find complete)."""
        yield

    def on_root(self, action, *args, **kwargs):
        """action(*args, **kwargs) on rank 0 (here: this process); None on the other ranks."""
        return action(*args, **kwargs)


ONE_PROCESS = SingleProcess()


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


    # ---- what the training loop asks of its world
    acts_alone = False   # an error met on one rank ends the job: the other ranks cannot join its collectives

    def describe(self, batch_size=None, sync_bn=False):
        """' on N ranks', with each rank's share of `batch_size` and the BatchNorm mode when it is given."""
        if batch_size is None:
            return f" on {self.size} ranks"
        return f" on {self.size} ranks ({batch_size // self.size} images each per step" \
               f"{', synchronised BatchNorm' if sync_bn else ''})"

    def shard(self):
        return {"rank": self.rank, "ranks": self.size}

    def min_batch(self, batch_size, sync_bn):
        """The fewest images per rank a batch may have; ValueError when the global --batch-size cannot be split
        into such shares."""
        if batch_size % self.size:
            raise ValueError(f"--batch-size {batch_size} is the global batch: it must be divisible by the "
                             f"{self.size} ranks (each takes batch-size / ranks images)")
        # BatchNorm needs two images: per rank with per-rank statistics, in all with --sync-bn.  An epoch leaves
        # out a last batch with fewer, so a smaller global batch would leave out every batch
        min_batch = 1 if sync_bn else 2
        if batch_size // self.size < min_batch:
            raise ValueError(f"--batch-size {batch_size} over {self.size} ranks gives each rank "
                             f"{batch_size // self.size} image per step, and BatchNorm with per-rank statistics "
                             f"needs at least 2: use --batch-size {2 * self.size} or more, or --sync-bn "
                             "(statistics over the whole global batch)")
        return min_batch

    def batch_totals(self, loss, hits, count):
        """The global mean loss and hits summed over the ranks; this rank's share n_r/n of the batch."""
        loss_sum, hits, total = self.sum([loss * count, hits, count])
        return loss_sum / total, int(hits), count / total

    def backward(self, loss, params, share):
        """The backward, with each gradient scaled by `share` and summed over the ranks in buckets that start as
        soon as their gradients are final (see GradientBuckets)."""
        buckets = GradientBuckets(self, params, share)
        loss.backward(on_leaf=buckets.on_leaf)
        buckets.finish(params)

    def prepare_model(self, model, sync_bn):
        """With --sync-bn, BatchNorm layers whose statistics span the global batch."""
        if sync_bn:
            from ..nn.sync import convert_sync_batchnorm
            convert_sync_batchnorm(model, self)
        return model

    def average_running_statistics(self, model, sync_bn):
        """Per-rank BatchNorm running statistics replaced by their mean over the ranks, so that evaluation and the
        checkpoint describe the whole data (with --sync-bn they are equal already)."""
        if not sync_bn:
            self.average_arrays([b for _, b in model.named_buffers()])

    def share_state(self, model, optimizer, position):
        self.broadcast_arrays([p.data for p in model.parameters()] + [b for _, b in model.named_buffers()])
        state = self.broadcast(optimizer.state_dict())
        if not self.is_root:
            optimizer.load_state_dict(state)
        return self.broadcast(position)

    def check_replicas(self, model, optimizer, where):
        check_replicas(self, model, optimizer, where)

    @contextlib.contextmanager
    def root_first(self):
        if not self.is_root:
            self.barrier()
        yield
        if self.is_root:
            self.barrier()

    def on_root(self, action, *args, **kwargs):
        return action(*args, **kwargs) if self.is_root else None


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
