# cython: language_level=3
"""What this CPU supports, as the CPU itself reports it (cpuid, through the compiler's __builtin_cpu_supports,
which also checks that the operating system saves the wide registers).  Built with baseline flags, so it runs
on any CPU of its architecture: minilab/_kernels.py asks it before loading a kernel module that needs more."""

cdef extern from *:
    """
    /* 1 when the CPU (and the OS) support everything the module built for that level uses, else 0 */
    static int minilab_cpu_avx2(void) {
    #if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
        __builtin_cpu_init();
        return __builtin_cpu_supports("x86-64-v3") != 0;
    #elif defined(__x86_64__)
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi")
            && __builtin_cpu_supports("bmi2") && __builtin_cpu_supports("popcnt");
    #else
        return 0;
    #endif
    }
    static int minilab_cpu_avx512(void) {
    #if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
        __builtin_cpu_init();
        return __builtin_cpu_supports("x86-64-v4") && __builtin_cpu_supports("avx512vpopcntdq");
    #elif defined(__x86_64__)
        __builtin_cpu_init();
        return minilab_cpu_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
            && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")
            && __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx512vpopcntdq");
    #else
        return 0;
    #endif
    }
    static int minilab_cpu_popcnt(void) {
    #if defined(__x86_64__)
        __builtin_cpu_init();
        return __builtin_cpu_supports("popcnt") != 0;
    #else
        return 1;
    #endif
    }
    """
    int minilab_cpu_avx2()
    int minilab_cpu_avx512()
    int minilab_cpu_popcnt()


def supports():
    """{"popcnt": bool, "avx2": bool, "avx512": bool}: the x86-64 levels minilab builds for (all but popcnt
    False elsewhere).  avx2 is x86-64-v3 (AVX2, FMA, BMI1/2, …); avx512 is x86-64-v4 plus AVX-512 VPOPCNTDQ."""
    return {"popcnt": bool(minilab_cpu_popcnt()), "avx2": bool(minilab_cpu_avx2()),
            "avx512": bool(minilab_cpu_avx512())}
