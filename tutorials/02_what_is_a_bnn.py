"""
02 — What a binary neural network is, and how it can learn at all
=================================================================

**What you will learn:** what a binary neural network (BNN) binarizes (the weights *and* the activations), why
it keeps a float "latent" copy of every weight and clips it, why the derivative of ``sign`` is useless for
learning, what the straight-through estimator (STE) does instead and why it has a window, and how a minilab
``Function`` declares the smooth *surrogate* whose derivative its backward uses.

**What you need:** tutorial 01 (a ``Function`` with a forward and a backward; ``gradcheck``).
"""

# %%
# Two things are binarized
# ------------------------
# A convolution multiplies activations by weights and adds the products up.  A BNN replaces both factors by
# :math:`\pm 1`:
#
# * the **activations** :math:`x` (the input of every binary convolution) become :math:`\mathrm{sign}(x)`
#   (with :math:`\mathrm{sign}(0) = +1`);
# * the **weights** become :math:`\alpha_o\,\mathrm{sign}(w)`, one scale :math:`\alpha_o` per output channel
#   (Bi-Real Net's *magnitude-aware sign*: :math:`\alpha_o` is the mean of :math:`|w|` over that channel).
#
# The product of two :math:`\pm 1` numbers is again :math:`\pm 1`, which tutorial 03 turns into bit operations.
# The float weights :math:`w` do not disappear: the optimizer keeps them — they are the **latent weights** — and
# only their signs (and the per-channel scale) reach the forward pass.  A ``BinaryConv2d`` shows both:
import numpy as np
from common import OUT, SMOKE, shows

import minilab as ml
from minilab import F, nn
from minilab.analysis import plotting
from minilab.optim import Adam

nn.init.seed(0)
conv = nn.BinaryConv2d(4, 2, 3)
w_used = F.magnitude_aware_sign(conv.weight).data
print("latent weights of output channel 0 (first 6):", np.round(conv.weight.data[0].ravel()[:6], 3))
print("what the forward uses for channel 0:         ", np.round(w_used[0].ravel()[:6], 3))
for o in range(2):
    print(f"channel {o}: values used {np.unique(w_used[o]).round(4)}, alpha = mean|w| = "
          f"{np.abs(conv.weight.data[o]).mean():.4f}")
x = ml.tensor(np.random.default_rng(0).standard_normal((1, 4, 5, 5)).astype(np.float32))
print("the activations it sees are", np.unique(F.sign_ste(x).data), "; latent weights are clipped to ±",
      conv.weight.clip, "after every optimizer step")

# %%
# Why the derivative of sign is useless
# -------------------------------------
# :math:`\mathrm{sign}` is constant on each side of 0, so its derivative is 0 everywhere except at 0, where it
# does not exist.  A gradient computed with that derivative is zero for every weight: gradient descent would
# never change anything.  Central differences say the same thing:
xs = np.array([-0.7, -0.2, 0.3, 0.9])
h = 1e-3
numeric = (np.where(xs + h >= 0, 1, -1) - np.where(xs - h >= 0, 1, -1)) / (2 * h)
print("numerical derivative of sign at", xs, "=", numeric)
assert np.all(numeric == 0)

# %%
# The straight-through estimator and its window
# ---------------------------------------------
# The fix (Bengio et al. 2013; Hubara et al. 2016) is to keep :math:`\mathrm{sign}` in the forward but, in the
# backward, pretend it was the clipped identity :math:`\mathrm{clip}(x, -1, 1)`.  Its derivative is the
# **pseudo-gradient**
#
# .. math::
#
#    \frac{\partial q}{\partial x} := \mathbb{1}_{|x| \le 1} ,
#
# so the gradient passes "straight through" — but only inside a **window**.  Outside it, the gradient is cut:
# an input far from 0 would need a large change to flip its sign, so telling it to move is mostly noise.  The
# same window explains the **clipping of latent weights** to :math:`[-1, 1]`: a weight pushed beyond the window
# would stop receiving gradient (and, without the clip, could drift so far that it never flips back).
#
# Bi-Real Net's ``ApproxSign`` uses a finer surrogate, the piecewise quadratic :math:`2x - x|x|` on
# :math:`[-1, 1]`, whose derivative :math:`2 - 2|x|` is a triangle: largest at 0, where a small change is most
# likely to flip the sign.  In the figure, the left panel shows the forward values (sign jumps at 0; the filled
# dot is the value it takes there) and the surrogates; the right panel is what ``backward()`` returns, computed
# by minilab on 1,201 points.
grid = np.linspace(-1.5, 1.5, 1201)
forward, gradient = {}, {}
for name, fn in [("STE", F.sign_ste), ("ApproxSign", F.approx_sign)]:
    t = ml.tensor(grid, requires_grad=True)
    fn(t).sum().backward()
    gradient[name] = t.grad
    with ml.surrogate_mode():
        forward[name] = fn(ml.tensor(grid)).data
sign = F.sign_ste(ml.tensor(grid)).data
assert np.array_equal(gradient["STE"], (np.abs(grid) <= 1).astype(np.float32))


def sign_and_surrogates(fig):
    left, right = fig.subplots(1, 2, sharex=True)
    left.plot(*plotting.break_at_jumps(grid, sign), color="black", label="sign(x)")
    plotting.mark_jump(left, 0, 1, -1, "black")
    left.plot(grid, forward["STE"], color=plotting.COLOURS[0], label="STE surrogate: clip(x, −1, 1)")
    left.plot(grid, forward["ApproxSign"], color=plotting.COLOURS[1], ls="--",
              label="ApproxSign surrogate: 2x − x|x|")
    left.set(title="forward", xlabel="$x$", ylabel="output")
    right.plot(*plotting.break_at_jumps(grid, gradient["STE"]), color=plotting.COLOURS[0],
               label="STE: $1_{|x| \\leq 1}$")
    for edge in (-1, 1):
        plotting.mark_jump(right, edge, 1, 0, plotting.COLOURS[0])
    right.plot(grid, gradient["ApproxSign"], color=plotting.COLOURS[1], ls="--", label="ApproxSign: 2 − 2|x|")
    right.set(title="backward: the pseudo-gradient minilab uses", xlabel="$x$",
              ylabel="$\\partial\\,\\mathrm{output} / \\partial x$")
    plotting.legend_below(left)
    plotting.legend_below(right)


shows(plotting.draw(f"{OUT}/02_sign_vs_surrogates.png", sign_and_surrogates, "wide",
                    "sign and the surrogates behind its pseudo-gradients"))

# %%
# Learning binary weights: true derivative vs STE
# -----------------------------------------------
# A small experiment makes the point.  A "teacher" vector :math:`v \in \{-1, +1\}^{K}` produces targets
# :math:`z = Xv`; a student with latent weights :math:`w` predicts :math:`X\,\mathrm{sign}(w)` and minimises the
# squared error with Adam.  Once with the true derivative of sign (zero), once with the STE — the latent weights
# clipped to :math:`[-1, 1]` after every step, as Adam does for every parameter that declares a ``clip``.  We
# count the student's signs that agree with the teacher.


class TrueSign(ml.Function):
    """sign with its true derivative: 0 wherever it exists."""

    @staticmethod
    def forward(ctx, x):
        return np.where(x >= 0, 1.0, -1.0).astype(x.dtype)

    @staticmethod
    def backward(ctx, g):
        return np.zeros_like(g)


K, N = 64, 256
rng = np.random.default_rng(1)
teacher = np.where(rng.random(K) < 0.5, -1.0, 1.0).astype(np.float32)
X = rng.standard_normal((N, K)).astype(np.float32)
target = ml.tensor((X @ teacher)[:, None])
steps = 60 if SMOKE else 150
agreement = {}
for name, binarize in [("true derivative of sign", TrueSign.apply), ("STE, latent weights clipped", F.sign_ste)]:
    w = nn.Parameter(0.1 * np.random.default_rng(2).standard_normal((K, 1)), clip=1.0)
    opt = Adam([w], lr=0.05)
    curve = [float(np.mean(np.sign(w.data[:, 0]) == teacher))]
    for step in range(steps):
        loss = ((ml.tensor(X) @ binarize(w) - target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()                              # the Adam update, then w ← clip(w, −1, 1)
        assert np.abs(w.data).max() <= 1.0      # the clip holds after every step
        curve.append(float(np.mean(np.where(w.data[:, 0] >= 0, 1, -1) == teacher)))
    agreement[name] = curve
    print(f"{name:30s}: signs agreeing with the teacher {curve[0]:.2f} -> {curve[-1]:.2f}")
assert agreement["true derivative of sign"][-1] == agreement["true derivative of sign"][0]   # nothing moved
assert agreement["STE, latent weights clipped"][-1] > agreement["STE, latent weights clipped"][0]


def learning_curves(fig):
    ax = fig.add_subplot()
    for colour, (name, curve) in zip(plotting.COLOURS, agreement.items()):
        ax.plot(curve, color=colour, label=name)
    ax.set(xlabel="Adam step", ylabel="fraction of signs equal to the teacher's", ylim=(0, 1.05),
           title=f"learning {K} binary weights")
    plotting.legend_below(ax)


shows(plotting.draw(f"{OUT}/02_learning_binary_weights.png", learning_curves))

# %%
# With the true derivative the latent weights never move and the agreement stays where chance put it.  With the
# STE the student recovers the teacher's signs.
#
# How a ``Function`` declares its surrogate
# -----------------------------------------
# A pseudo-gradient is not the derivative of the forward, so ``gradcheck`` cannot compare the two directly.  In
# minilab a straight-through op therefore declares a third static method, ``surrogate``: the smooth function
# whose *true* derivative its backward computes.  ``gradcheck(..., surrogate=True)`` runs the forward in
# ``surrogate_mode()``, where the op outputs that smooth function, and checks the backward against its central
# differences.  Here is a sign STE written from scratch:


class MySignSTE(ml.Function):
    """forward sign(x); pseudo-gradient 1 where |x| ≤ 1; surrogate clip(x, −1, 1)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save(np.abs(x) <= 1)
        return np.where(x >= 0, 1.0, -1.0).astype(x.dtype)

    @staticmethod
    def surrogate(ctx, x):
        ctx.save(np.abs(x) <= 1)
        return np.clip(x, -1, 1)

    @staticmethod
    def backward(ctx, g):
        (inside,) = ctx.saved
        return g * inside


x64 = ml.Tensor(np.array([-1.4, -0.6, -0.1, 0.2, 0.7, 1.3]), requires_grad=True)   # away from the kinks at ±1
print("MySignSTE's backward is the derivative of its surrogate:",
      ml.gradcheck(lambda t: MySignSTE.apply(t), x64, surrogate=True))
with ml.surrogate_mode():
    print("in surrogate mode it outputs", MySignSTE.apply(ml.tensor([-2.0, 0.5])).data, "instead of ±1")

# %%
# Exercises
# ---------
# 1. **Predict, then run.**  What does ``F.sign_ste(x, clip=2)`` give as gradient at
#    :math:`x = (-2.5, -1.5, 0, 1.5)`?  Check with ``assert``.
# 2. **A wrong surrogate.**  Declare ``clip(x, −1, 1)`` as the surrogate of a Function whose backward is
#    ApproxSign's (:math:`2 - 2|x|` on the window).  Predict whether ``gradcheck(..., surrogate=True)`` passes.
# 3. **Without the clip.**  Rerun the teacher experiment with ``clip=None`` and ``lr=0.5``; print
#    :math:`\max|w|`.  Why does a latent weight far outside :math:`[-1, 1]` stop learning under the STE?
# 4. **The scale.**  For a ``BinaryConv2d`` weight, check that ``F.magnitude_aware_sign`` gives
#    :math:`\pm\alpha_o` with :math:`\alpha_o` the mean of :math:`|w|` over channel :math:`o`.
#
# Answers
# -------
# **1.**  The window is now :math:`|x| \le 2`: gradient 0 at :math:`-2.5`, 1 at the other three.
t = ml.tensor([-2.5, -1.5, 0.0, 1.5], requires_grad=True)
F.sign_ste(t, clip=2).sum().backward()
assert np.array_equal(t.grad, [0, 1, 1, 1])
print("1.", t.grad)

# %%
# **2.**  It fails: the backward's triangle is not the derivative of the clipped identity (which is 1 on the
# whole window), and gradcheck finds the difference.


class ApproxSignWrongSurrogate(ml.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save(x)
        return np.where(x >= 0, 1.0, -1.0).astype(x.dtype)

    @staticmethod
    def surrogate(ctx, x):
        ctx.save(x)
        return np.clip(x, -1, 1)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved
        return g * np.where(np.abs(x) <= 1, 2 - 2 * np.abs(x), 0)


try:
    ml.gradcheck(lambda t: ApproxSignWrongSurrogate.apply(t), x64, surrogate=True)
    caught = False
except AssertionError:
    caught = True
assert caught
print("2. gradcheck rejects the wrong surrogate")

# %%
# **3.**  Without the clip, a latent weight can be pushed far beyond 1.  The STE's window is on the *input* of
# the sign: once :math:`|w| > 1` the weight gets no gradient (only Adam's fading momentum still moves it), so it
# stays outside, right or wrong.
w = nn.Parameter(0.1 * np.random.default_rng(2).standard_normal((K, 1)), clip=None)
opt = Adam([w], lr=0.5)
for step in range(20):
    loss = ((ml.tensor(X) @ F.sign_ste(w) - target) ** 2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
print(f"3. without the clip, max|w| = {np.abs(w.data).max():.2f}; "
      f"{np.mean(np.abs(w.data) > 1):.0%} of the weights are outside the window and frozen")
assert np.abs(w.data).max() > 1

# %%
# **4.**
q = F.magnitude_aware_sign(conv.weight).data
alpha = np.abs(conv.weight.data).mean(axis=(1, 2, 3))
assert np.allclose(np.abs(q), alpha[:, None, None, None], rtol=1e-6)
print("4. |q| per channel:", np.unique(np.abs(q[0])), np.unique(np.abs(q[1])), "= alpha", alpha)
