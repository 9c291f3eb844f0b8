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

    def run(self, seconds, others, ours=1.5):
        self.wall += seconds
        self.busy += (others + ours) * seconds
        self.own += ours * seconds

    def read(self):
        return self.wall, self.busy, self.own


def governor(machine, ceiling=2, cores=2):
    chosen = []
    g = ThreadGovernor(ceiling, cores, chosen.append, read=machine.read, interval=1.0)
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


def test_a_busy_core_takes_a_thread_away_and_gives_it_back_when_it_is_free_again():
    m = Machine()
    g, chosen = governor(m)
    lines = steps(g, m, 3, others=1.0)
    assert chosen == [1] and g.threads == 1
    assert len(lines) == 1 and "threads 2 → 1" in lines[0] and "1.0" in lines[0] and "--threads N" in lines[0]
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


def test_the_training_adapts_only_without_threads():
    from minilab.distributed.world import SingleProcess
    from minilab.core.machine import default_threads
    from minilab.training.loop import choose_threads

    world = SingleProcess()
    assert choose_threads(argparse.Namespace(threads=1, workers=0), world) is None
    g = choose_threads(argparse.Namespace(threads=None, workers=0), world)
    ceiling = default_threads(1, 0)[0]
    if ceiling > 1 and adaptive_threads.can_adapt():
        assert isinstance(g, ThreadGovernor) and g.ceiling == ceiling
    else:
        assert g is None
