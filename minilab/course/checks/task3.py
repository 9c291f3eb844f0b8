"""Task 3: bit packing, the XNOR-popcount dot product, and the binary conv with 0- or +1-padding, equal to the
float convolution of the ±1 maps."""
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from minilab.testing import binary_maps, conv_configs

from .. import refs
from .common import check, expect_close, expect_shape

lengths = st.sampled_from([1, 5, 63, 64, 65, 130])


@check("pack_rows: −1 is bit 1, +1 is bit 0, little bit order, whole 64-bit words",
       "pack −1 (any value < 0) as bit 1 and +1 as bit 0, value k in bit k mod 64 of word k // 64 (np.packbits("
       "m < 0, axis=1, bitorder='little'), then pad every row with zero bytes to a multiple of 8 and .view(np.uint64))")
@given(rows=st.integers(1, 3), k=lengths, data=st.data())
def pack(ws, rows, k, data):
    m = data.draw(binary_maps(shape=(rows, k)), label="m")
    got = ws.task3.pack_rows(m)
    want = refs.packbits_rows(m)
    expect_shape("pack_rows(m)", got, want.shape)
    if np.asarray(got).dtype != np.uint64:
        raise AssertionError(f"pack_rows(m) must return uint64 words, got {np.asarray(got).dtype}")
    bad = np.argwhere(got != want)
    if len(bad):
        r, w = bad[0]
        raise AssertionError(f"pack_rows(m): row {r}, word {w}: expected {int(want[r, w]):#018x}, got "
                             f"{int(got[r, w]):#018x} (values {64 * w}…{min(k, 64 * w + 64) - 1} of the row: "
                             f"{m[r, 64 * w:64 * w + 8].astype(int).tolist()}…)")


@check("xnor_popcount equals the ±1 dot products a·bᵀ",
       "x·w = K − 2·popcount(a XOR b) with K the true row length (`nbits`), not 64 × the number of words: the "
       "zero bits filling the last word agree and must not count")
@given(m=st.integers(1, 3), n=st.integers(1, 3), k=lengths, data=st.data())
def dot(ws, m, n, k, data):
    a = data.draw(binary_maps(shape=(m, k)), label="a")
    b = data.draw(binary_maps(shape=(n, k)), label="b")
    got = ws.task3.xnor_popcount(refs.packbits_rows(a), refs.packbits_rows(b), k)
    expect_close("xnor_popcount(a, b, K)", got, a.astype(np.float64) @ b.T.astype(np.float64), K=k)


def float_conv(x, w, stride, padding, pad_value):
    return refs.F.conv2d(refs.Tensor(x), refs.Tensor(w), stride=stride, padding=padding,
                         pad_value=float(pad_value)).data


def conv_check(ws, cfg, data, pad_value):
    x = data.draw(binary_maps(shape=(cfg["n"], cfg["c_in"], cfg["h"], cfg["w"])), label="x")
    w = data.draw(binary_maps(shape=(cfg["c_out"], cfg["c_in"], cfg["kernel"], cfg["kernel"])), label="w")
    got = ws.task3.binary_conv2d(x, w, stride=cfg["stride"], padding=cfg["padding"], pad_value=pad_value)
    want = float_conv(x, w, cfg["stride"], cfg["padding"], pad_value)
    options = f"stride={cfg['stride']}, padding={cfg['padding']}, pad_value={pad_value}"
    expect_close(f"binary_conv2d(x, w, {options})", got, want, terms=1)


@check("binary_conv2d without padding equals the float conv of the ±1 maps",
       "every output is the XNOR-popcount dot product of the pixel's packed receptive field (C·kh·kw values in "
       "(c, u, v) order, as w[o].reshape(−1)) with output channel o's packed kernel; mind the stride")
@given(cfg=conv_configs(groups=False), data=st.data())
def unpadded(ws, cfg, data):
    conv_check(ws, dict(cfg, padding=0, h=max(cfg["h"], cfg["kernel"]), w=max(cfg["w"], cfg["kernel"])), data, 1)


@check("binary_conv2d with pad_value = +1 equals the float conv of the +1-padded ±1 maps",
       "with pad_value = +1 pad the ±1 map with +1 (bit 0) before packing; padding comes after binarization")
@given(cfg=conv_configs(groups=False), data=st.data())
def one_padded(ws, cfg, data):
    conv_check(ws, dict(cfg, padding=max(cfg["padding"], 1) if cfg["kernel"] > 1 else 0), data, 1)


@check("binary_conv2d with pad_value = 0 equals the float conv of the zero-padded ±1 maps",
       "0-padding is neither bit: packing a 0 as bit 0 turns it into +1.  Compute the +1-padded result, then "
       "subtract, for every output pixel, Σ_c w[o, c, u, v] over the taps (u, v) that fall in the padding")
@given(cfg=conv_configs(groups=False), data=st.data())
def zero_padded(ws, cfg, data):
    conv_check(ws, dict(cfg, padding=max(cfg["padding"], 1) if cfg["kernel"] > 1 else 0), data, 0)


CHECKS = [pack, dot, unpadded, one_padded, zero_padded]
