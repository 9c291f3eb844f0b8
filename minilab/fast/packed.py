"""The bit-packed binary convolution on the compiled XNOR-popcount kernel (the training forward's; the inference
engine runs the same two steps as one compiled call, `PackedConvPlan`).  The arithmetic and its NumPy reference
are in `minilab.ops.packed`; this equals it bit for bit."""
import numpy as np

from ..core.config import compiled as ext
from ..ops.conv import output_size, pair
from ..ops.packed import channel_scales, tap_sums_from_packed, zero_padding_correction


def popcount_conv(xpk, bt, tap_sums, in_channels, out_channels, kernel, stride, padding, pad_value, in_hw,
                  threads=1, **transform):
    """The conv on already packed operands: xpk (N, H+2p, W+2p, CW) from pack_channels_last, bt from pack_weights,
    tap_sums (O, kh·kw) = Σ_c sign(w).  `transform` is bgemm's fused output transform (alpha, relu, BatchNorm, …);
    the zero-padding correction is added here.  Returns (N, O, OH, OW) float32."""
    kh, kw = kernel
    n = xpk.shape[0]
    oh, ow = output_size(in_hw[0], kh, stride[0], padding[0]), output_size(in_hw[1], kw, stride[1], padding[1])
    rows = ext.packed_im2col(xpk, kh, kw, stride[0], stride[1], oh, ow, threads)
    pattern = corr = None
    if pad_value == 0 and tuple(padding) != (0, 0):
        corr, pattern = zero_padding_correction(tap_sums, in_hw, kernel, stride, padding)
        if n > 1:
            pattern = np.tile(pattern, n)
    out = ext.bgemm(rows, bt, out_channels, in_channels * kh * kw, row_pattern=pattern, pattern_corr=corr,
                    pixels=oh * ow, threads=threads, **transform)
    return out.reshape(n, out_channels, oh, ow)


def binary_conv2d_packed(x, w, stride=1, padding=0, pad_value=0, threads=1):
    """The same result as binary_conv2d_reference, on the compiled XNOR-popcount kernel."""
    stride, padding = pair(stride), pair(padding)
    o, c, kh, kw = w.shape
    xpk = ext.pack_channels_last(np.ascontiguousarray(x, dtype=np.float32), padding[0], padding[1], threads)
    bt = ext.pack_weights(np.ascontiguousarray(w, dtype=np.float32), threads)
    tap_sums = tap_sums_from_packed(bt, c, o, kh * kw)
    return popcount_conv(xpk, bt, tap_sums, c, o, (kh, kw), stride, padding, pad_value, tuple(x.shape[2:]),
                         threads, alpha=channel_scales(w))
