"""minilab.training.memory: freed arrays stay in the process, so reallocating them costs no page faults."""
import os
import platform
import subprocess
import sys

import pytest

ROUNDS = """
import resource, numpy as np
from minilab.training.memory import keep_freed_memory
kept = keep_freed_memory()
def step():   # frees and reallocates arrays of a training step's sizes, touching every page
    for mb in (1, 3, 7, 15, 31, 2, 5, 11, 23):
        a = np.empty(mb << 18, np.float32); a[::1024] = 1; del a
step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
step(); step()
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def run(**env):
    out = subprocess.run([sys.executable, "-c", ROUNDS], env=dict(os.environ, **env), capture_output=True,
                         text=True, check=True)
    kept, faults = out.stdout.split()
    return kept == "True", int(faults)


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_kept_memory_is_reused_without_page_faults():
    kept, faults = run()
    assert kept
    assert faults < 50            # 100 MB a round reallocated: ~25 000 pages if they were handed back
    off, faults_off = run(MINILAB_KEEP_FREED_MEMORY="0")
    assert not off and faults_off >= faults


def test_users_own_malloc_settings_win():
    kept, _ = run(MALLOC_TRIM_THRESHOLD_="131072")
    assert not kept
