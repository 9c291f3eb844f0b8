"""
09 — LAB with INT8 and INT4 kernels
===================================

**What you will learn:** how LAB's float 3×3 kernels are stored as 8- or 4-bit integers (symmetric per-channel
quantisation), which output pixels that can flip and why only those, how many flip on real images at each bit
width, and how training with quantised kernels (*fake quantisation*) removes the mismatch.

**What you need:** tutorial 05 (LAB: :math:`y = +1` where :math:`r_1 > r_0`) and 02 (the STE idea, used here
for the rounding).
"""

# %%
# Symmetric per-channel quantisation
# ----------------------------------
# Each of LAB's :math:`2C` kernels :math:`w_c` (nine numbers) gets one scale.  With :math:`b` bits the integers
# run from :math:`-q_{\max}` to :math:`q_{\max} = 2^{b-1} - 1` (127 for INT8, 7 for INT4):
#
# .. math::
#
#    s_c = \frac{\max |w_c|}{q_{\max}}, \qquad q = \mathrm{round}(w / s_c), \qquad \hat w = q\, s_c ,
#
# so every weight moves by at most half a step, :math:`|\hat w - w| \le s_c / 2`.  We write the three lines
# ourselves (for any :math:`b`) and check them against minilab's ``quantize_symmetric`` (which stores 8 and 4).
import numpy as np
from common import OUT, SMOKE, imagenette_root, shows

import minilab as ml
from minilab import F, nn
from minilab.analysis import plotting
from minilab.analysis.report import load_images
from minilab.data import make_synthetic
from minilab.data.augment import normalize
from minilab.ops.quant import dequantize, quantize_symmetric


def quantize(w, bits):
    """ŵ = round(w / s)·s with s = max|w_c| / (2^(bits−1) − 1) per kernel."""
    qmax = 2 ** (bits - 1) - 1
    scale = np.abs(w).max(axis=(1, 2, 3), keepdims=True) / np.float32(qmax)
    return (np.clip(np.round(w / scale), -qmax, qmax) * scale).astype(np.float32), scale


nn.init.seed(0)
lab = nn.LAB(3)
w = lab.weight.data
for bits in (8, 4):
    mine, scale = quantize(w, bits)
    q, library_scale = quantize_symmetric(w, bits)
    assert np.array_equal(mine, dequantize(q, library_scale))
    assert np.all(np.abs(mine - w) <= scale / 2 * (1 + 1e-6))
    print(f"INT{bits}: integers in [{q.min()}, {q.max()}], largest weight error {np.abs(mine - w).max():.5f} "
          f"(half a step: {scale.max() / 2:.5f})")

# %%
# Which pixels can flip
# ---------------------
# LAB outputs +1 where :math:`d = r_1 - r_0 > 0`.  Quantising the kernels changes :math:`d` by at most
# :math:`|\Delta d| \le \sum_{\text{taps}} \left(|\Delta w_1| + |\Delta w_0|\right)\,|x| \le s\,\sum |x|` over the
# 3×3 neighbourhood: a pixel can only flip if :math:`|d|` was smaller than that — if it sat near LAB's decision
# boundary.  Everywhere else the output is unchanged.  The run measures it on real images (generated textures
# when Imagenette is not found), at every bit width from 2 to 8:
root = imagenette_root()
size, count = (32, 4) if SMOKE else (64, 20)
images = normalize(make_synthetic(count, size)[0]) if root is None else load_images(f"{root}/val", size, count)
x = ml.tensor(images)


def responses(weight):
    with ml.no_grad():
        r = F.conv2d(x, ml.tensor(weight), lab.bias, padding=1, groups=3).data
    return r[:, 1::2] - r[:, 0::2]                                   # d = r1 − r0 per channel


d_float = responses(w)
y_float = np.where(d_float > 0, 1, -1)
with ml.no_grad():
    assert np.array_equal(lab(x).data, y_float)
flips, near = {}, {}
for bits in range(2, 9):
    d_q = responses(quantize(w, bits)[0])
    flipped = np.where(d_q > 0, 1, -1) != y_float
    flips[bits] = float(flipped.mean())
    assert np.all(np.abs(d_float[flipped]) <= np.abs(d_q - d_float)[flipped])   # a flip needs |d| ≤ |Δd|
    near[bits] = np.abs(d_float[flipped])
    print(f"{bits} bits: {100 * flips[bits]:6.3f} % of LAB outputs flip"
          + (f", all with |d| ≤ {near[bits].max():.3f}" if flipped.any() else ""))
assert flips[8] <= flips[4] <= flips[2]
print(f"|d| over all pixels: median {np.median(np.abs(d_float)):.3f}, max {np.abs(d_float).max():.3f}")


def flip_figure(fig):
    left, right = fig.subplots(1, 2)
    bit_list = list(flips)
    left.semilogy(bit_list, [100 * max(flips[b], 1e-4) for b in bit_list], "o-", color=plotting.COLOURS[0])
    from matplotlib.ticker import FixedLocator, FormatStrFormatter, NullFormatter
    left.yaxis.set_major_locator(FixedLocator([0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50]))
    left.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    left.yaxis.set_minor_formatter(NullFormatter())
    left.set(xlabel="bits per LAB kernel weight", ylabel="LAB outputs that flip (%)",
             title="fewer bits, more flips")
    edges = np.linspace(0, np.percentile(np.abs(d_float), 99), 40)
    right.hist(np.abs(d_float).ravel(), bins=edges, density=True, color=plotting.GREY, alpha=0.6,
               label="all pixels")
    if near[4].size:
        right.hist(near[4], bins=edges, density=True, color=plotting.COLOURS[1], alpha=0.8,
                   label="pixels that flip at 4 bits")
    right.set(xlabel="|d| = |r₁ − r₀| with float kernels", ylabel="density",
              title="only pixels near the boundary flip")
    plotting.legend_below(right)


shows(plotting.draw(f"{OUT}/09_int_lab_flips.png", flip_figure, "wide",
                    "quantising LAB's kernels (random initial kernels)"))

# %%
# Left, the fraction of flipped outputs against the bit width (log scale).  It falls as bits are added, but not
# necessarily at every single step: a finer grid bounds the error more tightly, yet the rounding of one
# particular kernel can still land a little further from its float value.  Right, where the flipped pixels sat:
# their :math:`|d|` (orange) crowds near 0 while all pixels' :math:`|d|` spreads wide (grey).  These are
# random initial kernels; a trained network's kernels differ, so the exact percentages do too.
#
# Training with the quantised kernels
# -----------------------------------
# The mismatch disappears if the network is *trained* with :math:`\hat w`: ``nn.LAB(C, bits=4)`` (or
# ``--lab-bits 4`` on the command line) uses ``fake_quant`` — the forward computes with :math:`\hat w`, the
# backward passes the gradient straight through the rounding (:math:`\partial \hat w/\partial w := 1`, an STE
# as in tutorial 02) — so the float latent kernels keep learning while the network only ever sees what the
# integers can represent.
lab4 = nn.LAB(3, bits=4)
lab4.weight.data[:], lab4.bias.data[:] = w, lab.bias.data
xg = ml.tensor(images, requires_grad=True)
out = lab4(xg)
(out * ml.tensor(np.random.default_rng(0).standard_normal(out.shape))).sum().backward()
assert np.array_equal(out.data, np.where(responses(quantize(w, 4)[0]) > 0, 1.0, -1.0))
assert lab4.weight.grad is not None and np.abs(lab4.weight.grad).sum() > 0
print("LAB(bits=4) computes with the 4-bit kernels and still passes gradients to the float latent kernels")

# %%
# Exercises
# ---------
# 1. **Predict, then run.**  A kernel's largest weight is 0.7.  What are :math:`q_{\max}` and the step
#    :math:`s` at 4 bits?  Check with ``quantize_symmetric``.
# 2. **Predict, then run.**  What is the largest possible :math:`|\hat w - w|` for that kernel?  Test it on
#    random kernels with that maximum.
# 3. **Storage.**  How many bytes do LAB's kernels take for :math:`C = 512` channels in float32, INT8 and INT4
#    (two 4-bit values per byte; scales aside)?
# 4. **Predict, then run.**  Scale the input images by 10.  Do more or fewer outputs flip at 4 bits?  (Hint:
#    both :math:`d` and :math:`\Delta d` are linear in :math:`x` — but the bias is not.)
#
# Answers
# -------
# **1.**  :math:`q_{\max} = 7`, :math:`s = 0.7/7 = 0.1`.
kernel = np.zeros((1, 1, 3, 3), np.float32)
kernel[0, 0, 1, 1] = 0.7
q, s = quantize_symmetric(kernel, 4)
assert q.max() == 7 and np.isclose(s.item(), 0.1)
print("1. q_max", q.max(), "step", s.item())

# %%
# **2.**  Half a step, 0.05.
rng = np.random.default_rng(1)
ks = rng.uniform(-0.7, 0.7, (50, 1, 3, 3)).astype(np.float32)
ks[:, 0, 0, 0] = 0.7
q, s = quantize_symmetric(ks, 4)
assert np.abs(dequantize(q, s) - ks).max() <= 0.05 + 1e-6
print(f"2. largest error over 50 kernels: {np.abs(dequantize(q, s) - ks).max():.4f}")

# %%
# **3.**  :math:`2C \cdot 9` weights: 9216 of them; 36 864 bytes in float32, 9216 in INT8, 4608 in INT4.
n_weights = 2 * 512 * 9
print("3. bytes:", {"float32": 4 * n_weights, "INT8": n_weights, "INT4": n_weights // 2})
assert n_weights // 2 == 4608

# %%
# **4.**  The bias is 0 at initialisation, so :math:`d` and :math:`\Delta d` both scale by 10 and exactly the
# same pixels flip; with a trained (non-zero) bias, scaling the input changes which pixels sit near the boundary.
assert np.all(lab.bias.data == 0)
with ml.no_grad():
    big = ml.tensor(10 * images)
    r, rq = (F.conv2d(big, ml.tensor(k), lab.bias, padding=1, groups=3).data for k in (w, quantize(w, 4)[0]))
flips10 = float(((rq[:, 1::2] - rq[:, 0::2]) > 0).astype(int).__ne__((r[:, 1::2] - r[:, 0::2]) > 0).mean())
print(f"4. at 4 bits: {100 * flips[4]:.3f} % flip; with the input ×10: {100 * flips10:.3f} %")
assert abs(flips10 - flips[4]) < 0.002
