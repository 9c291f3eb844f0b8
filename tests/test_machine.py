"""What minilab reads from the machine: the cores it may use (affinity, cgroup quota), the default thread count
that never oversubscribes them, the OpenMP wait policy, and minilab.info()."""
import os
import subprocess
import sys

import pytest

import minilab
from minilab.core import config, machine

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_cgroup_v2_quota_is_the_tightest_along_the_path(tmp_path):
    (tmp_path / "cgroup").write_text("0::/user/job\n")
    (tmp_path / "fs" / "user" / "job").mkdir(parents=True)
    (tmp_path / "fs" / "user" / "job" / "cpu.max").write_text("max 100000\n")
    (tmp_path / "fs" / "user" / "cpu.max").write_text("150000 100000\n")
    assert machine.cgroup_quota(str(tmp_path / "cgroup"), str(tmp_path / "fs")) == 1.5
    (tmp_path / "fs" / "user" / "cpu.max").write_text("max 100000\n")
    assert machine.cgroup_quota(str(tmp_path / "cgroup"), str(tmp_path / "fs")) is None


def test_cgroup_v1_quota_and_no_quota(tmp_path):
    (tmp_path / "cgroup").write_text("4:cpu,cpuacct:/job\n1:memory:/job\n0::/\n")
    folder = tmp_path / "fs" / "cpu,cpuacct" / "job"
    folder.mkdir(parents=True)
    (folder / "cpu.cfs_quota_us").write_text("300000\n")
    (folder / "cpu.cfs_period_us").write_text("100000\n")
    assert machine.cgroup_quota(str(tmp_path / "cgroup"), str(tmp_path / "fs")) == 3.0
    (folder / "cpu.cfs_quota_us").write_text("-1\n")
    assert machine.cgroup_quota(str(tmp_path / "cgroup"), str(tmp_path / "fs")) is None
    assert machine.cgroup_quota(str(tmp_path / "missing")) is None


def test_usable_cores_take_the_quota_when_it_is_tighter(monkeypatch):
    monkeypatch.setattr(machine, "affinity_cores", lambda: 8)
    monkeypatch.setattr(machine, "cgroup_quota", lambda: 2.5)
    assert machine.usable_cores()[0] == 2
    monkeypatch.setattr(machine, "cgroup_quota", lambda: 0.5)
    assert machine.usable_cores()[0] == 1
    monkeypatch.setattr(machine, "cgroup_quota", lambda: None)
    assert machine.usable_cores()[0] == 8


@pytest.mark.parametrize("cores, ranks, workers, threads", [(16, 1, 0, 16), (16, 4, 0, 4), (16, 4, 1, 3),
                                                            (2, 2, 1, 1), (2, 4, 0, 1), (8, 1, 2, 6)])
def test_default_threads_share_the_cores_among_ranks_and_workers(monkeypatch, cores, ranks, workers, threads):
    monkeypatch.setattr(machine, "usable_cores", lambda: (cores, f"{cores} CPUs"))
    n, why = machine.default_threads(ranks, workers)
    assert n == threads and why.startswith(f"threads {threads} (") and "--threads overrides" in why
    assert ("MPI ranks" in why) == (ranks > 1) and ("loader worker" in why) == (workers > 0)


def test_wait_policy_is_set_only_when_the_user_did_not_choose(monkeypatch):
    for name in machine.WAIT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert machine.set_wait_policy() and os.environ["GOMP_SPINCOUNT"] == str(machine.SPIN_ITERATIONS)
    assert "OMP_WAIT_POLICY" not in os.environ
    monkeypatch.delenv("GOMP_SPINCOUNT")
    assert machine.set_wait_policy(one_pool=False) and os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "active")
    assert not machine.set_wait_policy() and os.environ["OMP_WAIT_POLICY"] == "active"
    monkeypatch.delenv("OMP_WAIT_POLICY")
    monkeypatch.setenv("GOMP_SPINCOUNT", "10000")
    assert not machine.set_wait_policy() and "OMP_WAIT_POLICY" not in os.environ


def test_info_prints_what_was_chosen(capsys):
    report = minilab.info()
    out = capsys.readouterr().out
    assert report["cpu"] in out and "kernels:" in out and "OpenMP:" in out
    ext = config.kernels()
    assert report["kernels"] == (ext.variant if ext is not None else None)
    assert report["cores"] == machine.usable_cores()[0] and report["default_threads"] >= 1
    if ext is not None and config.loops is None:   # how the loops split, and whose choice that is
        assert report["loops"] == "dynamic" and "loops split in dynamic chunks" in out
        config.for_latency()
        report = minilab.info()
        assert report["loops"] == "static" and "statically (one image at a time" in capsys.readouterr().out


def test_training_without_threads_prints_its_default_once(tmp_path):
    args = ["--data", "synthetic", "--synthetic-size", "16", "8", "--image-size", "24", "--width", "0.25",
            "--batch-size", "8", "--epochs", "1", "--max-steps", "1", "--no-progress", "--workers", "0",
            "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "run")]
    done = subprocess.run([sys.executable, "-m", "minilab.train", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("threads ")]
    cores = machine.usable_cores()[0]
    assert len(lines) == 1 and lines[0].startswith(f"threads {cores} ("), done.stdout


def test_info_says_when_openblas_coretype_chose_the_blas_kernels():
    from minilab.core.blas import blas_kernels

    found = blas_kernels()
    if found is None or found[0] != "openblas":
        pytest.skip("NumPy's BLAS here is not OpenBLAS")
    code = ("from minilab.core.blas import describe_blas; print(describe_blas(avx512_cpu=True)); "
            "print(describe_blas(avx512_cpu=True, own_gemm='avx512'))")
    base = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    lines = {}
    for coretype in (None, "Haswell"):
        env = dict(base, **({"OPENBLAS_CORETYPE": coretype} if coretype else {}), PYTHONPATH=ROOT)
        lines[coretype] = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                         check=True).stdout
    assert "Haswell kernels (chosen by OPENBLAS_CORETYPE=Haswell" in lines["Haswell"]
    slow, own = lines["Haswell"].splitlines()
    assert "about half speed" in slow                                 # AVX2 kernels on a CPU said to have AVX-512
    assert "about half speed" not in own and "minilab's own AVX-512 GEMM" in own   # the kernels don't use them
    assert "chosen by" not in lines[None] and "kernels" in lines[None]
