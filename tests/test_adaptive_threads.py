"""A training without --threads runs on the cores other programs leave free (minilab.core.adaptive_threads); with
--threads N it keeps N."""
import argparse
import os
import subprocess
import sys
import time

import pytest

from minilab.core import adaptive_threads
from minilab.core.adaptive_threads import ThreadGovernor


class Machine:
    """Readings of a machine on which other programs take `others` cores while we take `ours`."""

    def __init__(self):
        self.wall = self.busy = self.own = 0.0
        self.reads = 0

    def run(self, seconds, others, ours=1.5):
        self.wall += seconds
        self.busy += (others + ours) * seconds
        self.own += ours * seconds

    def read(self):
        self.reads += 1
        return self.wall, self.busy, self.own


def governor(machine, ceiling=2, cores=2):
    chosen = []
    g = ThreadGovernor(ceiling, cores, chosen.append, read=machine.read, interval=1.0, clock=lambda: machine.wall)
    return g, chosen


def steps(g, machine, seconds, others, every=0.25):
    """Steps of `every` seconds for `seconds`; the lines the governor returned."""
    lines = []
    for _ in range(int(seconds / every)):
        machine.run(every, others)
        line = g.after_step()
        if line:
            lines.append(line)
    return lines


def test_a_quiet_machine_keeps_every_thread():
    m = Machine()
    g, chosen = governor(m)
    assert steps(g, m, 10, others=0.05) == [] and chosen == [] and g.threads == 2
    assert m.reads <= 11                              # once a second, not after each of the forty steps


def test_a_busy_core_takes_a_thread_away_and_gives_it_back_when_it_is_free_again():
    m = Machine()
    g, chosen = governor(m)
    lines = steps(g, m, 3, others=1.0)
    assert chosen == [1] and g.threads == 1
    assert len(lines) == 1 and "threads 2 → 1" in lines[0] and "1.0" in lines[0] and "--fixed-threads" in lines[0]
    assert steps(g, m, 3, others=0.0) and chosen == [1, 2]


def test_one_busy_moment_changes_nothing():
    m = Machine()
    g, chosen = governor(m)
    steps(g, m, 1, others=1.0)
    steps(g, m, 3, others=0.1)
    steps(g, m, 1, others=1.0)
    steps(g, m, 3, others=0.1)
    assert chosen == [] and g.threads == 2


def test_the_count_stays_between_one_and_the_ceiling():
    m = Machine()
    g, chosen = governor(m, ceiling=4, cores=8)
    steps(g, m, 4, others=0.0)
    assert chosen == [] and g.threads == 4                  # eight free cores: never above the default
    steps(g, m, 4, others=20.0)
    assert g.threads == 1                                    # an overloaded machine: never below one
    steps(g, m, 4, others=5.0)                               # three cores free: three threads
    assert chosen[-1] == 3


def test_a_third_of_a_core_taken_keeps_the_second_thread():
    m = Machine()
    g, chosen = governor(m)
    steps(g, m, 5, others=0.35)
    assert chosen == []
    steps(g, m, 5, others=0.65)
    assert chosen == [1]


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="reads Linux' /proc/stat")
def test_a_spinning_process_reads_as_another_program_using_a_core():
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        before = adaptive_threads.read_machine()
        time.sleep(1.0)
        after = adaptive_threads.read_machine()
    finally:
        spinner.kill()
        spinner.wait()
    others = ((after[1] - before[1]) - (after[2] - before[2])) / (after[0] - before[0])
    assert others >= 0.5


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="reads Linux' /proc/stat")
def test_niced_programs_do_not_count_unless_we_are_niced(monkeypatch):
    cpus = os.sched_getaffinity(0)
    spinner = subprocess.Popen(["nice", "-n", "19", sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        t0, plain0, nice0 = time.monotonic(), adaptive_threads.cores_busy_seconds(cpus), \
            adaptive_threads.cores_busy_seconds(cpus, with_nice=True)
        time.sleep(1.0)
        t1, plain1, nice1 = time.monotonic(), adaptive_threads.cores_busy_seconds(cpus), \
            adaptive_threads.cores_busy_seconds(cpus, with_nice=True)
    finally:
        spinner.kill()
        spinner.wait()
    assert (nice1 - nice0) - (plain1 - plain0) >= 0.5 * (t1 - t0)   # the niced spinner's core, counted only so


@pytest.fixture
def threads_restored():
    """The process' thread count as it was before the test (choose_threads sets it for the whole process)."""
    from minilab import config
    from minilab.core.threads import set_threads

    before, parts = config.threads, config.gemm_parts
    yield
    set_threads(before)
    config.gemm_parts = parts


def test_the_training_adapts_below_its_count_unless_told_to_keep_it(threads_restored, capsys):
    from minilab.distributed.world import SingleProcess
    from minilab.core.machine import default_threads
    from minilab.training.loop import choose_threads

    world = SingleProcess()

    def options(**given):
        return argparse.Namespace(**{"threads": None, "workers": 0, "fixed_threads": False, **given})

    assert choose_threads(options(threads=1), world) is None                  # nothing below one thread
    assert choose_threads(options(fixed_threads=True), world) is None
    default = default_threads(1, 0)[0]
    for given, ceiling in ((None, default), (2, 2)):
        g = choose_threads(options(threads=given), world)
        if ceiling > 1 and adaptive_threads.can_adapt():
            assert isinstance(g, ThreadGovernor) and g.ceiling == ceiling
            assert "--fixed-threads keeps the count" in capsys.readouterr().out
        else:
            assert g is None


@pytest.mark.skipif(not __import__("minilab").config.available(), reason="the compiled kernels are not built")
@pytest.mark.parametrize("arch,binarizer", [("birealnet18", "sign"), ("labbnn", "lab")])
def test_a_step_and_the_engine_give_the_same_bits_on_any_thread_count(arch, binarizer, threads_restored):
    """What makes a changing thread count safe: the gradients of a training step and the packed engine's logits
    are the same bits on 1, 2 or 3 threads (each GEMM is cut by the machine's cores, not by the thread count)."""
    import copy

    import numpy as np

    from minilab import ops as F
    from minilab.core.autograd import Tensor
    from minilab.core.threads import set_threads
    from minilab.engine import convert
    from minilab.models import create_model

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 3, 32, 32)).astype(np.float32), rng.integers(0, 10, 8)
    config = {"arch": arch, "num_classes": 10, "image_size": 32, "width": 0.5, "binarizer": binarizer,
              "lab_blocks": "1111", "lab_bits": 32}
    base = create_model(**config)
    ThreadGovernor(3, 3, set_threads)   # as a run that may use up to 3 threads: its GEMMs cut as on 3
    results = []
    for threads in (1, 2, 3):
        set_threads(threads)
        model = copy.deepcopy(base)
        F.cross_entropy(model(Tensor(x)), y).backward()
        grads = [p.grad.copy() for p in model.parameters()]
        model.eval()
        results.append((grads, np.asarray(convert(model, config, threads=threads)(x[:2]))))
    for grads, logits in results[1:]:
        assert all(np.array_equal(a, b) for a, b in zip(grads, results[0][0]))
        np.testing.assert_array_equal(logits, results[0][1])
