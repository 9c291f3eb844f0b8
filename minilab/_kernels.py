"""The compiled kernels for this CPU: one of the modules setup.py builds, chosen when the kernels are first used.

    minilab._kernels_native    a MINILAB_NATIVE=1 build, made for the machine that built it: always preferred
    minilab._kernels_avx512    x86-64-v4 + AVX-512 VPOPCNTDQ
    minilab._kernels_avx2      x86-64-v3 (AVX2, FMA, BMI2)
    minilab._kernels_neon      ARM64 (NEON)
    minilab._kernels_portable  portable C (baseline x86-64 + POPCNT, or any other CPU)

The best one built that the CPU reports it can run is taken (`minilab._cpu` asks cpuid; the choice is
`minilab.core.machine.choose_kernels`), so a wheel built on one machine runs at full speed on another, and an older
CPU gets an older variant instead of an illegal instruction.
MINILAB_ISA=portable|avx2|avx512|neon|native forces one; if this CPU or this build cannot run it, importing this
module raises ImportError with one line that says why (minilab then falls back to the NumPy reference ops).

Importing this module replaces it in sys.modules by the chosen extension module, so `from minilab import
_kernels` gives the kernels themselves; their `variant`, `variant_reason` and `variants_built` say which was
chosen, why, and what else this installation has."""
import importlib
import os
import sys

from .core.machine import choose_kernels

_variant, _why, _built = choose_kernels(os.environ.get("MINILAB_ISA", "").strip().lower() or None)
if _variant is None:
    raise ImportError(_why)
_module = importlib.import_module(f"minilab._kernels_{_variant}")
_module.variant = _variant
_module.variant_reason = _why
_module.variants_built = _built
sys.modules[__name__] = _module
