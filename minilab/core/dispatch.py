"""Which implementation of an op runs: the NumPy reference, or a compiled twin that gives the same answer.

A twin is a small class bound to the reference it must match (`@twin_of(SignSTE)`), declaring what it accepts:

    accepts(*arrays, **options) -> bool    dtypes, contiguity, shapes and options it handles
    forward(ctx, *arrays, **options)       the same contract as the reference Function's forward …
    backward(ctx, grad)                    … and backward (the ctx is the twin's own: it may save other things)
    run(*arrays, **options)                instead of forward/backward, for a plain function (Adam's update)
    exact = True, or rtol = 1e-5           how close it is to the reference: bit for bit, or a float32 tolerance

`Function.apply` asks `choose` once per call (never in surrogate mode, never with the kernels off), and the result
tensor remembers which implementation ran, so that its backward is the same one's.  This file imports no kernel
and no twin: `minilab.fast` registers the twins when the package root imports it, and they run only once the
compiled kernels loaded."""
from . import config

twins: dict = {}   # reference Function (or plain function) -> its twins, in the order they are tried


def twin_of(reference):
    """Class decorator: register the class as a compiled twin of `reference`."""
    def register(twin):
        if not hasattr(twin, "exact") and not hasattr(twin, "rtol"):
            raise TypeError(f"{twin.__name__} must declare `exact = True` or an `rtol`")
        twin.reference = reference
        twins.setdefault(reference, []).append(twin)
        return twin
    return register


def choose(reference, arrays, options):
    """The first registered twin of `reference` that accepts these inputs, or None (use the reference)."""
    if config.kernels() is None:   # the first call loads the kernels
        return None
    for twin in twins.get(reference, ()):
        if twin.accepts(*arrays, **options):
            return twin
    return None


def call(fn, *arrays, **options):
    """fn(*arrays, **options), or the `run` of a twin of fn that accepts them (plain functions, not Functions)."""
    twin = choose(fn, arrays, options)
    return (twin.run if twin is not None else fn)(*arrays, **options)
