"""The compiled kernels for this CPU: one of the modules setup.py builds, chosen when the kernels are first used.

    minilab._kernels_native    a MINILAB_NATIVE=1 build, made for the machine that built it: always preferred
    minilab._kernels_avx512    x86-64-v4 + AVX-512 VPOPCNTDQ
    minilab._kernels_avx2      x86-64-v3 (AVX2, FMA, BMI2)
    minilab._kernels_neon      ARM64 (NEON)
    minilab._kernels_portable  portable C (baseline x86-64 + POPCNT, or any other CPU)

The best one built that the CPU reports it can run is taken (`minilab._cpu` asks cpuid), so a wheel built on one
machine runs at full speed on another, and an older CPU gets an older variant instead of an illegal instruction.
MINILAB_ISA=portable|avx2|avx512|neon|native forces one; if this CPU or this build cannot run it, importing this
module raises ImportError with one line that says why (minilab then falls back to the NumPy reference ops).

Importing this module replaces it in sys.modules by the chosen extension module, so `from minilab import
_kernels` gives the kernels themselves; their `variant`, `variant_reason` and `variants_built` say which was
chosen, why, and what else this installation has."""
import importlib
import importlib.util
import os
import platform
import sys

ORDER = ("native", "avx512", "avx2", "neon", "portable")   # preferred first
NAMES = {"native": "this machine's own instructions (MINILAB_NATIVE=1 build)",
         "avx512": "AVX-512 VPOPCNTDQ (x86-64-v4)", "avx2": "AVX2 (x86-64-v3)", "neon": "NEON (ARM64)",
         "portable": "portable C"}


def built():
    """The variants this installation has, preferred first."""
    return [v for v in ORDER if importlib.util.find_spec(f"minilab._kernels_{v}") is not None]


def runnable(variant):
    """Whether this CPU can run `variant` (the CPU's own report; a native build is trusted to match)."""
    machine = platform.machine().lower()
    x86 = machine in ("x86_64", "amd64")
    if variant == "native":
        return True
    if variant == "neon":
        return machine in ("aarch64", "arm64")
    if variant == "portable":
        if not x86:
            return True
        from . import _cpu
        return _cpu.supports()["popcnt"]
    if not x86:
        return False
    from . import _cpu
    return _cpu.supports()[variant]


def choose(forced=None):
    """(variant, why): the variant to load, or (None, one line saying why none can be)."""
    have = built()
    if not have:
        return None, "no compiled kernel module is built (run `pip install -e .`)"
    if forced:
        if forced not in ORDER:
            return None, f"MINILAB_ISA={forced} is not one of {', '.join(ORDER)}"
        if forced not in have:
            return None, f"MINILAB_ISA={forced}: this build has no such module (built: {', '.join(have)})"
        if not runnable(forced):
            can = [v for v in have if runnable(v)]
            return None, (f"MINILAB_ISA={forced}: this CPU cannot run {NAMES[forced]} "
                          f"(it can run: {', '.join(can) or 'none of the built modules'})")
        return forced, "forced by MINILAB_ISA"
    for variant in have:
        if runnable(variant):
            return variant, "the best this CPU supports" if variant != "native" else "the native build"
    return None, (f"this CPU can run none of the built kernel modules ({', '.join(have)}); "
                  "an x86-64 CPU without POPCNT needs a build with MINILAB_NO_POPCNT=1")


_variant, _why = choose(os.environ.get("MINILAB_ISA", "").strip().lower() or None)
if _variant is None:
    raise ImportError(_why)
_module = importlib.import_module(f"minilab._kernels_{_variant}")
_module.variant = _variant
_module.variant_reason = _why
_module.variants_built = built()
sys.modules[__name__] = _module
