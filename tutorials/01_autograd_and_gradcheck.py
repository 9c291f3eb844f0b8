r"""
01 — Autograd from scratch, and checking a backward by hand
===========================================================

**What you learn:** how minilab's `Tensor` records a graph, how `backward()` walks it in reverse topological
order, how to write a new op as a `Function` with a hand-written backward, and how `gradcheck` proves the
backward right with central differences in float64.

Every op in minilab is a `Function` with two static methods: `forward(ctx, *arrays)` computes the value with
NumPy and saves what the backward needs on `ctx`; `backward(ctx, g)` turns the gradient of the output into the
gradients of the inputs.  Nothing is differentiated numerically.
"""

# %%
import numpy as np

import minilab as ml
from minilab import F

x = ml.tensor([1.0, 2.0, 3.0], requires_grad=True)
y = (x * x + x).sum()          # y = Σ x² + x
y.backward()
print("dy/dx =", x.grad, " (2x + 1)")

# %%
# A tensor used twice gets the *sum* of both paths' gradients (here `x` appears in `x * x` twice and in `+ x`).
# The graph is walked iteratively, so even 20 000 chained ops are fine.  A second `backward()` over the same graph
# is an error unless the first kept it (`retain_graph=True`); leaf gradients then **accumulate**, as in PyTorch.

# %%
z = x
for _ in range(20000):
    z = z * 1.0
z.sum().backward()
print("after a 20 000-op chain, x.grad accumulated to", x.grad)

# %%
# Writing an op: Softsign, y = x / (1 + \|x\|)
# --------------------------------------------
#
# The derivative is  dy/dx = 1 / (1 + \|x\|)².  The forward saves x; the backward multiplies the incoming gradient.

# %%
class Softsign(ml.Function):
    """y = x / (1 + |x|);  ∂y/∂x = 1 / (1 + |x|)²."""

    @staticmethod
    def forward(ctx, x):
        ctx.save(x)
        return x / (1 + np.abs(x))

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved
        return g / (1 + np.abs(x)) ** 2


x64 = ml.Tensor(np.random.default_rng(0).standard_normal((3, 4)), requires_grad=True)  # float64 for gradcheck
print("Softsign passes gradcheck:", ml.gradcheck(lambda t: Softsign.apply(t), x64))

# %%
# `gradcheck` compares the backward with (f(x + h) − f(x − h)) / 2h for every input entry, projected on a random
# output direction so every Jacobian entry counts.  A wrong backward fails loudly, naming the worst entry:

# %%
class WrongSoftsign(Softsign):
    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved
        return g / (1 + np.abs(x))          # forgot the square


try:
    ml.gradcheck(lambda t: WrongSoftsign.apply(t), x64)
except AssertionError as error:
    print("caught:", str(error)[:110], "…")

# %%
# The same check for a real layer: a conv with stride, padding and groups
# -----------------------------------------------------------------------
# Inputs are float64 so that central differences are accurate; the conv's backward is two GEMMs and a col2im.

# %%
xc = ml.Tensor(np.random.default_rng(1).standard_normal((2, 4, 5, 5)), requires_grad=True)
wc = ml.Tensor(np.random.default_rng(2).standard_normal((6, 2, 3, 3)), requires_grad=True)
print("conv2d(stride 2, padding 1, groups 2) passes:",
      ml.gradcheck(lambda a, b: F.conv2d(a, b, stride=2, padding=1, groups=2), xc, wc))

# %%
# Exercises
# ---------
# 1. Write `Swish` (y = x·σ(x)) as a Function and gradcheck it.
# 2. Make `WrongSoftsign` pass by fixing only its backward; then break `forward` instead — what does gradcheck say?
# 3. Read `minilab/autograd.py::_topological_order`: why does an explicit stack avoid Python's recursion limit?
