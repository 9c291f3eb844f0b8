"""The uniqueness ratio η of the paper's Table 1.

For one binary single-channel map A (H × W, ±1): convolve it with every one of the 2⁹ = 512 binary 3×3 kernels
('same' size, padding with `pad_value`: 0 as Larq's default, or +1), binarize every result with sign (sign(0) =
+1), and count how many *distinct* binary maps come out:   η(A) = distinct / 512.
A rich map keeps the 512 outputs apart (η near 1); a flat one collapses them (a constant map gives only a few).
η of a layer = mean over its channels and over images.  The 512 convolutions are one binary conv, which runs on
the XNOR-popcount kernel when the compiled kernels are there.

"LAB view": the sign after each convolution is replaced by a trained LAB (the next layer's, channel `c`'s
kernels, bias and β), counting the distinct maps LAB would produce instead."""
import itertools

import numpy as np

from ..core.autograd import Tensor, no_grad
from ..ops.conv import Convolution
from ..ops.lab import lab


def all_binary_kernels():
    """(512, 1, 3, 3) float32: every ±1 3×3 kernel."""
    bits = np.array(list(itertools.product([1.0, -1.0], repeat=9)), dtype=np.float32)
    return bits.reshape(512, 1, 3, 3)


KERNELS = all_binary_kernels()


def count_distinct(maps: np.ndarray) -> int:
    """Number of distinct binary maps among `maps` (K, …), compared bit for bit."""
    packed = np.packbits(maps.reshape(len(maps), -1) < 0, axis=1)
    return len(np.unique(packed, axis=0))


def responses(binary_map: np.ndarray, pad_value=0) -> np.ndarray:
    """(512, H, W): the 512 binary convolutions of one ±1 map (exact integers)."""
    x = np.ascontiguousarray(binary_map, dtype=np.float32)[None, None]
    # a binary conv as the training graph runs it: the dispatcher picks the XNOR-popcount twin when the kernels
    # are there; every implementation gives the same integers (sums of nine ±1 products)
    with no_grad():
        out = Convolution.apply(Tensor(x), Tensor(KERNELS), stride=(1, 1), padding=(1, 1), groups=1,
                                pad_value=float(pad_value), binary=True)
    return out.data[0]


def uniqueness_ratio(binary_map: np.ndarray, pad_value=0) -> float:
    r = responses(binary_map, pad_value)
    return count_distinct(np.where(r >= 0, 1.0, -1.0)) / 512


def uniqueness_ratio_lab(binary_map: np.ndarray, lab_module, channel: int, pad_value=0) -> float:
    """η when LAB (channel `channel` of `lab_module`) binarizes the 512 responses instead of sign."""
    r = responses(binary_map, pad_value)[:, None]                              # (512, 1, H, W)
    w = lab_module.weight.data[2 * channel:2 * channel + 2]
    b = lab_module.bias.data[2 * channel:2 * channel + 2]
    with no_grad():
        maps = lab(Tensor(r), Tensor(w), Tensor(b), lab_module.beta, "channel").data
    return count_distinct(maps) / 512


def layer_uniqueness(binary_maps: np.ndarray, pad_value=0, max_channels=None, lab_module=None):
    """Mean η over images and channels of a layer's maps (N, C, H, W); with `lab_module`, the LAB view too."""
    n, c = binary_maps.shape[:2]
    channels = range(c if max_channels is None else min(c, max_channels))
    etas, lab_etas = [], []
    for i in range(n):
        for ch in channels:
            etas.append(uniqueness_ratio(binary_maps[i, ch], pad_value))
            if lab_module is not None:
                lab_etas.append(uniqueness_ratio_lab(binary_maps[i, ch], lab_module,
                                                     ch % (lab_module.bias.shape[0] // 2), pad_value))
    return float(np.mean(etas)), (float(np.mean(lab_etas)) if lab_etas else None)
