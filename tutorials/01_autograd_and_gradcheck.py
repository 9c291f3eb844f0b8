"""
01 — Autograd from scratch, and checking a backward by hand
===========================================================

**What you will learn:** how minilab's ``Tensor`` records the graph of the operations applied to it, in which
order ``backward()`` walks that graph, how to write a new operation as a ``Function`` with a hand-written
backward, and how ``gradcheck`` proves a backward right with central differences.

**What you need:** Python, NumPy, and the chain rule.  This is the first tutorial; nothing earlier is assumed.

Every op in minilab is a ``Function`` with two static methods: ``forward(ctx, *arrays)`` computes the value with
NumPy and saves on ``ctx`` what the backward will need; ``backward(ctx, g)`` turns the gradient of the output
into the gradients of the inputs.  Nothing is differentiated numerically during training.
"""

# %%
# A graph, recorded while you compute
# -----------------------------------
# Take :math:`y = \sum_i (x_i w_i + x_i)`.  Each operation (``*``, ``+``, ``sum``) creates a new tensor that
# remembers the op that made it and its inputs (its *parents*).  ``backward()`` then applies the chain rule
# from ``y`` back to the leaves ``x`` and ``w``:
#
# .. math::
#
#    \frac{\partial y}{\partial x_i} = w_i + 1, \qquad \frac{\partial y}{\partial w_i} = x_i .
import numpy as np
from common import OUT, shows

import minilab as ml
from minilab import F
from minilab.analysis.graph import draw_graph, topological_order

x = ml.tensor([1.0, 2.0, 3.0], requires_grad=True)
w = ml.tensor([0.5, -1.0, 2.0], requires_grad=True)
t1 = x * w
t2 = t1 + x
y = t2.sum()
y.backward(retain_graph=True)          # keep the graph, so that we can draw its gradients afterwards
print("dy/dx =", x.grad, "  expected w + 1 =", w.data + 1)
print("dy/dw =", w.grad, "  expected x     =", x.data)
assert np.array_equal(x.grad, w.data + 1) and np.array_equal(w.grad, x.data)

# %%
# Drawing the graph
# -----------------
# ``minilab.analysis.graph.draw_graph`` draws what was recorded: blue boxes are leaves (tensors you created), orange boxes
# are ops, white boxes are the tensors the ops produced, each with its shape and dtype; since ``backward`` has
# run (and kept the graph), every tensor also shows :math:`\partial y / \partial t`.  Look at ``x``: it feeds
# two ops, and its gradient is the *sum* of what comes back along both arrows — :math:`w_i` through ``Mul`` and
# :math:`1` through ``Add``.
if draw_graph(y, f"{OUT}/01_graph.png", names={"x": x, "w": w, "t1 = x·w": t1, "t2 = t1 + x": t2, "y": y}):
    shows(f"{OUT}/01_graph.png")

# %%
# The order backward walks
# ------------------------
# ``backward`` must not pass a gradient on from a tensor before *every* path into that tensor has delivered its
# share.  It therefore visits the tensors in **reverse topological order**: every tensor before the tensors it
# was computed from.  ``topological_order`` returns exactly the order ``backward`` uses (it is computed with an
# explicit stack rather than recursion, so graphs thousands of ops deep are fine):
names = {id(x): "x", id(w): "w", id(t1): "t1", id(t2): "t2", id(y): "y"}
order = topological_order(y)
for step, node in enumerate(order):
    made_by = node._op.__name__ if node._op is not None else "leaf"
    print(f"step {step}: {names[id(node)]:2s} ({made_by})")
place = {id(node): i for i, node in enumerate(order)}
assert all(place[id(node)] < place[id(parent)] for node in order for parent in node._parents)

# %%
# Two rules follow from this walk.  A second ``backward()`` over the same graph is an error unless the first
# kept it (``retain_graph=True``, as above); and the gradients of leaves **accumulate** across calls, as in
# PyTorch, so a training loop calls ``zero_grad()`` between steps:
y.backward()                    # a second pass over the kept graph: x.grad is now twice w + 1
print("after a second backward, dy/dx =", x.grad)
assert np.array_equal(x.grad, 2 * (w.data + 1))

# %%
# Writing an op: Softsign
# -----------------------
# :math:`y = x / (1 + |x|)`, whose derivative is :math:`\mathrm{d}y/\mathrm{d}x = 1 / (1 + |x|)^2`.  The forward
# saves :math:`x`; the backward multiplies the incoming gradient by the derivative.


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
# Checking a backward: ``gradcheck``
# ----------------------------------
# ``gradcheck`` compares the backward with central differences,
#
# .. math::
#
#    \frac{\partial f}{\partial x_i} \approx \frac{f(x + h e_i) - f(x - h e_i)}{2h},
#
# for every input entry, in float64 (in float32 the rounding error of the difference would swamp it).  A
# non-scalar output is first projected on a fixed random direction, so every entry of the Jacobian counts.  A
# wrong backward fails loudly, naming the worst entry:


class WrongSoftsign(Softsign):
    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved
        return g / (1 + np.abs(x))          # forgot the square


try:
    ml.gradcheck(lambda t: WrongSoftsign.apply(t), x64)
    raise RuntimeError("gradcheck should have caught the missing square")
except AssertionError as error:
    print("caught:", str(error)[:110], "…")

# %%
# The same check for a real layer
# -------------------------------
# A convolution with stride, padding and groups: its backward is two matrix products and a ``col2im``, exactly
# the kind of code where an index slips.  Small float64 inputs keep the check quick.
xc = ml.Tensor(np.random.default_rng(1).standard_normal((2, 4, 5, 5)), requires_grad=True)
wc = ml.Tensor(np.random.default_rng(2).standard_normal((6, 2, 3, 3)), requires_grad=True)
print("conv2d(stride 2, padding 1, groups 2) passes:",
      ml.gradcheck(lambda a, b: F.conv2d(a, b, stride=2, padding=1, groups=2), xc, wc))

# %%
# Exercises
# ---------
# Each runs in seconds; the worked answers (with their checks) are at the end of the page.
#
# 1. **Swish.**  Write :math:`y = x\,\sigma(x)` as a ``Function`` (its derivative is
#    :math:`\sigma(x)\,(1 + x(1 - \sigma(x)))`) and check it: ``assert ml.gradcheck(lambda t: Swish.apply(t), x64)``.
# 2. **Predict, then run.**  For ``x = ml.tensor([2.0], requires_grad=True)`` and ``y = (x * x * x).sum()``,
#    what is ``x.grad`` after ``y.backward()``?  How many entries has ``topological_order(y)``?
# 3. **A wrong forward.**  Keep Softsign's backward but make its forward return ``x / (1 + x * x)``.  Predict
#    whether gradcheck passes, then run it.
# 4. **Accumulation.**  Predict ``x.grad`` after calling ``backward`` three times (with ``retain_graph=True``)
#    on ``y = (2 * x).sum()`` without ``zero_grad``; check with an ``assert``.
#
# ``minilab.course`` holds graded versions of such tasks for a class.
#
# Answers
# -------
# **1.**  The backward multiplies by the derivative given in the exercise; gradcheck agrees.


class Swish(ml.Function):
    """y = x·σ(x);  ∂y/∂x = σ(x)·(1 + x·(1 − σ(x)))."""

    @staticmethod
    def forward(ctx, x):
        s = 1 / (1 + np.exp(-x))
        ctx.save(x, s)
        return x * s

    @staticmethod
    def backward(ctx, g):
        x, s = ctx.saved
        return g * s * (1 + x * (1 - s))


assert ml.gradcheck(lambda t: Swish.apply(t), x64)
print("1. Swish passes gradcheck")

# %%
# **2.**  :math:`\mathrm{d}(x^3)/\mathrm{d}x = 3x^2 = 12` at :math:`x = 2`.  The graph has the leaf, two
# ``Mul`` results and the ``Sum``: four tensors.
x = ml.tensor([2.0], requires_grad=True)
y = (x * x * x).sum()
y.backward()
assert x.grad[0] == 12 and len(topological_order(y)) == 4
print("2. x.grad =", x.grad, "and the walk visits", len(topological_order(y)), "tensors")

# %%
# **3.**  It fails: gradcheck differentiates the forward numerically, so a forward and a backward that
# disagree are caught whichever of the two is wrong.


class WrongForward(Softsign):
    @staticmethod
    def forward(ctx, x):
        ctx.save(x)
        return x / (1 + x * x)


try:
    ml.gradcheck(lambda t: WrongForward.apply(t), x64)
    failed = False
except AssertionError:
    failed = True
assert failed
print("3. gradcheck rejects the wrong forward")

# %%
# **4.**  Each backward adds :math:`\partial y/\partial x = 2` to what is there: 6 after three calls.
x = ml.tensor([1.0, -1.0], requires_grad=True)
y = (2 * x).sum()
for _ in range(3):
    y.backward(retain_graph=True)
assert np.array_equal(x.grad, [6.0, 6.0])
print("4. x.grad after three backward calls:", x.grad)
