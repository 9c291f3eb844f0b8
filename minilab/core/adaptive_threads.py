"""Threads that follow the cores other programs leave free: how `python -m minilab.train` keeps its thread count.

Beside a process that keeps one core busy, a second thread of ours adds at most a third of a core: Linux shares
the two cores fairly among the three busy threads (two thirds of a core each), and every parallel loop waits at
its end for the thread that was off its core.  On two cores, two threads beside a busy process train slower than
one thread.  No split of the work fixes that — the core is not there — so instead of guessing, a training looks
every `interval` seconds at how much of its cores other programs used, and runs on what is left:

    others  = (busy time of this process' cores − this process' own CPU time) / wall time        [cores]
    threads = clamp(⌊usable cores − others + margin⌋, 1, ceiling)

`ceiling` is --threads, or the default count (`machine.default_threads`).  With `margin` ½ a thread is given up
once other programs take more than half a core: two threads on two cores stay while a program uses a third of
one.  Time the hypervisor gave a virtual CPU to another machine ("steal") counts as other programs' time: that
core was not ours either; niced programs' time does not (they give way to us).  A change needs two readings in a
row that agree, so a moment's load does not make the count flap.

A changing count changes no numbers: every kernel splits independent work, and the float GEMMs are cut into
as many blocks as on `ceiling` threads whatever the count (`config.gemm_split`), so a run gives the same bits
whether it ran on one thread or all.  The count stays fixed off Linux (no /proc/stat), under a cgroup CPU
quota (whose CPUs' time /proc/stat does not show), with several MPI ranks on one node (they share the cores by
the default's division), on the pure-NumPy path (NumPy's BLAS threads promise nothing about their bits) and with
--fixed-threads."""
import os
import time

MARGIN = 0.5          # of a core: a thread is given up once other programs take more than MARGIN of a core
INTERVAL = 1.0        # seconds between readings
READINGS_TO_CHANGE = 2


def cores_busy_seconds(cpus, with_nice=False):
    """Seconds the CPUs in `cpus` spent on anything but idle and I/O wait since boot: user, system, irq, softirq
    and steal of /proc/stat (a guest's time is inside user).  The time of niced processes ("nice") counts only
    `with_nice`: a job that lowered its priority gives its core up to an ordinary one, so it takes nothing from
    us — unless we are niced too."""
    ticks = os.sysconf("SC_CLK_TCK")
    busy = 0
    with open("/proc/stat") as f:
        for line in f:
            if not (line.startswith("cpu") and line[3:4].isdigit()):
                continue
            fields = line.split()
            if int(fields[0][3:]) in cpus:
                user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[1:9])
                busy += user + system + irq + softirq + steal + (nice if with_nice else 0)
    return busy / ticks


def read_machine():
    """(wall seconds, busy seconds of this process' CPUs, this process' CPU seconds): one reading."""
    niced = os.getpriority(os.PRIO_PROCESS, 0) > 0
    return time.monotonic(), cores_busy_seconds(os.sched_getaffinity(0), niced), time.process_time()


def can_adapt(ranks_on_node=1):
    """Whether the governor can read what it needs and change the count without changing a bit: Linux'
    /proc/stat, no cgroup quota below the affinity, one rank on this node, the compiled kernels running the GEMMs
    (NumPy's own BLAS threads promise nothing about their bits)."""
    from . import config
    from .machine import affinity_cores, usable_cores

    return (ranks_on_node == 1 and os.path.exists("/proc/stat") and hasattr(os, "sched_getaffinity")
            and usable_cores()[0] == affinity_cores() and config.gemm_in_kernels())


class ThreadGovernor:
    """Call `after_step()` after every training step; it calls `set_threads(n)` when the count should change and
    returns a line saying why (None when nothing changed).  `read` gives (wall, busy, own) seconds
    (`read_machine`) and `clock` the wall clock it reads (time.monotonic); tests pass their own."""

    def __init__(self, ceiling, cores, set_threads, read=read_machine, interval=INTERVAL, clock=time.monotonic):
        from . import config

        self.ceiling, self.cores, self.set_threads = max(1, ceiling), cores, set_threads
        config.gemm_parts = 2 * self.ceiling   # GEMM blocks as on `ceiling` threads: a change changes no bits
        self.read, self.interval, self.clock = read, interval, clock
        self.threads = self.ceiling
        self.last = read()
        self.pending, self.agreeing = None, 0
        self.others = 0.0

    def wanted(self, others):
        """The count for `others` cores taken by other programs."""
        return max(1, min(self.ceiling, int(self.cores - others + MARGIN)))

    def after_step(self):
        if self.clock() - self.last[0] < self.interval:   # the clock alone between readings: /proc/stat is long
            return None                                    # on a machine with many CPUs
        now = self.read()
        wall = now[0] - self.last[0]
        busy, own = now[1] - self.last[1], now[2] - self.last[2]
        self.last = now
        self.others = max(0.0, (busy - own) / wall)
        want = self.wanted(self.others)
        if want == self.threads:
            self.pending, self.agreeing = None, 0
            return None
        self.agreeing = self.agreeing + 1 if want == self.pending else 1
        self.pending = want
        if self.agreeing < READINGS_TO_CHANGE:
            return None
        before, self.threads = self.threads, want
        self.pending, self.agreeing = None, 0
        self.set_threads(want)
        return (f"threads {before} → {want}: other programs use {self.others:.1f} of this process' {self.cores} "
                f"cores (--fixed-threads keeps the count)")
