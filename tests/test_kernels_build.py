"""The compiled kernels as a build: one module per instruction-set level with the best one this CPU supports
chosen at first use (MINILAB_ISA forces one; one this CPU cannot run is refused in one line), every kernel
family's tests passing under each variant this CPU runs, the same bits with any thread count, and the pure-NumPy
fallback."""
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minilab.core import machine
from kernel_cases import EXT, needs_ext, rand

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# the kernel families' test files: the suite runs them under the default variant, and this file under the others
FAMILY_TESTS = sorted(os.path.join("tests", f) for f in os.listdir(os.path.join(ROOT, "tests"))
                      if f.startswith("test_kernels_") and f.endswith(".py") and f != "test_kernels_build.py")


def _cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return []


def _run(code, **env):
    return subprocess.run([sys.executable, "-c", code], env=dict(os.environ, **env), capture_output=True,
                          text=True, cwd=ROOT, timeout=300)


@needs_ext
def test_the_best_variant_this_cpu_supports_is_chosen():
    """cpuid decides, and the chosen module's popcount GEMM is the one built for that level."""
    assert EXT.variant in EXT.variants_built
    if EXT.variant == "native" or os.environ.get("MINILAB_ISA"):
        pytest.skip("a native build or a forced variant: nothing is chosen")
    assert EXT.isa() == {"avx512": "avx512-vpopcntdq", "avx2": "avx2", "neon": "neon",
                         "portable": "portable"}[EXT.variant]
    flags = _cpu_flags()
    if "avx512" in EXT.variants_built and {"avx512_vpopcntdq", "avx512bw", "avx512vl"} <= set(flags):
        assert EXT.variant == "avx512"
    elif "avx2" in EXT.variants_built and {"avx2", "bmi2", "fma"} <= set(flags) and \
            "avx512_vpopcntdq" not in flags:
        assert EXT.variant == "avx2"


def test_a_variant_that_cannot_run_is_refused_in_one_line(monkeypatch):
    """Never an illegal instruction: what the CPU cannot run is not loaded, and the line says what can."""
    monkeypatch.setattr(machine, "kernels_built", lambda: ["avx512", "avx2", "portable"])
    monkeypatch.setattr(machine, "cpu_runs", lambda variant: variant != "avx512")
    variant, why, _ = machine.choose_kernels("avx512")
    assert variant is None and "MINILAB_ISA=avx512: this CPU cannot run AVX-512" in why
    assert "it can run: avx2, portable" in why and "\n" not in why
    assert machine.choose_kernels(None)[:2] == ("avx2", "the best this CPU supports")
    assert machine.choose_kernels("avx2")[:2] == ("avx2", "forced by MINILAB_ISA")
    assert "is not one of" in machine.choose_kernels("sse9")[1]
    monkeypatch.setattr(machine, "kernels_built", lambda: ["portable"])
    assert "this build has no such module" in machine.choose_kernels("avx2")[1]


@needs_ext
def test_a_bad_minilab_isa_falls_back_to_numpy_with_one_warning():
    out = _run("import minilab.core.config as c; print(c.kernels() is None)", MINILAB_ISA="sse9")
    assert out.returncode == 0 and out.stdout.strip() == "True"
    warning = [line for line in out.stderr.splitlines() if "MINILAB_ISA" in line]
    assert len(warning) == 1 and "MINILAB_ISA=sse9 is not one of" in warning[0], out.stderr


@needs_ext
def test_kernel_tests_pass_under_every_variant_this_cpu_runs():
    """Each other variant this CPU runs, loaded with MINILAB_ISA, passes every kernel family's tests."""
    others = [v for v in EXT.variants_built if v != EXT.variant and machine.cpu_runs(v)]
    if not others:
        pytest.skip(f"this build has one variant this CPU runs ({EXT.variant})")
    for variant in others:
        chosen = _run("import minilab.core.config as c; print(c.kernels().variant)", MINILAB_ISA=variant)
        assert chosen.stdout.strip() == variant, chosen.stderr
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *FAMILY_TESTS],
                              env=dict(os.environ, MINILAB_ISA=variant), capture_output=True, text=True, cwd=ROOT,
                              timeout=900)
        assert done.returncode == 0, f"MINILAB_ISA={variant}:\n{done.stdout[-3000:]}"


def test_no_ext_environment_falls_back_with_one_warning():
    code = ("import warnings, minilab, minilab.ops;"
            "from minilab.core import config; print(config.kernels() is None, config.reason())")
    env = dict(os.environ, MINILAB_NO_EXT="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.startswith("True MINILAB_NO_EXT")
    assert out.stderr.count("using the pure-NumPy reference ops") == 1


def test_openmp_runtime_calls_are_guarded_for_a_build_without_openmp():
    """MINILAB_NO_OPENMP=1 builds without libgomp: a Cython `cimport openmp` or an unguarded omp_* call in C would
    leave an undefined symbol, and the module would not load.  OpenMP's run-time calls live in C headers, behind
    `#ifdef _OPENMP`."""
    import glob
    import re

    sources = glob.glob(os.path.join(ROOT, "_ext", "**", "*.*"), recursive=True)
    for path in sources:
        with open(path) as f:
            text = f.read()
        if path.endswith((".pyx", ".pxi")):
            assert not re.search(r"^\s*(from openmp cimport|cimport openmp)", text, re.M), path
        elif path.endswith(".h") and re.search(r"\bomp_\w+\s*\(", text):
            assert "#ifdef _OPENMP" in text, f"{path} calls the OpenMP runtime without an #ifdef _OPENMP guard"


@needs_ext
@given(st.integers(1, 5), st.sampled_from([1, 3, 64, 65]), st.integers(2, 9), st.integers(0, 2**31))
def test_training_kernels_give_the_same_bits_with_any_thread_count_and_split(n, c, h, seed):
    """Every OpenMP split is over independent work (images, channels, rows or blocks), so neither the thread count
    nor how the loops share their items (dynamic chunks, or the static splits of one image at a time) changes
    a bit."""
    ext = EXT
    x = rand(seed, (n, c, h, h))
    w = rand(seed + 1, (5, c, 3, 3))
    g = rand(seed + 2, (n, c, h, h))
    dw = rand(seed + 3, (c, 1, 3, 3))

    def run(t, static):
        previous = ext.split_loops_statically(static)
        try:
            x3, g3 = x.reshape(n, c, -1), g.reshape(n, c, -1)
            mean, var = ext.channel_mean_var(x3, t)
            invstd, gamma = (1 / np.sqrt(var + 1e-3)).astype(np.float32), np.full(c, 0.5, np.float32)
            m, v = np.zeros(w.size, np.float32), np.zeros(w.size, np.float32)
            adam_w = w.reshape(-1).copy()
            ext.adam_update(adam_w, np.resize(g, w.size), m, v,
                            0.9, 0.1, 0.999, 0.001, 0.1, 0.001, 0.01, 1e-7, t)
            q, mask, alpha = ext.magnitude_aware_sign_forward(w.reshape(5, -1), t)
            xb = np.where(x < 0, -1.0, 1.0).astype(np.float32)
            xpk = ext.pack_channels_last(xb, 1, 1, t)
            xp = ext.pad_planes(x, 1, 1, 0.0, t)
            return [mean, var, ext.batchnorm_forward(x3, mean, invstd, gamma, gamma, t),
                    *ext.batchnorm_backward(x3, g3, mean, invstd, gamma, t),
                    *ext.maxpool2d_forward(x, 3, 3, 2, 2, 1, 1, (h - 1) // 2 + 1, (h - 1) // 2 + 1, True, t),
                    ext.avgpool2d_forward(x, 2, 2, 2, 2, t), ext.avgpool2d_backward(x, 2, 2, 1, 1, h + 1, h + 1, t),
                    *ext.sign_ste_forward(x.reshape(-1), 1.0, t), adam_w, m, v, q, mask, alpha,
                    ext.magnitude_aware_sign_backward(w.reshape(5, -1), alpha, mask, t),
                    xpk, ext.packed_im2col(xpk, 3, 3, 1, 1, h, h, t), ext.pack_weights(q.reshape(w.shape), t),
                    xp, ext.depthwise3x3_forward(xp, dw, 1, 1, h, h, t),
                    ext.im2col(x, 3, 3, 1, 1, 1, 1, threads=t), ext.winograd_input_tiles(x, 1, 0.0, threads=t),
                    ext.winograd_filters(w, t)]
        finally:
            ext.split_loops_statically(previous)

    one = run(1, False)
    for threads, static in ((2, False), (2, True), (3, True)):
        for a, b in zip(one, run(threads, static)):
            np.testing.assert_array_equal(a, b)


@needs_ext
def test_peak_rates_are_positive_and_threads_add_work():
    binary, flt = EXT.peak_rates(0.01, 1)
    assert binary > 1e8 and flt > 1e7
    assert all(r > 0 for r in EXT.peak_rates(0.01, 2))


@needs_ext
def test_bench_cli_reports_ratios(capsys):
    import json

    from minilab.bench import main
    assert main(["kernels", "--repeat", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [r["layer"] for r in result["binary_conv"]] == ["64ch 56x56", "128ch 28x28", "256ch 14x14", "512ch 7x7"]
    assert all(r["ratio"] > 0 and r["binary_gbmacs"] > 0 for r in result["binary_conv"])
    assert main(["train", "--arch", "labbnn", "--image-size", "32", "--batch-size", "4", "--width", "0.25",
                 "--steps", "2", "--rounds", "1", "--threads", "1", "--binarizer", "lab"]) == 0
    out = capsys.readouterr().out
    assert "labbnn" in out and "speed-up" in out
