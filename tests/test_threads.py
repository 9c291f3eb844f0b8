"""--threads: with the kernels' own GEMM one pool of OpenMP threads runs everything and BLAS gets one thread;
otherwise BLAS and the compiled kernels share the cores, and OpenBLAS' idle workers must not spin against them."""
import json
import os
import subprocess
import sys

import pytest

from minilab import config
from minilab.core import machine

CODE = """
import json, os
from minilab import config, threads
found = threads.set_threads(2)
workers = threads.blas_worker_threads()
print(json.dumps({"found": found, "kernel_threads": config.threads, "workers": workers,
                  "blas_threads": threads.blas_threads(), "kernel_gemm": config.gemm_in_kernels(),
                  "idle": [os.sched_getscheduler(t) == os.SCHED_IDLE for t in workers],
                  "omp": os.environ.get("OMP_WAIT_POLICY"), "spin": os.environ.get("GOMP_SPINCOUNT"),
                  "ext": config.available(),
                  "static": config.kernels().loops_split_statically() if config.available() else None}))
"""


def run(**env):
    """The probe in a fresh process whose environment chose no OpenMP wait policy: minilab's own choice shows."""
    base = {k: v for k, v in os.environ.items() if k not in machine.WAIT_VARIABLES}
    out = subprocess.run([sys.executable, "-c", CODE], env={**base, **env}, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE") or (os.cpu_count() or 1) < 2,
                    reason="needs Linux scheduling classes and at least 2 cores")
def test_set_threads_moves_blas_workers_to_the_idle_class_unless_asked_not_to():
    """The two-pool set-up: what --threads does without the kernels' GEMM (MINILAB_KERNEL_GEMM=0)."""
    result = run(MINILAB_KERNEL_GEMM="0")
    if not result["found"] or not result["workers"]:
        pytest.skip("no multi-threaded OpenBLAS in this NumPy")
    assert result["kernel_threads"] == 2 and result["blas_threads"] == 2 and not result["kernel_gemm"]
    assert all(result["idle"])
    if result["ext"]:  # set_threads' choice when it loads the kernels: two pools take turns, so no spinning
        assert result["omp"] == "PASSIVE" and result["spin"] is None
    assert not any(run(MINILAB_KERNEL_GEMM="0", MINILAB_IDLE_BLAS_WORKERS="0")["idle"])


def test_with_the_kernels_gemm_one_pool_runs_everything():
    result = run()
    if not result["ext"] or not result["found"]:
        pytest.skip("needs the compiled kernels and an OpenBLAS whose GEMM and thread count they can use")
    assert result["kernel_gemm"], "the OpenBLAS NumPy loaded has a cblas_sgemm the kernels should have found"
    assert result["kernel_threads"] == 2
    assert result["blas_threads"] == 1   # BLAS runs inside the kernels' threads, one thread each
    # idle threads spin briefly, then sleep: long spins take a shared core for nothing, none at all make the
    # engine's many short loops slower on two threads than on one
    assert result["omp"] is None and result["spin"] == str(machine.SPIN_ITERATIONS)
    assert result["static"] is False   # dynamic chunks: threads with a core take over a slowed one's work


LATENCY = """
import json, os, warnings
from minilab import config, threads
config.for_latency()
threads.set_threads(2)
ext = config.kernels()
print(json.dumps({"omp": os.environ.get("OMP_WAIT_POLICY"), "spin": os.environ.get("GOMP_SPINCOUNT"),
                  "static": ext.loops_split_statically() if ext else None}))
"""


def run_latency_probe(**env):
    base = {k: v for k, v in os.environ.items() if k not in machine.WAIT_VARIABLES + ("MINILAB_LOOPS",)}
    out = subprocess.run([sys.executable, "-c", LATENCY], env={**base, **env}, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1]), out.stderr


@pytest.mark.skipif(not config.available(), reason="needs the compiled kernels")
def test_a_one_image_process_splits_loops_statically_and_keeps_libgomps_spin():
    """A one-image forward is many short loops: its threads keep their shares of the data and stay awake between loops;
    MINILAB_LOOPS and the OpenMP variables still decide when set."""
    result, _ = run_latency_probe()
    assert result["static"] is True and result["omp"] is None and result["spin"] is None
    result, _ = run_latency_probe(MINILAB_LOOPS="dynamic", GOMP_SPINCOUNT="5000")
    assert result["static"] is False and result["spin"] == "5000"
    result, stderr = run_latency_probe(MINILAB_LOOPS="sideways")
    assert result["static"] is True and "MINILAB_LOOPS=sideways is neither static nor dynamic" in stderr
    assert run(MINILAB_LOOPS="static")["spin"] == str(machine.SPIN_ITERATIONS)   # a training keeps its short spin


def test_commands_that_run_one_image_at_a_time_choose_the_latency_set_up(monkeypatch, tmp_path, capsys):
    """bench model at batch 1 and predict on one image ask for it before they load anything (here each stops at
    the missing model); batches (predict on two images, bench model --batch-size 8, evaluate) keep the
    training's set-up, which copes better beside other programs."""
    from PIL import Image

    from minilab import bench, evaluate, predict

    missing = str(tmp_path / "none.npz")
    images = [str(tmp_path / f"{i}.png") for i in range(2)]
    for path in images:
        Image.new("RGB", (8, 8)).save(path)
    for main, argv, latency in ((predict.main, [missing, images[0]], True),
                                (predict.main, [missing, *images], False),
                                (predict.main, [missing, *images, "--batch-size", "1"], True),
                                (bench.main, ["model", "--checkpoint", missing], True),
                                (bench.main, ["model", "--checkpoint", missing, "--batch-size", "8"], False),
                                (evaluate.main, ["--checkpoint", missing], False)):
        monkeypatch.setattr(config, "latency", False)
        assert main(argv) == 2
        assert config.latency is latency, (main.__module__, argv)
    assert "none.npz" in capsys.readouterr().err


PROBE_THEN_THREADS = """
import os
from minilab.models.image_sizes import check_image_size
from minilab import config, threads
check_image_size("labbnn", 64)
assert not config._loaded, "the image-size probe loaded the compiled kernels"
threads.set_threads(2)
print(os.environ.get("OMP_WAIT_POLICY"))
"""

TRAIN_THEN_LOOK = """
import os, sys
from minilab.train import main
assert main(sys.argv[1:]) == 0
print(os.environ.get("OMP_WAIT_POLICY"))
"""


@pytest.mark.skipif(not config.available(), reason="needs the compiled kernels")
def test_the_image_size_probe_leaves_the_thread_set_up_to_set_threads(tmp_path):
    """Without the kernels' GEMM the kernels' OpenMP threads must sleep when idle (OMP_WAIT_POLICY=PASSIVE, set
    when set_threads loads them); a check that ran a model first would have loaded them without it."""
    env = {k: v for k, v in os.environ.items() if k not in machine.WAIT_VARIABLES}
    env.update(MINILAB_KERNEL_GEMM="0", MINILAB_CACHE=str(tmp_path / "cache"))
    probe = subprocess.run([sys.executable, "-c", PROBE_THEN_THREADS], env=env, capture_output=True, text=True,
                           timeout=300)
    assert probe.returncode == 0 and probe.stdout.split()[-1] == "PASSIVE", probe.stderr[-2000:]
    args = ["--data", "synthetic", "--synthetic-size", "16", "8", "--image-size", "24", "--width", "0.25",
            "--batch-size", "8", "--epochs", "1", "--max-steps", "1", "--threads", "1", "--no-progress",
            "--workers", "0", "--out", str(tmp_path / "run")]
    trained = subprocess.run([sys.executable, "-c", TRAIN_THEN_LOOK, *args], env=env, capture_output=True,
                             text=True, timeout=300)
    assert trained.returncode == 0 and trained.stdout.split()[-1] == "PASSIVE", trained.stderr[-2000:]
