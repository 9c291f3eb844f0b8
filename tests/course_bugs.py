"""Seeded bugs for minilab.course: realistic wrong implementations of every task, each a text replacement in the
solution module, and the words of the hint `check` must give for it."""
from dataclasses import dataclass


@dataclass(frozen=True)
class Bug:
    task: int
    name: str
    old: str       # a line (or part of one) of the solution …
    new: str       # … and what the student wrote instead
    hint: str      # a phrase of the hint the failed check must show


BUGS = [
    Bug(1, "np.sign gives sign(0) = 0", "return np.where(x >= 0, x.dtype.type(1), x.dtype.type(-1))",
        "return np.sign(x)", "sign(0) must be +1"),
    Bug(1, "no clipping window", "return grad * inside", "return grad", "non-zero where |x| > clip"),
    Bug(1, "open window |x| < clip", "ctx.save(np.abs(x) <= clip)", "ctx.save(np.abs(x) < clip)",
        "the window is closed"),
    Bug(2, "2 − 2|x| everywhere", "np.where(ax <= 1, 2 - 2 * ax, 0)", "(2 - 2 * ax)", "turns negative"),
    Bug(2, "2 − 2x, not 2 − 2|x|", "np.where(ax <= 1, 2 - 2 * ax, 0)", "np.where(ax <= 1, 2 - 2 * x, 0)",
        "use |x|"),
    Bug(3, "padded row length", "return nbits - 2 * differ", "return 64 * a_bits.shape[1] - 2 * differ",
        "true row length"),
    Bug(3, "zero padding packed as +1", "if pad_value == 0 and padding > 0:", "if False:",
        "0-padding is neither bit"),
    Bug(3, "big-endian bit order", 'np.packbits(m < 0, axis=1, bitorder="little")', "np.packbits(m < 0, axis=1)",
        "little bit order"),
    Bug(4, "a tie gives +1", "np.where(beta * diff > 0, 1, -1)", "np.where(beta * diff >= 0, 1, -1)",
        "r1 = r0 gives −1"),
    Bug(4, "no gradient for β", "return grad_r, grad_beta", "return grad_r, None", "LAB learns β too"),
    Bug(4, "maps paired as halves", "diff = r[:, 1::2] - r[:, 0::2]",
        "diff = r[:, r.shape[1] // 2:] - r[:, :r.shape[1] // 2]", "maps 2c and 2c + 1"),
    Bug(5, "ReLU's gradient where x ≤ 0", "np.where(positive, grad, grad * slope)", "np.where(positive, grad, 0)",
        "0 would be ReLU's"),
    Bug(5, "slope gradient uses a, not x", "np.where(positive, 0, grad * x)", "np.where(positive, 0, grad * slope)",
        "(not ·a_c)"),
    Bug(5, "slope gradient summed over the batch only", ".sum(axis=per_channel)", ".sum(axis=0)",
        "into shape (C,)"),
    Bug(5, "slope broadcast over the last axis", "slope = a.reshape((1, -1) + (1,) * (x.ndim - 2))", "slope = a",
        "reshape it to (1, C, 1, …)"),
    Bug(6, "shortcut after the PReLU", "return self.prelu(self.bn(self.conv(x)) + x)",
        "return self.prelu(self.bn(self.conv(x))) + x", "before the PReLU"),
    Bug(6, "no optimizer step", "        optimizer.step()\n", "", "optimizer.step()"),
]
