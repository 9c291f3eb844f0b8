"""Compiled twin of Adam's per-parameter update (`optim.optimizers.adam_update`)."""
import numpy as np

from ..core import config
from ..core.config import compiled as ext
from ..core.dispatch import twin_of
from ..optim.optimizers import adam_update


@twin_of(adam_update)
class AdamUpdateKernel:
    """C-contiguous float32 w, g, m, v: the reference's float32 steps and the clip in one pass instead of about
    ten whole-array NumPy passes.  Equals the reference bit for bit (the extension is built without FMA
    contraction, so every product is rounded where NumPy rounds it)."""
    exact = True

    @staticmethod
    def accepts(w, g, m, v, **options):
        return all(a.dtype == np.float32 and a.flags.c_contiguous for a in (w, g, m, v))

    @staticmethod
    def run(w, g, m, v, *, lr, b1, b2, eps, step, clip=None):
        ext.adam_update(w.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1), b1, 1 - b1, b2, 1 - b2,
                        1 - b1 ** step, 1 - b2 ** step, lr, eps, config.threads, -1.0 if clip is None else clip)
