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
compiled kernels loaded.

`replaced(reference, implementation)` swaps any implementation in for a reference inside a `with` block, ahead of
the twins and with or without the kernels: `minilab.course` runs a student's ops inside a real model this way."""
import contextlib

from . import config

twins: dict = {}   # reference Function (or plain function) -> its twins, in the order they are tried
replacements: dict = {}   # reference Function -> the implementation `replaced` put in its place


@contextlib.contextmanager
def replaced(reference, implementation):
    """Within the block every `reference.apply` runs `implementation.forward` / `.backward` (the reference's
    contract, every option passed through) instead of the reference or any twin.  Blocks nest; leaving one puts
    back what ran before it."""
    previous = replacements.get(reference)
    replacements[reference] = implementation
    try:
        yield implementation
    finally:
        if previous is None:
            del replacements[reference]
        else:
            replacements[reference] = previous


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
    if replacements and reference in replacements:
        return replacements[reference]
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
