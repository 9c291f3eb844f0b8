"""Symmetric per-channel weight quantisation, for LAB's depthwise kernels in INT8 / INT4 (paper Table 6)::

    q_max = 2^(bits−1) − 1   (127 for INT8, 7 for INT4)
    s_c   = max |w_c| / q_max           (one scale per output channel c; s_c = 1 if w_c is all zero)
    q     = clip(round(w / s_c), −q_max, q_max)        stored as integers
    ŵ     = q · s_c                                    (float32: what both training and the engine compute with)

`fake_quant` trains with ŵ in the forward and a straight-through backward (∂ŵ/∂w = 1), so a model trained with
--lab-bits 8 or 4 computes exactly what the packed engine's integer storage gives."""
import numpy as np

from ..core.autograd import Function

SUPPORTED_BITS = (32, 8, 4)


def quantize_symmetric(w: np.ndarray, bits: int):
    """(q int8 of w's shape, scale float32 (C, 1, …, 1)) — per-channel over axis 0."""
    if bits not in (8, 4):
        raise ValueError(f"quantisation supports 8 or 4 bits, got {bits}")
    qmax = 2 ** (bits - 1) - 1
    axes = tuple(range(1, w.ndim))
    peak = np.abs(w).max(axis=axes, keepdims=True).astype(np.float32)
    scale = np.where(peak > 0, peak / np.float32(qmax), np.float32(1)).astype(np.float32)
    q = np.clip(np.round(w / scale), -qmax, qmax).astype(np.int8)
    return q, scale


def dequantize(q: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return q.astype(np.float32) * scale.astype(np.float32)


class FakeQuant(Function):
    r"""forward: ŵ = dequantize(quantize(w));  backward (STE): ∂L/∂w = ∂L/∂ŵ;  surrogate: the identity.

    .. math::

       s_c = \frac{\max |w_c|}{q_{\max}},
       \qquad \hat w = s_c \operatorname{clip}\!\left(\operatorname{round}\!\left(\frac{w}{s_c}\right), -q_{\max}, q_{\max}\right),
       \qquad q_{\max} = 2^{\,\text{bits} - 1} - 1

       \frac{\partial L}{\partial w} \approx \frac{\partial L}{\partial \hat w} \quad \text{(straight through)}
    """

    @staticmethod
    def forward(ctx, w, bits=8):
        q, scale = quantize_symmetric(w, bits)
        return dequantize(q, scale).astype(w.dtype)

    @staticmethod
    def surrogate(ctx, w, bits=8):
        return w.copy()

    @staticmethod
    def backward(ctx, g):
        return g


def fake_quant(w, bits):
    if bits == 32:
        return w
    if bits not in SUPPORTED_BITS:
        raise ValueError(f"LAB kernels can be stored in {SUPPORTED_BITS} bits, got {bits}")
    return FakeQuant.apply(w, bits=bits)


def pack_int4(q: np.ndarray) -> np.ndarray:
    """int8 values in [−7, 7] → uint8, two per byte (low nibble first), for storage."""
    flat = (q.reshape(-1).astype(np.int16) & 0xF).astype(np.uint8)
    if flat.size % 2:
        flat = np.append(flat, np.uint8(0))
    return flat[0::2] | (flat[1::2] << 4)


def unpack_int4(packed: np.ndarray, shape) -> np.ndarray:
    lo, hi = packed & 0xF, packed >> 4
    flat = np.stack([lo, hi], axis=1).reshape(-1)[:int(np.prod(shape))].astype(np.int8)
    return np.where(flat > 7, flat - 16, flat).astype(np.int8).reshape(shape)
