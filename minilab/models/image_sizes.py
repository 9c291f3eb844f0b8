"""Which input sizes an architecture accepts, found by running it rather than by a table that could drift.

Each model halves its feature map several times (strided convs, pools); where a residual block adds its strided
conv (which rounds odd sizes up) to an average-pooled shortcut (which rounds down), an odd map size breaks the
addition, and pooling windows need a map at least as large as themselves.  Which sizes survive differs per
architecture and follows no one-line rule (LAB-BNN runs at 48 and 64 px but not at 50 or 112), so the answer is
computed: a forward pass of the architecture at a small width (the shapes do not depend on the width) on one
S×S image, in evaluation mode, remembered per (architecture, size).  The probe runs on the NumPy reference ops:
the shapes are the same on every implementation, and a probe that loaded the compiled kernels would do so before
`set_threads` could choose how their threads wait (`minilab.core.config.load`)."""
import functools

import numpy as np

PROBE_WIDTH = 1 / 16
SIZE_RANGE = (16, 512)


@functools.lru_cache(maxsize=None)
def image_size_problem(arch, size):
    """None when `arch` runs on size×size images, else the error it raises."""
    from ..core import config
    from ..core.autograd import Tensor, no_grad
    from . import create_model

    try:
        model = create_model(arch, num_classes=2, image_size=size, width=PROBE_WIDTH)
        model.eval()
        with no_grad(), config.use(kernels=False):
            model(Tensor(np.zeros((1, 3, size, size), dtype=np.float32)))
    except (ValueError, ZeroDivisionError, IndexError) as error:
        return str(error)
    return None


def _nearest(arch, size, step, limit=64):
    s = size + step
    while SIZE_RANGE[0] <= s <= SIZE_RANGE[1] and abs(s - size) <= limit:
        if image_size_problem(arch, s) is None:
            return s
        s += step
    return None


def _always_fine_multiple(arch):
    """The smallest of 8, 16, 32, 64 whose every multiple in the size range works, or None."""
    for m in (8, 16, 32, 64):
        sizes = range(max(m, SIZE_RANGE[0] // m * m), SIZE_RANGE[1] + 1, m)
        works = [image_size_problem(arch, s) is None for s in sizes]
        first = works.index(True) if True in works else None
        if first is not None and all(works[first:]):
            return m, sizes[first]
    return None


def check_image_size(arch, size):
    """Raise ValueError saying which sizes `arch` accepts when it cannot run at `size`."""
    lo, hi = SIZE_RANGE
    if not lo <= size <= hi:
        raise ValueError(f"--image-size must be between {lo} and {hi} px, got {size}")
    problem = image_size_problem(arch, size)
    if problem is None:
        return
    near = [s for s in (_nearest(arch, size, -1), _nearest(arch, size, +1)) if s is not None]
    hint = f"; the nearest sizes that work are {' and '.join(map(str, near))} px" if near else ""
    rule = _always_fine_multiple(arch)
    if rule:
        hint += f"; every multiple of {rule[0]} from {rule[1]} to {hi} px works"
    raise ValueError(f"--image-size {size} does not fit {arch} ({problem}){hint}")
