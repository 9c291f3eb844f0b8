"""minilab.core.config: one parser for every MINILAB_* switch, `use` for a block, and an import that changes nothing."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import minilab as ml
from minilab import F, config


@pytest.mark.parametrize("value,expected", [("", False), ("0", False), ("false", False), ("OFF", False),
                                            (" no ", False), ("1", True), ("yes", True), ("on", True)])
def test_one_parser_for_every_switch(monkeypatch, value, expected):
    monkeypatch.setenv("MINILAB_SOMETHING", value)
    assert config.switch("MINILAB_SOMETHING", not expected) is expected


def test_unset_switch_takes_its_default(monkeypatch):
    monkeypatch.delenv("MINILAB_SOMETHING", raising=False)
    assert config.switch("MINILAB_SOMETHING", True) is True
    assert config.switch("MINILAB_SOMETHING", False) is False


def test_use_changes_settings_for_a_block_and_restores_them_after_an_error():
    before = (config.kernels(), config.winograd, config.threads, config.packed_conv)
    with pytest.raises(RuntimeError):
        with config.use(kernels=False, winograd=False, threads=3, packed_conv=False):
            assert config.kernels() is None and "use(kernels=False)" in config.reason()
            assert (config.winograd, config.threads, config.packed_conv) == (False, 3, False)
            raise RuntimeError("inside")
    assert (config.kernels(), config.winograd, config.threads, config.packed_conv) == before


def test_kernels_off_runs_the_reference_and_the_tensor_remembers_it():
    x = ml.Tensor(np.linspace(-2, 2, 24, dtype=np.float32).reshape(2, 3, 4), requires_grad=True)
    with config.use(kernels=False):
        y = F.sign_ste(x)
    assert y._op.__name__ == "SignSTE"
    y.backward(np.ones(y.shape, np.float32))                  # outside the block: still the reference's backward
    np.testing.assert_array_equal(x.grad, np.abs(x.data) <= 1)
    if config.kernels() is not None:
        assert F.sign_ste(x)._op.__name__ == "SignSTEKernel"


IMPORT = """
import json, os, sys
before = dict(os.environ)
import minilab, minilab.ops, minilab.nn, minilab.models, minilab.optim, minilab.engine
from minilab.core.dispatch import twins
print(json.dumps({"environ_changed": dict(os.environ) != before, "kernels_loaded": "minilab._kernels" in sys.modules,
                  "twins_registered": len(twins) > 0}))
"""


def test_importing_minilab_changes_nothing_in_the_process():
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", IMPORT], env=env, capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    # the twins are registered by importing minilab.fast, which is pure Python: no kernel loads until first use
    assert json.loads(out.stdout) == {"environ_changed": False, "kernels_loaded": False, "twins_registered": True}


def test_surrogate_mode_always_runs_the_reference():
    x = ml.Tensor(np.linspace(-1, 1, 2 * 3 * 6 * 6, dtype=np.float32).reshape(2, 3, 6, 6), requires_grad=True)
    w = ml.Tensor(np.ones((4, 3, 3, 3), np.float32), requires_grad=True)
    with ml.surrogate_mode():
        y = F.conv2d(x, w, padding=1)
        s = F.sign_ste(x)
    assert y._op.__name__ == "Convolution" and s._op.__name__ == "SignSTE"
    np.testing.assert_array_equal(s.data, np.clip(x.data, -1, 1))   # the surrogate's value, not ±1


@pytest.mark.skipif(config.kernels() is None, reason="extension not built")
def test_gemm_split_follows_the_gemm_and_the_loops(monkeypatch):
    """Blocks per float GEMM: twice the threads; one per thread with the own GEMM and static loops (one image at a
    time); a fixed gemm_parts for the BLAS, whose blocks' bits depend on their shape."""
    ext = config.kernels()
    monkeypatch.setattr(config, "threads", 3)
    previous_own, previous_split = ext.own_sgemm_in_use(), ext.loops_split_statically()
    try:
        ext.split_loops_statically(False)
        assert config.gemm_split() == 6
        ext.split_loops_statically(True)
        assert config.gemm_split() == (3 if ext.own_sgemm_in_use() else 6)
        if ext.has_sgemm() and ext.own_sgemm():
            ext.use_own_sgemm(False)
            if ext.has_sgemm():           # a BLAS GEMM was found: its blocks are fixed by gemm_parts
                monkeypatch.setattr(config, "gemm_parts", 8)
                assert config.gemm_split() == 8
                monkeypatch.setattr(config, "gemm_parts", 0)
                assert config.gemm_split() == 6
    finally:
        ext.use_own_sgemm(previous_own)
        ext.split_loops_statically(previous_split)
