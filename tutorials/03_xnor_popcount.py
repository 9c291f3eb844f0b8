"""
03 — XNOR-popcount: a ±1 dot product in bit operations
======================================================

**What you will learn:** why a dot product of two :math:`\\pm 1` vectors equals :math:`K - 2\\cdot
\\mathrm{popcount}(a \\oplus b)` on their bits, how 64 values fit in one machine word, how a binary convolution
becomes that dot product at every pixel (and how zero padding is corrected exactly), and what that buys in time
on this machine.

**What you need:** tutorial 02 (weights and activations are :math:`\\pm 1` in a BNN).
"""

# %%
# The identity
# ------------
# Encode :math:`-1` as bit 1 and :math:`+1` as bit 0 (Larq's convention).  For one position :math:`i`,
# :math:`a_i b_i = +1` when the bits agree and :math:`-1` when they differ — and "differ" is exactly what XOR
# computes.  With :math:`p = \mathrm{popcount}(a \oplus b)` the number of differing positions out of :math:`K`,
#
# .. math::
#
#    a \cdot b = \#\mathrm{agree} - \#\mathrm{differ} = (K - p) - p = K - 2p .
#
# (The name XNOR comes from the agreeing bits: XNOR is 1 where they agree, so
# :math:`a \cdot b = 2\,\mathrm{popcount}(\mathrm{XNOR}(a, b)) - K`, the same thing counted the other way.)
# The diagram shows it for :math:`K = 16`: the two vectors, their bits, the XOR and the products.
import numpy as np
from common import SMOKE, OUT, Timer, machine, shows

import minilab as ml
from minilab import F, config
from minilab.analysis import plotting
from minilab.ops import packed

if config.kernels() is not None:            # the compiled XNOR-popcount kernel, else its NumPy reference
    from minilab.fast.packed import binary_conv2d_packed
else:
    binary_conv2d_packed = packed.binary_conv2d_reference

rng = np.random.default_rng(3)
K = 16
a, b = np.where(rng.random((2, K)) < 0.5, -1, 1)
bits_a, bits_b = (a < 0).astype(int), (b < 0).astype(int)
xor = bits_a ^ bits_b
p = int(xor.sum())
print(f"a·b = {int(a @ b)},  K − 2·popcount(a XOR b) = {K} − 2·{p} = {K - 2 * p}")
assert a @ b == K - 2 * p


def bit_diagram(fig):
    ax = fig.add_subplot()
    rows = [("a", a, "pm"), ("b", b, "pm"), ("bits of a", bits_a, "bit"), ("bits of b", bits_b, "bit"),
            ("a XOR b", xor, "bit"), ("a·b", a * b, "pm")]
    for r, (name, values, kind) in enumerate(rows):
        y = len(rows) - 1 - r
        for i, v in enumerate(values):
            if kind == "pm":
                face = plotting.COLOURS[0] if v > 0 else plotting.COLOURS[1]
                text = "+1" if v > 0 else "−1"
            else:
                face = "#333333" if v else "white"
                text = str(v)
            ax.add_patch(plotting_rectangle(i, y, face))
            ax.text(i + 0.5, y + 0.5, text, ha="center", va="center", fontsize=8,
                    color="white" if (kind == "pm" or v) else "black")
        ax.text(-0.3, y + 0.5, name, ha="right", va="center", fontsize=9)
    ax.text(K + 0.3, 1.5, f"popcount = {p}", va="center", fontsize=9)
    ax.text(K + 0.3, 0.5, f"sum = {int(a @ b)} = {K} − 2·{p}", va="center", fontsize=9)
    ax.set(xlim=(-3.2, K + 5.5), ylim=(-0.2, len(rows) + 0.1))
    ax.set_aspect("equal")
    ax.set_axis_off()


def plotting_rectangle(x, y, face):
    from matplotlib.patches import Rectangle
    return Rectangle((x + 0.04, y + 0.04), 0.92, 0.92, facecolor=face, edgecolor="#999999", lw=0.5)


shows(plotting.draw(f"{OUT}/03_xnor_popcount_bits.png", bit_diagram, (10.0, 3.6),
                    "a ±1 dot product from XOR and popcount (bit 1 encodes −1)"))

# %%
# 64 values in one word
# ---------------------
# A CPU computes XOR on 64 bits at once and counts a word's set bits in one instruction (``POPCNT``).  So a
# :math:`K`-long :math:`\pm 1` vector is stored as :math:`\lceil K/64 \rceil` 64-bit words, and its dot product
# with another costs one XOR and one popcount per word instead of :math:`K` multiplications and additions.
K = 100
a, b = np.where(rng.random((2, K)) < 0.5, -1.0, 1.0)
words_a, words_b = packed.packbits_rows(a[None]), packed.packbits_rows(b[None])
popcount = int(np.bitwise_count(words_a ^ words_b).sum())
print(f"float dot {a @ b:.0f}  =  K − 2·popcount = {K - 2 * popcount}")
print(f"{K} values fit in {words_a.size} 64-bit words ({words_a.nbytes} bytes instead of "
      f"{a.astype(np.float32).nbytes} in float32)")
assert a @ b == K - 2 * popcount and words_a.size == -(-K // 64)

# %%
# A binary convolution, and its padding
# -------------------------------------
# A binary convolution is that dot product for every output pixel and output channel, with
# :math:`K = C_\mathrm{in} \cdot 3 \cdot 3`.  One detail: with zero padding (Larq's default) the taps that fall
# outside the image are 0, which is neither :math:`+1` nor :math:`-1` and has no bit.  The packed kernel pads
# with :math:`+1` bits and then subtracts, at the border pixels, what the padded taps added — the sum of the
# weights over those taps — so the result is exactly the float convolution's:
c, hw = (16, 8) if SMOKE else (256, 14)
x = np.where(rng.random((1, c, hw, hw)) < 0.5, -1.0, 1.0).astype(np.float32)
w = np.where(rng.random((c, c, 3, 3)) < 0.5, -1.0, 1.0).astype(np.float32)
reference = F.conv2d(ml.tensor(x), ml.tensor(w), padding=1).data
got = binary_conv2d_packed(x, w, 1, 1, pad_value=0)
print("packed == float conv:", np.array_equal(got, reference), "| kernels:",
      config.kernels().isa() if config.kernels() else "NumPy reference")
assert np.array_equal(got, reference)

# %%
# What it costs here
# ------------------
# The run times both on this machine.  This call packs the weights and the input every time, as a training step
# must; an inference engine packs the weights once (tutorial 08), which is faster still.
runs = 3 if SMOKE else 20
with Timer() as t_float:
    for _ in range(runs):
        F.conv2d(ml.tensor(x), ml.tensor(w), padding=1)
with Timer() as t_bin:
    for _ in range(runs):
        binary_conv2d_packed(x, w, 1, 1, 0)
print(f"{c} channels, {hw}×{hw}: float conv {1e3 * t_float.seconds / runs:.2f} ms, packed binary conv "
      f"{1e3 * t_bin.seconds / runs:.2f} ms per call ({t_float.seconds / t_bin.seconds:.1f}×) on {machine()}")

# %%
# ``python -m minilab.bench kernels`` times the binary convolution on operands packed in advance.
#
# Exercises
# ---------
# 1. **Predict, then run.**  Two :math:`\pm 1` vectors of length :math:`K = 200` differ in 37 positions.  What
#    is their dot product?  Build such a pair and ``assert`` it.
# 2. **Words.**  How many 64-bit words does one 3×3 kernel over 256 input channels need?  Check with
#    ``packed.packbits_rows``.
# 3. **XNOR form.**  Show with an ``assert`` that :math:`2\,\mathrm{popcount}(\mathrm{XNOR}(a, b)) - K` gives
#    the same dot product for random vectors (XNOR on bits is ``1 - (a ^ b)``).
# 4. **Padding.**  Pad the map with :math:`+1` instead of 0 (``pad_value=1``).  Predict: does the packed result
#    still equal ``F.conv2d`` of the map padded with ones?  Why is that case free on packed bits?
#
# Answers
# -------
# **1.**  :math:`200 - 2 \cdot 37 = 126`.
a = np.ones(200)
b = a.copy()
b[rng.choice(200, 37, replace=False)] = -1
assert a @ b == 126
print("1.", a @ b)

# %%
# **2.**  :math:`K = 256 \cdot 9 = 2304 = 36 \cdot 64`: 36 words, with no spare bit.
kernel = np.ones((1, 256 * 9))
assert packed.packbits_rows(kernel).size == 36
print("2.", packed.packbits_rows(kernel).size, "words")

# %%
# **3.**
a, b = np.where(rng.random((2, 500)) < 0.5, -1, 1)
xnor = 1 - ((a < 0) ^ (b < 0))
assert a @ b == 2 * xnor.sum() - 500
print("3. XNOR form holds:", a @ b, "=", 2 * xnor.sum() - 500)

# %%
# **4.**  Yes.  A :math:`+1` tap is bit 0, which is exactly how the packed words are padded, so no correction
# term is needed at the border.
padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=1)
assert np.array_equal(binary_conv2d_packed(x, w, 1, 1, pad_value=1),
                      F.conv2d(ml.tensor(padded), ml.tensor(w)).data)
print("4. +1 padding matches the float convolution of the +1-padded map")
