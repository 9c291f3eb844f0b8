"""--threads: BLAS and the compiled kernels share the cores; OpenBLAS' idle workers must not spin against them."""
import json
import os
import subprocess
import sys

import pytest

CODE = """
import json, os
from minilab import _backend, threads
found = threads.set_threads(2)
workers = threads.blas_worker_threads()
print(json.dumps({"found": found, "kernel_threads": _backend.threads, "workers": workers,
                  "idle": [os.sched_getscheduler(t) == os.SCHED_IDLE for t in workers],
                  "omp": os.environ.get("OMP_WAIT_POLICY"), "ext": _backend.available()}))
"""


def run(**env):
    out = subprocess.run([sys.executable, "-c", CODE], env=dict(os.environ, **env), capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE") or (os.cpu_count() or 1) < 2,
                    reason="needs Linux scheduling classes and at least 2 cores")
def test_set_threads_moves_blas_workers_to_the_idle_class_unless_asked_not_to():
    result = run()
    if not result["found"] or not result["workers"]:
        pytest.skip("no multi-threaded OpenBLAS in this NumPy")
    assert result["kernel_threads"] == 2
    assert all(result["idle"])
    if result["ext"] and "OMP_WAIT_POLICY" not in os.environ:  # minilab's default when it loads the kernels
        assert result["omp"] == "PASSIVE"
    assert not any(run(MINILAB_IDLE_BLAS_WORKERS="0")["idle"])
