"""Bit-packed binary convolution: the XNOR-popcount arithmetic behind every binary conv.

For x, w ∈ {−1, +1}ᴷ, encode −1 as bit 1 and +1 as bit 0 (Larq-CE's convention: a zero word is all +1).  Then
x_k·w_k = +1 where the bits agree and −1 where they differ, so::

    x·w = (#agree) − (#differ) = K − 2·popcount(x_bits XOR w_bits).

A conv is this dot product for every output pixel (its packed receptive field) and output channel.  Padding:
+1 padding is free (zero bits); with 0 padding (Larq's default) the packed kernel computes the +1-padded result and
the contribution of the padded taps is subtracted exactly::

    y_0pad[o, i, j] = y_1pad[o, i, j] − Σ_{taps (u,v) of (i,j) that fall in the padding} Σ_c sign(w)[o, c, u, v].

The weights are ±α_o per output channel (α = 1 for plain sign), so y = α_o·(integer result) exactly.

`binary_conv2d_reference` is the NumPy reference (np.packbits + np.bitwise_count) the compiled kernel
(`minilab.fast.packed`) is tested against."""
import functools

import numpy as np

from .conv import im2col, output_size, pad_input, pair


def packbits_rows(m: np.ndarray) -> np.ndarray:
    """(M, K) ±1 (or any float; bit = value < 0) → (M, ceil(K/64)) uint64, little bit order, zero-padded."""
    bits = np.packbits(m < 0, axis=1, bitorder="little")
    words = -(-m.shape[1] // 64)
    padded = np.zeros((m.shape[0], words * 8), dtype=np.uint8)
    padded[:, :bits.shape[1]] = bits
    return padded.view(np.uint64)


def xnor_popcount_matmul(a_bits: np.ndarray, b_bits: np.ndarray, nbits: int) -> np.ndarray:
    """(M, W) and (N, W) packed rows → (M, N) int64 of ±1 dot products:  nbits − 2·popcount(a XOR b)."""
    diff = np.bitwise_count(a_bits[:, None, :] ^ b_bits[None, :, :]).sum(axis=-1, dtype=np.int64)
    return nbits - 2 * diff


@functools.lru_cache(maxsize=256)
def padding_patterns(in_hw, kernel, stride, padding):
    """Which taps of each output pixel's window fall in the padding.  Returns (pattern (OH·OW,) int32 ids,
    masks (P, kh·kw) float64): pixel i's padded taps are masks[pattern[i]] (pattern 0 is the interior, no taps)."""
    h, w = in_hw
    kh, kw = kernel
    inside = pad_input(np.ones((1, 1, h, w), np.float64), padding)
    cols = im2col(1 - inside, kh, kw, stride, 1)[0]                  # (OH·OW, kh·kw): 1 where a tap is padding
    masks, pattern = np.unique(np.vstack([np.zeros((1, kh * kw)), cols]), axis=0, return_inverse=True)
    return pattern.reshape(-1)[1:].astype(np.int32), masks


def tap_sums_from_packed(bt, channels, out_channels, taps):
    """Σ_c sign(w)[o, c, u, v] for every output channel and tap, from the packed weights Bt (taps·CW, Opad):
    C − 2·(number of −1 bits)."""
    negatives = np.bitwise_count(bt[:, :out_channels]).reshape(taps, -1, out_channels).sum(axis=1, dtype=np.int64)
    return (channels - 2 * negatives).T                                 # (O, kh·kw)


def zero_padding_correction(tap_sums, in_hw, kernel, stride, padding):
    """(P, O) float32 per pattern: Σ over the pattern's padded taps of tap_sums[o, tap], and the (OH·OW,) pattern
    of every output pixel.  Subtracting it from the +1-padded result gives the 0-padded one."""
    pattern, masks = padding_patterns(tuple(in_hw), tuple(kernel), tuple(stride), tuple(padding))
    return np.ascontiguousarray(masks @ tap_sums.T, dtype=np.float32), pattern


def is_binary_pair(x, w):
    """True when x is ±1 and every output channel of w is ±α_o: the XNOR-popcount conv is then exact."""
    alpha = np.abs(w.reshape(w.shape[0], -1)[:, :1])
    return bool(np.all(np.abs(x) == 1)) and bool(np.all(np.abs(w.reshape(w.shape[0], -1)) == alpha))


def channel_scales(w):
    """α_o of weights that are ±α_o per output channel, as float32."""
    return np.abs(w.reshape(w.shape[0], -1)[:, 0]).astype(np.float32)


def binary_conv2d_reference(x, w, stride=1, padding=0, pad_value=0):
    """Pure NumPy packed binary conv: x ±1 (N, C, H, W), w ±α_o (O, C, kh, kw) → float32 (N, O, OH, OW)."""
    stride, padding = pair(stride), pair(padding)
    n = x.shape[0]
    o, c, kh, kw = w.shape
    xp = pad_input(x, padding, 1.0)
    cols = im2col(xp, kh, kw, stride, 1)[0]                        # (N·OH·OW, C·kh·kw) of ±1
    out = xnor_popcount_matmul(packbits_rows(cols), packbits_rows(w.reshape(o, -1)), c * kh * kw)
    oh, ow = output_size(x.shape[2], kh, stride[0], padding[0]), output_size(x.shape[3], kw, stride[1], padding[1])
    out = out.reshape(n, oh, ow, o).transpose(0, 3, 1, 2)
    if pad_value == 0 and padding != (0, 0):
        tap_sums = np.where(w < 0, -1, 1).sum(axis=1).reshape(o, kh * kw)
        corr, pattern = zero_padding_correction(tap_sums, x.shape[2:], (kh, kw), stride, padding)
        out = out - corr[pattern].T.reshape(1, o, oh, ow)
    return (out * channel_scales(w)[None, :, None, None]).astype(np.float32)
