"""`python -m minilab.bench contention`: the structure and arithmetic of its report (not the machine's speed)."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from minilab.core import config
from minilab.benchmarks.contention import ratios

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def runs(*rates):
    return [{"images_per_s": r, "threads": 1, "kernels": None} for r in rates]


def test_ratios_compare_like_with_like():
    result = {"alone_1": runs(100.0), "alone_n": runs(180.0), "busy_1": runs(90.0), "busy_n": runs(45.0),
              "together_1": runs(100.0, 110.0), "together_n": runs(20.0, 25.0),
              "mpi_default_s": 20.0, "mpi_threads_1_s": 4.0}
    r = ratios(result)
    assert r == pytest.approx({"alone": 1.8, "busy": 0.5, "together": 45.0 / 210.0, "mpi": 5.0})
    del result["mpi_default_s"], result["mpi_threads_1_s"]
    assert "mpi" not in ratios(result)


@pytest.mark.skipif(not config.available(), reason="needs the compiled kernels")
def test_quick_contention_report_is_complete_and_consistent():
    command = [sys.executable, "-m", "minilab.bench", "contention", "--quick", "--threads", "2", "--json"]
    mpi = shutil.which("mpiexec") is not None and shutil.which("mpiexec").startswith(os.path.dirname(sys.executable))
    if mpi:
        command.append("--mpi")
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["threads"] == 2 and result["cpu"] and result["kernels"] == config.kernels().variant
    for name, count, threads in (("alone_1", 1, 1), ("alone_n", 1, 2), ("busy_1", 1, 1), ("busy_n", 1, 2),
                                 ("together_1", 2, 1), ("together_n", 2, 2)):
        assert [r["threads"] for r in result[name]] == [threads] * count
        assert all(r["images_per_s"] > 0 for r in result[name])
    for name, count in (("alone_auto", 1), ("busy_auto", 1), ("together_auto", 2)):   # up to 2, as train runs
        assert len(result[name]) == count and all(1 <= r["threads"] <= 2 for r in result[name])
    assert result["blas"]
    assert result["ratios"] == pytest.approx(ratios(result))
    assert ("mpi" in result["ratios"]) == mpi


def test_bad_options_are_refused_in_one_line():
    done = subprocess.run([sys.executable, "-m", "minilab.bench", "contention", "--steps", "0"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 2 and done.stderr.strip() == "error: --steps must be at least 1, got 0"
