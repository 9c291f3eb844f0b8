"""Task 3 — the binary convolution by XNOR and popcount, with 0- or +1-padding.

With activations and weights in {−1, +1}, a dot product needs no multiplication.  Encode −1 as bit 1 and +1 as
bit 0 and pack K values into ⌈K/64⌉ 64-bit words.  x_k·w_k is +1 where the bits agree and −1 where they differ:

    x·w = (#agree) − (#differ) = K − 2·popcount(x_bits XOR w_bits)

K is the *true* length: the zero bits that fill the last word agree in both operands and must not count.

A convolution is this dot product between every output pixel's receptive field (C·kh·kw values, read in the
order c, u, v, the order of w[o].reshape(−1)) and every output channel's kernel:

    y[n, o, i, j] = Σ_{c,u,v} w[o, c, u, v] · x_p[n, c, i·s + u, j·s + v]

x_p is the ±1 map padded *after* binarization with `pad_value`:
  • pad_value = +1: the padding is +1, i.e. bit 0 — pad with +1 and pack as usual;
  • pad_value = 0 (Larq's default): a padded tap contributes 0, which no bit can encode.  Compute the
    +1-padded result, then subtract what the padding wrongly added: for output (o, i, j), the sum of
    w[o, c, u, v] over every channel c and every tap (u, v) of its window that falls in the padding.

The result must equal the float convolution of the ±1 maps exactly (integers, returned as float32).  Write
`pack_rows`, `xnor_popcount` and `binary_conv2d`; `pad` and `patches` are given.
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def pad(x: np.ndarray, padding: int, value: float) -> np.ndarray:
    """x (N, C, H, W) surrounded by `padding` rows and columns of `value`."""
    if padding == 0:
        return x
    return np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)), constant_values=value)


def patches(xp: np.ndarray, kh: int, kw: int, stride: int):
    """The receptive field of every output pixel as one row: (N·OH·OW, C·kh·kw), entries in (c, u, v) order,
    rows in (n, i, j) order; and (OH, OW)."""
    win = sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride]   # (N, C, OH, OW, kh, kw)
    n, c, oh, ow = win.shape[:4]
    return win.transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, c * kh * kw), (oh, ow)


def pack_rows(m: np.ndarray) -> np.ndarray:
    """(M, K) of ±1 → (M, ⌈K/64⌉) uint64: bit 1 for −1 (any value < 0), bit 0 for +1, value k of a row in bit
    k mod 64 of word k // 64 (little bit order: np.packbits(..., bitorder="little") packs bytes that way), the
    last word filled with zero bits."""
    # BEGIN SOLUTION task 3: pack_rows
    bits = np.packbits(m < 0, axis=1, bitorder="little")
    words = -(-m.shape[1] // 64)
    padded = np.zeros((m.shape[0], words * 8), dtype=np.uint8)
    padded[:, :bits.shape[1]] = bits
    return padded.view(np.uint64)
    # END SOLUTION


def xnor_popcount(a_bits: np.ndarray, b_bits: np.ndarray, nbits: int) -> np.ndarray:
    """(M, W) and (N, W) packed rows of `nbits` values each → (M, N) int64 of ±1 dot products:
    nbits − 2·popcount(a XOR b)  (np.bitwise_count counts the ones of every word)."""
    # BEGIN SOLUTION task 3: xnor_popcount
    differ = np.bitwise_count(a_bits[:, None, :] ^ b_bits[None, :, :]).sum(axis=-1, dtype=np.int64)
    return nbits - 2 * differ
    # END SOLUTION


def binary_conv2d(x: np.ndarray, w: np.ndarray, stride: int = 1, padding: int = 0, pad_value: int = 0):
    """x ±1 (N, C, H, W), w ±1 (O, C, kh, kw) → float32 (N, O, OH, OW), through pack_rows and xnor_popcount."""
    # BEGIN SOLUTION task 3: binary_conv2d
    n, c, h, width = x.shape
    o, _, kh, kw = w.shape
    cols, (oh, ow) = patches(pad(x, padding, 1.0), kh, kw, stride)
    out = xnor_popcount(pack_rows(cols), pack_rows(w.reshape(o, -1)), c * kh * kw).reshape(n, oh * ow, o)
    if pad_value == 0 and padding > 0:
        # which taps of each window are padding (1) or image (0), then Σ_c w over those taps
        in_padding, _ = patches(pad(np.zeros((1, 1, h, width)), padding, 1.0), kh, kw, stride)   # (OH·OW, kh·kw)
        tap_sums = w.sum(axis=1).reshape(o, kh * kw)
        out = out - (in_padding @ tap_sums.T)[None]
    return out.reshape(n, oh, ow, o).transpose(0, 3, 1, 2).astype(np.float32)
    # END SOLUTION
