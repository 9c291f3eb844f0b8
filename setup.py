"""Builds minilab's compiled kernels: _ext/kernels.pyx, which includes one _ext/pyx/*.pxi file per concern, over
the C kernels in _ext/*.h (the popcount GEMM: _ext/bgemm.h, one header per instruction set in _ext/bgemm/).

One build runs on every CPU of its architecture.  The kernels are compiled once per instruction-set level, each
into its own extension module, and `minilab/_kernels.py` loads the best one this CPU supports when the kernels
are first used (the CPU's own report, cpuid through `minilab._cpu`; MINILAB_ISA forces one):
  x86-64:  minilab._kernels_portable  baseline x86-64 + POPCNT (every x86-64 CPU since 2008), portable C
           minilab._kernels_avx2      x86-64-v3: AVX2, FMA, BMI2 (Intel Haswell, AMD Zen and later)
           minilab._kernels_avx512    x86-64-v4 + AVX-512 VPOPCNTDQ (Intel Ice Lake, AMD Zen 4 and later)
  aarch64: minilab._kernels_neon      armv8-a, whose NEON is baseline
  other:   minilab._kernels_portable  portable C
Whole modules, rather than a few functions with target attributes, because most of the training kernels
(im2col, BatchNorm, Adam, …) are plain loops that the compiler vectorises for whatever the module is built for.

Switches (the rule of minilab/core/config.py: "", "0", "false", "off" and "no" mean off):
  MINILAB_NATIVE=1     one module, minilab._kernels_native, for this machine only (-march=native / -mcpu=native):
                       the quickest build; it may stop with an illegal instruction on an older CPU
  MINILAB_PORTABLE=1   the portable module only (portable C, baseline flags)
  MINILAB_NO_POPCNT=1  the portable module without -mpopcnt, for x86-64 CPUs older than 2008
  MINILAB_NO_OPENMP=1  no OpenMP: the kernels' `threads` argument is ignored"""
import glob
import os
import platform

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup


def switch(name):
    """On unless unset or "", "0", "false", "off", "no" (any case): the rule of minilab/core/config.py."""
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "off", "no")


# no FMA contraction: float32 steps round exactly as NumPy does;  no errno from sqrtf, so loops that take a
# square root (Adam) vectorise;  no trapping math, so `x > 0 ? x : a * x` (PReLU) becomes a vector select instead
# of a branch on every sign (GCC may not run a product that could trap unless its value is used) — IEEE results
# are unchanged by all three
COMMON = ["-O3", "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math"]


def variants():
    """{variant name: its compiler flags} for this machine's architecture and the switches."""
    machine = platform.machine().lower()
    x86 = machine in ("x86_64", "amd64")
    arm = machine in ("aarch64", "arm64")
    portable = ["-DMINILAB_PORTABLE"] + (["-march=x86-64", "-mtune=generic"] if x86 else [])
    if x86 and not switch("MINILAB_NO_POPCNT"):
        portable += ["-mpopcnt"]
    if switch("MINILAB_NATIVE"):
        return {"native": ["-march=native"] if x86 else ["-mcpu=native"] if arm else []}
    if switch("MINILAB_PORTABLE") or not (x86 or arm):
        return {"portable": portable}
    if arm:
        return {"neon": ["-march=armv8-a"]}
    return {"portable": portable,
            "avx2": ["-march=x86-64-v3", "-mtune=generic"],
            "avx512": ["-march=x86-64-v4", "-mavx512vpopcntdq", "-mtune=generic"]}


def remove_single_module_builds():
    """An in-place build from before the split made one minilab._kernels*.so; it would hide the chooser
    minilab/_kernels.py, so it goes."""
    for path in glob.glob(os.path.join("minilab", "_kernels.*.so")) + glob.glob(os.path.join("minilab", "_kernels.*.pyd")):
        os.remove(path)


openmp = not switch("MINILAB_NO_OPENMP")
depends = sorted(glob.glob("_ext/*.h") + glob.glob("_ext/*/*.h") + glob.glob("_ext/pyx/*.pxi"))
modules = []
for name, flags in variants().items():
    extension = Extension(
        f"minilab._kernels_{name}",
        sources=["_ext/kernels.pyx"],
        depends=depends,
        include_dirs=[np.get_include(), "_ext"],
        extra_compile_args=COMMON + flags + (["-fopenmp"] if openmp else []),
        extra_link_args=["-fopenmp"] if openmp else [],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    )
    # one C file per variant: the same .pyx, cythonised under each module's name
    (module,) = cythonize([extension], build_dir=os.path.join("build", "cython", name),
                          compiler_directives={"language_level": "3"})
    module.extra_compile_args = list(extension.extra_compile_args)   # cythonize merges the flags of earlier
    modules.append(module)                                           # modules made from the same .pyx into it
# what the CPU supports, asked with baseline instructions only, so that it runs before any variant is chosen
modules += cythonize([Extension("minilab._cpu", sources=["_ext/cpu.pyx"], extra_compile_args=["-O2"])],
                     build_dir=os.path.join("build", "cython", "cpu"), compiler_directives={"language_level": "3"})
remove_single_module_builds()

setup(ext_modules=modules)
