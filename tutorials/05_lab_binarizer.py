"""
05 — LAB: the Learnable Activation Binarizer, derived
=====================================================

**What you will learn:** where LAB's forward comes from (an ArgMax over two learned responses), where its
backward comes from (a Soft-ArgMax, which over two responses is a ``tanh``), both gradients including the one
for the temperature :math:`\\beta`, why :math:`\\beta` can learn only through that surrogate, what LAB does to
one channel of a real image, and what its low channel similarity at initialisation does and does not mean.

**What you need:** tutorials 01 (``Function``, ``gradcheck``), 02 (STE and surrogates) and 04 (local
thresholds: LAB is a *learned* local threshold).
"""

# %%
# The forward: an ArgMax over two responses
# -----------------------------------------
# LAB (Falkena et al., WACV 2023) gives every channel :math:`c` two learned 3×3 kernels.  A depthwise
# convolution (each channel convolved with its own kernels, plus a bias) makes two response maps
# :math:`r_0, r_1` per channel.  At every pixel LAB picks the larger of the scaled responses
# :math:`z = \beta\,(r_0, r_1)` and maps the winner's index to :math:`\pm 1`:
#
# .. math::
#
#    y = 2\,\underset{j \in \{0, 1\}}{\mathrm{argmax}}\; z_j - 1
#      = \begin{cases} +1 & \text{if } \beta r_1 > \beta r_0 \\ -1 & \text{otherwise (a tie gives } -1) \end{cases}
#    \;=\; \begin{cases} +1 & \text{if } d > 0 \\ -1 & \text{otherwise} \end{cases},
#    \qquad d = r_1 - r_0 \;\;(\beta > 0).
#
# So LAB is a per-pixel comparison of two learned local filters: with :math:`r_0` a blur and :math:`r_1` the
# pixel itself it is "brighter than the neighbourhood", a Niblack-like rule — but the network chooses the
# filters.  For a positive :math:`\beta` the forward does not depend on :math:`\beta` at all.
#
# The backward: a Soft-ArgMax, which is a tanh
# --------------------------------------------
# ArgMax has zero derivative almost everywhere, like sign.  LAB's surrogate replaces the one-hot ArgMax by the
# softmax over the two scaled responses.  The probability of index 1 is a sigmoid of the difference,
#
# .. math::
#
#    p_1 = \frac{e^{\beta r_1}}{e^{\beta r_0} + e^{\beta r_1}} = \frac{1}{1 + e^{-\beta (r_1 - r_0)}}
#        = \sigma(\beta d),
#
# and the soft version of :math:`y = 2\cdot\mathrm{index} - 1` is
#
# .. math::
#
#    s = 2 p_1 - 1 = 2\sigma(\beta d) - 1 = \tanh\!\left(\frac{\beta d}{2}\right),
#
# using :math:`2\sigma(u) - 1 = \frac{1 - e^{-u}}{1 + e^{-u}} = \tanh(u/2)`.  With
# :math:`\frac{\mathrm{d}}{\mathrm{d}u}\tanh(u/2) = \frac{1}{2}(1 - \tanh^2(u/2))` the chain rule gives the two
# gradients the backward uses:
#
# .. math::
#
#    \frac{\partial s}{\partial r_1} = \frac{\beta}{2}\,(1 - s^2) = -\frac{\partial s}{\partial r_0},
#    \qquad
#    \frac{\partial s}{\partial \beta} = \frac{d}{2}\,(1 - s^2).
#
# The gradient then reaches the kernels, the bias and the input :math:`x` through the depthwise convolution,
# whose backward is the ordinary one.
#
# Two consequences
# ----------------
# **The loss is flat in β.**  The forward output — hence the loss — does not change when :math:`\beta > 0`
# changes, so the true derivative :math:`\partial L / \partial \beta` is 0.  :math:`\beta` learns *only*
# through the surrogate's :math:`\partial s / \partial \beta`, like a latent weight through the STE.
#
# **β scales the gradient reaching the kernels.**  :math:`\partial s / \partial r` carries the factor
# :math:`\beta/2`: at the decision boundary (:math:`d = 0`) it is exactly :math:`\beta/2`; away from it the
# factor :math:`1 - s^2` decays faster for a large :math:`\beta`.  A large :math:`\beta` gives few pixels a large
# gradient, a small one gives many pixels a small gradient.
#
# The code, checked against the derivation
# ----------------------------------------
# ``minilab.nn.LAB(C)`` holds the :math:`2C` kernels (shape ``(2C, 1, 3, 3)``), the :math:`2C` biases and
# :math:`\beta`: :math:`20C + 1` parameters.  Its ArgMax step is the ``Function`` ``LabArgMax`` in
# ``minilab.ops.lab``; we run it on random responses and compare its backward with the formulas above.
import numpy as np
from common import OUT, SMOKE, binary_map_statistics, imagenette_root, shows
from hypothesis import given, settings

import minilab as ml
from minilab import F, nn
from minilab.analysis import plotting
from minilab.analysis.figures import to_gray
from minilab.analysis.report import load_images
from minilab.data import make_synthetic
from minilab.data.augment import normalize
from minilab.ops.lab import LabArgMax
from minilab.optim import Adam
from minilab.testing import arrays, assert_close_in_rounding, assert_gradcheck, tensor_of
from minilab.analysis.graph import draw_graph

rng = np.random.default_rng(0)
lab = nn.LAB(2)
print("nn.LAB(2):", lab.num_parameters(), "parameters = 20·2 + 1")

r = ml.tensor(rng.standard_normal((1, 4, 5, 5)), requires_grad=True)          # (r0, r1) of two channels
beta = ml.tensor(np.array(1.5), requires_grad=True)
g = rng.standard_normal((1, 2, 5, 5))                                          # some upstream gradient
y = LabArgMax.apply(r, beta)
(y * ml.tensor(g)).sum().backward()

r0, r1 = r.data[:, 0::2], r.data[:, 1::2]
d = r1 - r0
s = np.tanh(1.5 * d / 2)
assert np.array_equal(y.data, np.where(d > 0, 1.0, -1.0))                              # +1 where r1 > r0
assert np.allclose(2 / (1 + np.exp(-1.5 * d)) - 1, s)                                  # 2σ(βd) − 1 = tanh(βd/2)
assert_close_in_rounding(r.grad[:, 1::2], g * 1.5 * (1 - s ** 2) / 2, terms=8, dtype=np.float64)  # ∂s/∂r1
assert_close_in_rounding(r.grad[:, 0::2], -g * 1.5 * (1 - s ** 2) / 2, terms=8, dtype=np.float64)  # ∂s/∂r0
assert_close_in_rounding(beta.grad, (g * d * (1 - s ** 2) / 2).sum(), terms=d.size, dtype=np.float64)
print("LabArgMax: forward = [r1 > r0]; backward = the Soft-ArgMax gradients for r0, r1 and β")

# %%
# And the loss is flat in :math:`\beta`: the output is the same at :math:`\beta = 0.5` and :math:`\beta = 5`,
# while the surrogate still gives :math:`\beta` a gradient.
outputs = [LabArgMax.apply(ml.tensor(r.data), ml.tensor(np.array(b))).data for b in (0.5, 1.5, 5.0)]
assert all(np.array_equal(outputs[0], o) for o in outputs[1:])
print(f"forward identical for β = 0.5, 1.5, 5; surrogate gradient for β: {float(beta.grad):.4f}")

# %%
# The figure draws the forward (left, black: the step, the filled dot its value at a tie) with the surrogate
# :math:`\tanh(\beta d/2)`, and the derivative :math:`\partial s/\partial d = \beta(1 - s^2)/2` (right) for
# three values of :math:`\beta`.  Look at the heights at :math:`d = 0` (:math:`\beta/2`) and the widths: that
# trade-off is what :math:`\beta` learns.
grid = np.linspace(-3, 3, 601)


def soft_argmax(fig):
    left, right = fig.subplots(1, 2, sharex=True)
    step = np.where(grid > 0, 1.0, -1.0)
    left.plot(*plotting.break_at_jumps(grid, step), color="black", label="forward: +1 if $\\beta d > 0$ else −1")
    plotting.mark_jump(left, 0, -1, 1, "black")
    for colour, b in zip(plotting.COLOURS, (0.5, 1.0, 4.0)):
        sb = np.tanh(b * grid / 2)
        left.plot(grid, sb, color=colour, label=f"$\\tanh(\\beta d/2)$, $\\beta$ = {b}")
        right.plot(grid, b * (1 - sb ** 2) / 2, color=colour, label=f"$\\beta$ = {b}")
    left.set(title="forward and surrogate", xlabel="$d = r_1 - r_0$", ylabel="output")
    right.set(title="backward: $\\partial s / \\partial d = \\beta(1 - s^2)/2$", xlabel="$d = r_1 - r_0$",
              ylabel="$\\partial s / \\partial d$")
    plotting.legend_below(left)
    plotting.legend_below(right, ncols=3)


shows(plotting.draw(f"{OUT}/05_soft_argmax.png", soft_argmax, "wide", "LAB's Soft-ArgMax surrogate"))

# %%
# The whole layer, property-tested
# --------------------------------
# ``assert_gradcheck(..., surrogate=True)`` (from ``minilab.testing``) checks the full ``F.lab`` — depthwise
# convolution and ArgMax — against central differences of :math:`\tanh(\beta d/2)`, for :math:`x`, the kernels,
# the bias and :math:`\beta`, on inputs Hypothesis draws (non-contiguous arrays included).


@settings(max_examples=3 if SMOKE else 20, deadline=None)
@given(arrays(shape=(1, 2, 4, 4)), arrays(shape=(4, 1, 3, 3), low=-1, high=1), arrays(shape=(4,), low=-1, high=1))
def test_lab_gradient(x, w, b):
    assert_gradcheck(lambda x, w, b, beta: F.lab(x, w, b, beta), tensor_of(x), tensor_of(w), tensor_of(b),
                     tensor_of(np.array(0.8)), surrogate=True)


test_lab_gradient()
print("F.lab's backward matches the Soft-ArgMax surrogate on every drawn example")

# %%
# The layer as a graph
# --------------------
# ``minilab.analysis.graph.draw_graph`` (tutorial 01) shows what one ``nn.LAB`` records: the depthwise convolution of
# :math:`x` with the kernels and biases into the :math:`2C` responses, then ``LabArgMax`` with :math:`\beta` —
# four leaves and two ops, plus the mean we take to get a scalar — and, after ``backward``, the Soft-ArgMax
# gradient reaching every leaf, :math:`\beta` included.
layer = nn.LAB(2)
xin = ml.tensor(rng.standard_normal((1, 2, 4, 4)).astype(np.float32), requires_grad=True)
out = layer(xin).mean()
out.backward(retain_graph=True)
y_lab = out._parents[0]                      # the tensors the graph recorded (tutorial 01): y, and r before it
names = {"x": xin, "kernels": layer.weight, "biases": layer.bias, "β": layer.beta, "mean of y": out,
         "y (±1)": y_lab, "r = (r0, r1) per channel": y_lab._parents[0]}
if draw_graph(out, f"{OUT}/05_lab_graph.png", names=names):
    shows(f"{OUT}/05_lab_graph.png")
assert layer.beta.grad is not None and layer.weight.grad is not None

# %%
# LAB on a real image
# -------------------
# One colour channel of a validation image (generated textures when Imagenette is not found), through two LABs:
# one with hand-set kernels — :math:`r_0` a 3×3 blur, :math:`r_1` the pixel itself, so +1 means "brighter than
# its neighbourhood" — and one with the random kernels a fresh ``nn.LAB`` starts from.  Each row shows
# :math:`x`, :math:`r_0`, :math:`r_1` and :math:`y`.
root = imagenette_root()
size, count = (32, 4) if SMOKE else (64, 20)
images = (normalize(make_synthetic(count, size)[0]) if root is None else load_images(f"{root}/val", size, count))
x = ml.tensor(images)

edge = nn.LAB(3)
blur, centre = np.full((3, 3), 1 / 9, np.float32), np.zeros((3, 3), np.float32)
centre[1, 1] = 1
for c in range(3):
    edge.weight.data[2 * c, 0], edge.weight.data[2 * c + 1, 0] = blur, centre
nn.init.seed(0)
random_lab = nn.LAB(3)
rows = []
for name, layer in (("hand-set (blur vs pixel)", edge), ("random initial kernels", random_lab)):
    with ml.no_grad():
        responses = F.conv2d(x, layer.weight, layer.bias, padding=1, groups=3).data
        out = layer(x).data
    rows.append((name, images[0, 0], responses[0, 0], responses[0, 1], out[0, 0]))
    assert np.array_equal(out[0, 0], np.where(responses[0, 1] > responses[0, 0], 1.0, -1.0))


def lab_on_an_image(fig):
    axes = fig.subplots(2, 4)
    for row, (name, *maps) in zip(axes, rows):
        for ax, title, image in zip(row, ("x (red channel)", "$r_0$", "$r_1$", "y = +1 where $r_1 > r_0$"), maps):
            ax.imshow(to_gray(image), cmap="gray", vmin=0, vmax=255, interpolation="nearest")
            ax.set_title(title, fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.spines[:].set_visible(False)
        row[0].set_ylabel(name, fontsize=9)


shows(plotting.draw(f"{OUT}/05_lab_on_an_image.png", lab_on_an_image, (9.0, 5.0),
                    "LAB on one channel: two responses, one comparison (white = +1)"))

# %%
# What β learns
# -------------
# A small classifier (a float conv, then one LAB-binarized conv) on generated textures, :math:`\beta` trained
# with the kernels, three seeds.  Since the loss is flat in :math:`\beta`, whatever it does is the surrogate's
# doing: it moves where a steeper or a flatter Soft-ArgMax lowers the *surrogate* loss.
images_t, labels_t = make_synthetic(256 if SMOKE else 1024, 16, num_classes=4)
xs = normalize(images_t)
steps = 20 if SMOKE else 300


def small_classifier():
    """A float conv, then one LAB-binarized conv, then a linear classifier over 4 texture classes."""
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.BinaryConv2d(8, 16, 3, stride=2, binarizer="lab"),
                         nn.BatchNorm2d(16), nn.PReLU(16), nn.GlobalAvgPool(), nn.Linear(16, 4))


def train_classifier(model, seed):
    """Adam on the parameters that require a gradient; returns β after every step and the last loss."""
    pick = np.random.default_rng(seed)
    opt = Adam([p for p in model.parameters() if p.requires_grad], lr=5e-3)
    curve = [float(model.layers[2].binarizer.beta.data)]
    for step in range(steps):
        idx = pick.choice(len(xs), 32, replace=False)
        loss = F.cross_entropy(model(ml.tensor(xs[idx])), labels_t[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        curve.append(float(model.layers[2].binarizer.beta.data))
    return curve, loss.item()


beta_curves = {}
for seed in (0, 1, 2):
    nn.init.seed(seed)
    curve, last = train_classifier(small_classifier(), seed)
    beta_curves[seed] = curve
    print(f"seed {seed}: β {curve[0]:.3f} → {curve[-1]:.3f} after {steps} steps (last loss {last:.3f})")
finals = np.array([c[-1] for c in beta_curves.values()])
print(f"final β over three seeds: {finals.mean():.3f} ± {finals.std():.3f} (change from 1: "
      f"{'larger' if abs(finals.mean() - 1) > 2 * finals.std() else 'not larger'} than twice the seed spread)")


def beta_curve(fig):
    ax = fig.add_subplot()
    for colour, (seed, curve) in zip(plotting.COLOURS, beta_curves.items()):
        ax.plot(np.arange(len(curve)), curve, color=colour, label=f"seed {seed}")
    ax.axhline(1.0, color=plotting.GREY, ls=":", lw=1)
    ax.set(xlabel="training step", ylabel="$\\beta$", title="LAB's $\\beta$ during training (one LAB layer)")
    plotting.legend_below(ax, ncols=3)


shows(plotting.draw(f"{OUT}/05_beta.png", beta_curve))

# %%
# The dotted line is the initial value.  Whether :math:`\beta` moves clearly, and in which direction, depends
# on the task and the run length; the run prints whether the change exceeds the spread between seeds.
#
# Do the colour channels stay alike? A control
# --------------------------------------------
# Tutorial 04 measured the SSIM between the three colour channels' binary maps.  A *randomly initialised* LAB
# already gives much less similar channels than sign.  Is that LAB's doing?  Two controls separate the causes:
# a random depthwise kernel per channel followed by sign (random filters, no comparison), and a LAB whose three
# channels share *one* random kernel pair (a comparison, no difference between channels).
with ml.no_grad():
    random_kernels = ml.tensor(nn.init.glorot_uniform((3, 1, 3, 3), 27, 9))
    shared = nn.LAB(3)
    shared.weight.data[:] = np.tile(random_lab.weight.data[:2], (3, 1, 1, 1))
    maps = {"sign": F.sign_ste(x).data, "LAB, random kernels": random_lab(x).data,
            "control: random kernel + sign": F.sign_ste(F.conv2d(x, random_kernels, padding=1, groups=3)).data,
            "control: LAB, one pair shared": shared(x).data}
stats = binary_map_statistics(maps, width=32)
gap_random = stats["sign"][1] - stats["control: random kernel + sign"][1]
gap_shared = stats["sign"][1] - stats["control: LAB, one pair shared"][1]
print(f"random kernels alone lower the SSIM by {gap_random:.3f}; a comparison with one shared pair by {gap_shared:.3f}")

# %%
# Read the controls before reading LAB's number.  If "random kernel + sign" lowers the SSIM about as much as
# the random LAB, the low similarity at initialisation comes from giving each channel *different random
# filters*, not from anything LAB learned; the shared-pair LAB shows how much the comparison alone changes.
# Only a trained LAB can show whether learning keeps the channels apart — tutorial 07 trains one.
#
# Exercises
# ---------
# 1. **Predict, then run.**  With :math:`r_0 = 0.3`, :math:`r_1 = 0.5` and :math:`\beta = -1`, what does LAB
#    output?  Check with ``LabArgMax.apply``.
# 2. **The β gradient.**  Check :math:`\partial s/\partial\beta = \frac{d}{2}(1 - s^2)` at :math:`d = 2`,
#    :math:`\beta = 1` by a central difference of :math:`\tanh(\beta d/2)` in NumPy.
# 3. **Predict, then run.**  Multiply :math:`\beta` by 10.  By what factor does the gradient reaching
#    :math:`r_1` change at a pixel with :math:`d = 0`?  At one with :math:`d = 2`?
# 4. **Freeze β.**  Train the small classifier above with ``requires_grad = False`` on :math:`\beta` for seed 0
#    and compare the last loss with the trained-:math:`\beta` run.  Is the difference larger than the spread
#    between seeds?
#
# Answers
# -------
# **1.**  :math:`\beta d = -0.2 < 0`: the output is :math:`-1` — a negative :math:`\beta` flips the comparison.
out = LabArgMax.apply(ml.tensor(np.array([[[[0.3]], [[0.5]]]])), ml.tensor(np.array(-1.0))).data
assert out.item() == -1
print("1. y =", out.item())

# %%
# **2.**
h, dd, bb = 1e-6, 2.0, 1.0
numeric = (np.tanh((bb + h) * dd / 2) - np.tanh((bb - h) * dd / 2)) / (2 * h)
formula = dd / 2 * (1 - np.tanh(bb * dd / 2) ** 2)
assert abs(numeric - formula) < 1e-8
print(f"2. ∂s/∂β = {formula:.6f} (central difference {numeric:.6f})")

# %%
# **3.**  At :math:`d = 0` the factor is :math:`\beta/2`: ten times larger.  At :math:`d = 2` it is
# :math:`\frac{\beta}{2}(1 - \tanh^2\beta)`, which collapses for large :math:`\beta`.
for dd in (0.0, 2.0):
    grads = []
    for bb in (1.0, 10.0):
        rr = ml.tensor(np.array([[[[0.0]], [[dd]]]]), requires_grad=True)
        LabArgMax.apply(rr, ml.tensor(np.array(bb))).sum().backward()
        grads.append(rr.grad[0, 1, 0, 0])
    print(f"3. d = {dd}: gradient to r1 goes from {grads[0]:.4g} to {grads[1]:.4g} (× {grads[1] / grads[0]:.3g})")
    if dd == 0:
        assert np.isclose(grads[1] / grads[0], 10)

# %%
# **4.**
nn.init.seed(0)
model = small_classifier()
model.layers[2].binarizer.beta.requires_grad = False
curve, last = train_classifier(model, 0)
assert curve[-1] == 1.0
print(f"4. β frozen at 1: last loss {last:.3f} — compare with the three seeds' last losses above; a "
      "difference smaller than their spread is noise")
