"""Builds minilab's compiled kernels (minilab._kernels): _ext/kernels.pyx, which includes one _ext/pyx/*.pxi file
per concern, over the C kernels in _ext/*.h (the popcount GEMM: _ext/bgemm.h, one header per instruction set in
_ext/bgemm/).

Compiler flags decide the popcount speed:
  x86-64:  -march=native by default, so POPCNT / AVX2 / AVX-512 VPOPCNTDQ are used where this CPU has them;
           MINILAB_PORTABLE=1 builds for the baseline instead (plus -mpopcnt unless MINILAB_NO_POPCNT=1), for
           wheels that must run on any x86-64.
  aarch64: NEON is baseline; -mcpu=native where the compiler supports it.
OpenMP (-fopenmp) gives the kernels' optional `threads` argument; MINILAB_NO_OPENMP=1 turns it off.
These switches follow the rule of minilab/core/config.py: "", "0", "false", "off" and "no" mean off."""
import glob
import os
import platform

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup


def switch(name):
    """On unless unset or "", "0", "false", "off", "no" (any case): the rule of minilab/core/config.py."""
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "off", "no")


def compile_flags():
    # no FMA contraction: float32 steps round exactly as NumPy does;  no errno from sqrtf, so loops that take a
    # square root (Adam) vectorise;  no trapping math, so `x > 0 ? x : a * x` (PReLU) becomes a vector select
    # instead of a branch on every sign (GCC may not run a product that could trap unless its value is used) —
    # IEEE results are unchanged by all three
    flags = ["-O3", "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math"]
    machine = platform.machine().lower()
    portable = switch("MINILAB_PORTABLE")
    if machine in ("x86_64", "amd64"):
        if portable:
            flags += ["-DMINILAB_PORTABLE"]
            if not switch("MINILAB_NO_POPCNT"):
                flags += ["-mpopcnt"]
        else:
            flags += ["-march=native"]
    elif machine in ("aarch64", "arm64"):
        flags += ["-DMINILAB_PORTABLE"] if portable else ["-mcpu=native"]
    return flags


openmp = not switch("MINILAB_NO_OPENMP")
extension = Extension(
    "minilab._kernels",
    sources=["_ext/kernels.pyx"],
    depends=sorted(glob.glob("_ext/*.h") + glob.glob("_ext/*/*.h") + glob.glob("_ext/pyx/*.pxi")),
    include_dirs=[np.get_include(), "_ext"],
    extra_compile_args=compile_flags() + (["-fopenmp"] if openmp else []),
    extra_link_args=["-fopenmp"] if openmp else [],
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
)

setup(ext_modules=cythonize([extension], compiler_directives={"language_level": "3"}))
