"""2-D convolution (NCHW) with stride, zero padding and groups — the reference implementation.

    y[n, o, i, j] = b[o] + Σ_{c ∈ group(o)} Σ_{u,v} w[o, c, u, v] · x_pad[n, c, i·s + u, j·s + v]

Weights are (C_out, C_in/groups, kh, kw), as in PyTorch, so a depthwise conv (groups = C_in) with multiplier m
has output channel c·m + k for kernel k of input channel c.

General convs use im2col: every output pixel's receptive field becomes one row of a matrix, so the conv is one
BLAS GEMM per group.  Backward is two more GEMMs:  ∂L/∂W = Gᵀ·cols,  ∂L/∂cols = G·W, and col2im scatters the
column gradient back onto the (padded) input.  Depthwise convs skip im2col: they are a sum of kh·kw shifted,
per-channel-scaled copies of the input, which is far cheaper than a GEMM with one input channel per group.

With the compiled kernels, float32 convs with groups = 1 run the same maths chunk by chunk so that the im2col
matrix stays in cache (`conv_chunked.py`); this file's im2col / col2im are the readable NumPy reference.
"""
import contextlib
import os

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .. import _backend
from ..autograd import Function
from . import conv_chunked, conv_winograd


_packed_forward = True
# the compiled path's 3×3 stride-1 backward runs Winograd F(2×2, 3×3) (`conv_winograd`); MINILAB_WINOGRAD=0 keeps
# it on im2col + GEMM, the comparison the training benchmark makes
winograd_backward = os.environ.get("MINILAB_WINOGRAD", "1") not in ("0", "")


@contextlib.contextmanager
def float_reference():
    """Run binary convs as plain float convs (BLAS), even where the packed kernel could be used: the float
    baseline the inference benchmark compares against."""
    global _packed_forward
    previous, _packed_forward = _packed_forward, False
    try:
        yield
    finally:
        _packed_forward = previous


def _pair(v):
    return (v, v) if isinstance(v, (int, np.integer)) else tuple(v)


def output_size(size, kernel, stride, padding):
    return (size + 2 * padding - kernel) // stride + 1


def pad_input(x, padding, value=0.0):
    """x (…, H, W) surrounded by `padding` rows/columns of `value` (a plain copy; np.pad is much slower)."""
    ph, pw = padding
    if ph == 0 and pw == 0:
        return x
    out = np.full(x.shape[:-2] + (x.shape[-2] + 2 * ph, x.shape[-1] + 2 * pw), value, dtype=x.dtype)
    out[..., ph:ph + x.shape[-2], pw:pw + x.shape[-1]] = x
    return out


def windows(xp, kh, kw, stride):
    """View of shape (N, C, OH, OW, kh, kw): the receptive field of every output pixel (no copy)."""
    sh, sw = stride
    return sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]


def im2col(xp, kh, kw, stride, groups):
    """cols[g, n·OH·OW + i·OW + j, c·kh·kw + u·kw + v] = x_pad[n, g·Cg + c, i·s + u, j·s + v]."""
    n, c = xp.shape[:2]
    win = windows(xp, kh, kw, stride)
    oh, ow = win.shape[2:4]
    cg = c // groups
    win = win.reshape(n, groups, cg, oh, ow, kh, kw).transpose(1, 0, 3, 4, 2, 5, 6)
    return np.ascontiguousarray(win).reshape(groups, n * oh * ow, cg * kh * kw)


def col2im(dcols, xp_shape, kh, kw, stride, groups, out_hw):
    """The adjoint of im2col: add every column entry back onto the input pixel it was copied from."""
    n, c, hp, wp = xp_shape
    oh, ow = out_hw
    sh, sw = stride
    cg = c // groups
    d = dcols.reshape(groups, n, oh, ow, cg, kh, kw).transpose(1, 0, 4, 2, 3, 5, 6).reshape(n, c, oh, ow, kh, kw)
    dxp = np.zeros(xp_shape, dtype=dcols.dtype)
    for u in range(kh):
        for v in range(kw):
            dxp[:, :, u:u + sh * (oh - 1) + 1:sh, v:v + sw * (ow - 1) + 1:sw] += d[..., u, v]
    return dxp


def unpad(dxp, padding):
    ph, pw = padding
    return dxp[:, :, ph:dxp.shape[2] - ph, pw:dxp.shape[3] - pw]


def check_conv_shapes(x, w, groups, name="conv2d"):
    if x.ndim != 4:
        raise ValueError(f"{name}: input must be 4-D (N, C, H, W), got shape {x.shape}")
    if w.ndim != 4:
        raise ValueError(f"{name}: weight must be 4-D (C_out, C_in/groups, kh, kw), got shape {w.shape}")
    if x.shape[1] % groups or w.shape[0] % groups:
        raise ValueError(f"{name}: groups={groups} must divide C_in={x.shape[1]} and C_out={w.shape[0]}")
    if w.shape[1] * groups != x.shape[1]:
        raise ValueError(f"{name}: weight {w.shape} expects {w.shape[1] * groups} input channels "
                         f"(groups={groups}), input has {x.shape[1]}")


def is_binary_pair(x, w):
    """True when x is ±1 and every output channel of w is ±α_o: the packed kernel is then exact."""
    if _backend.ext is not None and x.dtype == np.float32 == w.dtype and x.flags.c_contiguous and \
            w.flags.c_contiguous:
        return _backend.ext.is_binary_pair(x.reshape(-1), w.reshape(w.shape[0], -1))
    alpha = np.abs(w.reshape(w.shape[0], -1)[:, :1])
    return bool(np.all(np.abs(x) == 1)) and bool(np.all(np.abs(w.reshape(w.shape[0], -1)) == alpha))


def depthwise_forward(xp, w, stride, out_hw, b=None):
    """y[n, c·m + k] = b[c·m + k] + Σ_{u,v} w[c·m + k, 0, u, v] · x_pad[n, c, i·s + u, j·s + v]
    (a sum of shifted copies)."""
    n, c = xp.shape[:2]
    m, kh, kw = w.shape[0] // c, w.shape[2], w.shape[3]
    if _backend.ext is not None and kh == 3 and kw == 3 and xp.dtype == np.float32 == w.dtype:
        bias = None if b is None else np.ascontiguousarray(b, dtype=np.float32)
        return _backend.ext.depthwise3x3_forward(np.ascontiguousarray(xp), np.ascontiguousarray(w),
                                                 stride[0], stride[1], out_hw[0], out_hw[1], bias=bias)
    oh, ow = out_hw
    sh, sw = stride
    wr = w.reshape(c, m, kh, kw)
    out = np.zeros((n, c, m, oh, ow), dtype=np.result_type(xp, w))
    for u in range(kh):
        for v in range(kw):
            patch = xp[:, :, u:u + sh * (oh - 1) + 1:sh, v:v + sw * (ow - 1) + 1:sw]
            out += patch[:, :, None] * wr[None, :, :, u, v, None, None]
    out = out.reshape(n, c * m, oh, ow)
    return out if b is None else out + b.reshape(1, -1, 1, 1)


def depthwise_backward(xp, w, g, stride):
    """∂L/∂w[c·m+k, 0, u, v] = Σ_{n,i,j} g[n, c·m+k, i, j] · x_pad[n, c, i·s+u, j·s+v];
    ∂L/∂x_pad[n, c, i·s+u, j·s+v] += Σ_k g[n, c·m+k, i, j] · w[c·m+k, 0, u, v]."""
    n, c = xp.shape[:2]
    m, kh, kw = w.shape[0] // c, w.shape[2], w.shape[3]
    oh, ow = g.shape[2:]
    if _backend.ext is not None and kh == 3 and kw == 3 and xp.dtype == np.float32 == w.dtype == g.dtype:
        return _backend.ext.depthwise3x3_backward(np.ascontiguousarray(xp), np.ascontiguousarray(w),
                                                  np.ascontiguousarray(g), stride[0], stride[1])
    sh, sw = stride
    gr = g.reshape(n, c, m, oh, ow)
    wr = w.reshape(c, m, kh, kw)
    dw = np.zeros((c, m, kh, kw), dtype=g.dtype)
    dxp = np.zeros(xp.shape, dtype=g.dtype)
    for u in range(kh):
        for v in range(kw):
            sl = (slice(None), slice(None), slice(u, u + sh * (oh - 1) + 1, sh), slice(v, v + sw * (ow - 1) + 1, sw))
            patch = xp[sl]
            dw[:, :, u, v] = np.einsum("ncmij,ncij->cm", gr, patch, optimize=True)
            dxp[sl] += np.einsum("ncmij,cm->ncij", gr, wr[:, :, u, v], optimize=True)
    return dxp, dw.reshape(w.shape)


class Conv2d(Function):
    """See the module docstring for the maths.

    `pad_value` pads with a constant other than 0 (binary convs pad ±1 maps with +1 or 0).  `binary=True`
    promises that x is ±1 and every output channel of w is ±α_o: the forward may then run on the bit-packed
    XNOR-popcount kernel, which is exact (`minilab.ops.packed`).  The backward is the same either way."""

    @staticmethod
    def forward(ctx, x, w, b=None, stride=(1, 1), padding=(0, 0), groups=1, pad_value=0.0, binary=False):
        check_conv_shapes(x, w, groups)
        kh, kw = w.shape[2:]
        oh = output_size(x.shape[2], kh, stride[0], padding[0])
        ow = output_size(x.shape[3], kw, stride[1], padding[1])
        if oh < 1 or ow < 1:
            raise ValueError(f"conv2d: a {kh}x{kw} kernel does not fit the padded {x.shape[2:]} input")
        ctx.stride, ctx.padding, ctx.groups, ctx.has_bias = stride, padding, groups, b is not None
        depthwise = groups == x.shape[1] and w.shape[1] == 1 and groups > 1
        ctx.depthwise = depthwise
        ctx.chunked = not depthwise and groups == 1 and _backend.ext is not None and \
            x.dtype == np.float32 == w.dtype
        packed = binary and _packed_forward and groups == 1 and _backend.ext is not None and is_binary_pair(x, w)
        if packed:
            from .packed import binary_conv2d_packed
        if ctx.chunked:  # compiled kernels: im2col per cache-sized chunk of images, recomputed in backward
            x = np.ascontiguousarray(x)
            if packed:
                out = binary_conv2d_packed(x, w, stride, padding, pad_value, threads=_backend.threads)
            else:
                out = conv_chunked.conv_forward(x, w, stride, padding, pad_value, (oh, ow))
            ctx.pad_value = pad_value
            ctx.save(x, w)
        elif depthwise:
            xp = pad_input(x, padding, pad_value)
            ctx.save(xp, w)
            return depthwise_forward(xp, w, stride, (oh, ow), b)
        else:
            xp = pad_input(x, padding, pad_value)
            if packed:  # float64 graphs: the packed result is exact, so it is only cast
                out = binary_conv2d_packed(x, w, stride, padding, pad_value).astype(x.dtype, copy=False)
                ctx.save(None, w, xp)  # im2col of the ±1 input is deferred to backward, which needs it for ∂L/∂w
            else:
                cols = im2col(xp, kh, kw, stride, groups)
                wmat = w.reshape(groups, w.shape[0] // groups, -1)
                out = np.matmul(cols, wmat.transpose(0, 2, 1))  # (g, N·OH·OW, Og)
                n = x.shape[0]
                out = out.reshape(groups, n, oh, ow, -1).transpose(1, 0, 4, 2, 3).reshape(n, w.shape[0], oh, ow)
                ctx.save(cols, w)
            ctx.xp_shape = xp.shape
        if b is not None:
            out = out + b.reshape(1, -1, 1, 1)
        return np.ascontiguousarray(out)

    @staticmethod
    def backward(ctx, g):
        stride, padding, groups = ctx.stride, ctx.padding, ctx.groups
        db = g.sum(axis=(0, 2, 3)) if ctx.has_bias else None
        if ctx.chunked:
            x, w = ctx.saved
            g = np.ascontiguousarray(g, dtype=np.float32)
            if winograd_backward and conv_winograd.applicable(x, w, stride, padding):
                dx, dw = conv_winograd.conv3x3_backward(x, w, g, padding, ctx.pad_value, ctx.needs_input_grad[0])
            else:
                dx, dw = conv_chunked.conv_backward(x, w, g, stride, padding, ctx.pad_value, ctx.needs_input_grad[0])
            return (dx, dw, db) if ctx.has_bias else (dx, dw)
        if ctx.depthwise:
            xp, w = ctx.saved
            dxp, dw = depthwise_backward(xp, w, g, stride)
        else:
            cols, w = ctx.saved[:2]
            n, o, oh, ow = g.shape
            kh, kw = w.shape[2:]
            if cols is None:
                cols = im2col(ctx.saved[2], kh, kw, stride, groups)
            gmat = g.reshape(n, groups, o // groups, oh, ow).transpose(1, 0, 3, 4, 2).reshape(groups, n * oh * ow, -1)
            wmat = w.reshape(groups, o // groups, -1)
            dw = np.matmul(gmat.transpose(0, 2, 1), cols).reshape(w.shape)
            dxp = None
            if ctx.needs_input_grad[0]:
                dcols = np.matmul(gmat, wmat)
                dxp = col2im(dcols, ctx.xp_shape, kh, kw, stride, groups, (oh, ow))
        dx = None if dxp is None else np.ascontiguousarray(unpad(dxp, padding))
        return (dx, dw, db) if ctx.has_bias else (dx, dw)


def conv2d(x, weight, bias=None, stride=1, padding=0, groups=1, pad_value=0.0):
    """PyTorch-style conv2d (NCHW, weight (C_out, C_in/groups, kh, kw)), padding with `pad_value` (0)."""
    args = (x, weight) if bias is None else (x, weight, bias)
    return Conv2d.apply(*args, stride=_pair(stride), padding=_pair(padding), groups=groups, pad_value=pad_value)
