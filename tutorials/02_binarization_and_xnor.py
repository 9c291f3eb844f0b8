r"""
02 — Binarization: sign, the straight-through estimator, ApproxSign; XNOR-popcount arithmetic
=============================================================================================

**What you learn:** why sign has no useful derivative and what BNNs use instead (pseudo-gradients), how minilab
verifies them (`surrogate_mode`), and how a ±1 dot product becomes `K − 2·popcount(a XOR b)` on bit-packed words.

.. list-table::
   :header-rows: 1

   * - binarizer
     - forward
     - pseudo-gradient
     - surrogate (its true derivative is the pseudo-gradient)
   * - `sign_ste(clip=1)`
     - sign(x), sign(0) = +1
     - 1 if \|x\| ≤ 1 else 0
     - clip(x, −1, 1)
   * - `approx_sign`
     - sign(x)
     - 2 − 2\|x\| on [−1, 1]
     - 2x − x\|x\| on [−1, 1]

"""

# %%
import numpy as np
from common import SMOKE, OUT, Timer, machine, shows

import minilab as ml
from minilab import F, config, plotting
from minilab.ops import packed

if config.kernels() is not None:            # the compiled XNOR-popcount kernel, else its NumPy reference
    from minilab.fast.packed import binary_conv2d_packed
else:
    binary_conv2d_packed = packed.binary_conv2d_reference

xs = np.linspace(-1.5, 1.5, 13)
for name, fn in [("sign_ste", F.sign_ste), ("approx_sign", F.approx_sign)]:
    x = ml.tensor(xs, requires_grad=True)
    fn(x).sum().backward()
    with ml.surrogate_mode():
        soft = fn(ml.tensor(xs)).data
    print(f"{name:12s} grad:", np.round(x.grad, 2))
    print(f"{'':12s} surrogate:", np.round(soft, 2))

# %%
# The figure draws what minilab computes, on 1,201 points: the forward values (left) and the gradients that
# `backward()` returns (right).  Look at the jumps: sign jumps at 0 (the filled dot is the value it takes there,
# +1), the STE's gradient jumps at ±1 — drawn as steps with the pen lifted, because these functions have no
# values in between.  ApproxSign's gradient is a triangle: largest at 0, where a small change of x is most
# likely to flip the sign.

# %%
grid = np.linspace(-1.5, 1.5, 1201)
forward, gradient = {}, {}
for name, fn in [("STE", F.sign_ste), ("ApproxSign", F.approx_sign)]:
    x = ml.tensor(grid, requires_grad=True)
    fn(x).sum().backward()
    gradient[name] = x.grad
    with ml.surrogate_mode():
        forward[name] = fn(ml.tensor(grid)).data
sign = F.sign_ste(ml.tensor(grid)).data


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
# XNOR-popcount
# -------------
# Encode −1 as bit 1 and +1 as bit 0 (Larq-CE's convention).  Where the bits agree the product is +1, where they
# differ it is −1:  a·b = (#agree) − (#differ) = K − 2·popcount(a XOR b).

# %%
rng = np.random.default_rng(0)
K = 100
a, b = np.where(rng.random((2, K)) < 0.5, -1.0, 1.0)
bits_a, bits_b = packed.packbits_rows(a[None]), packed.packbits_rows(b[None])
print(f"float dot {a @ b:.0f}  =  K − 2·popcount = {K - 2 * int(np.bitwise_count(bits_a ^ bits_b).sum())}")
print(f"{K} values fit in {bits_a.size} 64-bit words ({bits_a.nbytes} bytes instead of {a.astype(np.float32).nbytes})")

# %%
# A binary conv is that dot product for every output pixel and channel.  With zero padding (Larq's default) the
# packed kernel computes the +1-padded result and subtracts the padded taps' contribution — exactly:

# %%
c, hw = (16, 8) if SMOKE else (256, 14)
x = np.where(rng.random((1, c, hw, hw)) < 0.5, -1.0, 1.0).astype(np.float32)
w = np.where(rng.random((c, c, 3, 3)) < 0.5, -1.0, 1.0).astype(np.float32)
ref = F.conv2d(ml.tensor(x), ml.tensor(w), padding=1).data
got = binary_conv2d_packed(x, w, 1, 1, pad_value=0)
print("packed == float conv:", np.array_equal(got, ref), "| kernels:", config.kernels().isa() if config.kernels() else "NumPy")

with Timer() as t_float:
    for _ in range(10):
        F.conv2d(ml.tensor(x), ml.tensor(w), padding=1)
with Timer() as t_bin:
    for _ in range(10):
        binary_conv2d_packed(x, w, 1, 1, 0)
print(f"{c}ch {hw}x{hw}: float {t_float.seconds * 100:.2f} ms, packed {t_bin.seconds * 100:.2f} ms per conv "
      f"({t_float.seconds / t_bin.seconds:.1f}x) on {machine()}")

# %%
# Measured by this script (x86_64, 2 cores, AVX-512 VPOPCNTDQ build): 256ch 14×14 float conv 1.93 ms vs packed
# 0.60 ms per call (3.2×) — but this call also packs the 256·256·9 weights and the input every time, as a
# training step must.  The inference engine packs weights once; `python -m minilab.bench kernels` times the conv
# on packed operands: 0.06 ms, 21× minilab's compiled float32 im2col + BLAS conv in the same process.
#
# Exercises
# ---------
# 1. Show with `gradcheck(..., surrogate=True)` that ApproxSign's backward fails if you declare clip(x) as its
#    surrogate.
# 2. Pad a ±1 map with +1 instead of 0: which correction term disappears, and why is that free on packed bits?
