"""2-D convolution (NCHW) with stride, zero padding and groups — the reference implementation.

    y[n, o, i, j] = b[o] + Σ_{c ∈ group(o)} Σ_{u,v} w[o, c, u, v] · x_pad[n, c, i·s + u, j·s + v]

Weights are (C_out, C_in/groups, kh, kw), as in PyTorch, so a depthwise conv (groups = C_in) with multiplier m
has output channel c·m + k for kernel k of input channel c.

General convs use im2col: every output pixel's receptive field becomes one row of a matrix, so the conv is one
BLAS GEMM per group.  Backward is two more GEMMs:  ∂L/∂W = Gᵀ·cols,  ∂L/∂cols = G·W, and col2im scatters the
column gradient back onto the (padded) input.  Depthwise convs skip im2col: they are a sum of kh·kw shifted,
per-channel-scaled copies of the input, which is far cheaper than a GEMM with one input channel per group.

Float32 convs have compiled twins (`minilab.fast.conv`): with groups = 1 the same maths chunk by chunk, a Winograd
backward and the XNOR-popcount forward of binary convs; depthwise 3×3 a direct kernel.  This file is the readable
reference they are tested against.
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..core.autograd import Function


def pair(v):
    """(v, v) for one number, the tuple itself for a pair: kernel sizes, strides and paddings."""
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


def check_conv_options(stride, padding, groups, name="conv2d"):
    """Strides and groups are positive integers, paddings non-negative integers (a zero stride or group count
    has no meaning: it would divide by zero further in)."""
    for option, values, low in (("stride", stride, 1), ("padding", padding, 0)):
        if len(values) != 2 or not all(isinstance(v, (int, np.integer)) and v >= low for v in values):
            raise ValueError(f"{name}: {option} must be {'positive' if low else 'non-negative'} integers (one or a "
                             f"pair), got {values}")
    if not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ValueError(f"{name}: groups must be a positive integer, got {groups!r}")


def check_conv_shapes(x, w, groups, name="conv2d"):
    if x.ndim != 4:
        raise ValueError(f"{name}: input must be 4-D (N, C, H, W), got shape {x.shape}")
    if w.ndim != 4:
        raise ValueError(f"{name}: weight must be 4-D (C_out, C_in/groups, kh, kw), got shape {w.shape}")
    if min(w.shape) < 1:
        raise ValueError(f"{name}: every weight dimension (C_out, C_in/groups, kh, kw) must be at least 1, got "
                         f"{w.shape}")
    if groups < 1:
        raise ValueError(f"{name}: groups must be a positive integer, got {groups!r}")
    if x.shape[1] % groups or w.shape[0] % groups:
        raise ValueError(f"{name}: groups={groups} must divide C_in={x.shape[1]} and C_out={w.shape[0]}")
    if w.shape[1] * groups != x.shape[1]:
        raise ValueError(f"{name}: weight {w.shape} expects {w.shape[1] * groups} input channels "
                         f"(groups={groups}), input has {x.shape[1]}")


def depthwise_forward(xp, w, stride, out_hw, b=None):
    """y[n, c·m + k] = b[c·m + k] + Σ_{u,v} w[c·m + k, 0, u, v] · x_pad[n, c, i·s + u, j·s + v]
    (a sum of shifted copies)."""
    n, c = xp.shape[:2]
    m, kh, kw = w.shape[0] // c, w.shape[2], w.shape[3]
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


def check_fits(x, w, stride, padding):
    """(OH, OW) of the conv, after checking the kernel fits the padded input."""
    kh, kw = w.shape[2:]
    oh = output_size(x.shape[2], kh, stride[0], padding[0])
    ow = output_size(x.shape[3], kw, stride[1], padding[1])
    if oh < 1 or ow < 1:
        raise ValueError(f"conv2d: a {kh}x{kw} kernel does not fit the padded {x.shape[2:]} input")
    return oh, ow


def is_depthwise(x, w, groups):
    """groups = C_in > 1 and one input channel per kernel: DepthwiseConvolution's case."""
    return x.ndim == 4 and w.ndim == 4 and groups == x.shape[1] and w.shape[1] == 1 and groups > 1


class Convolution(Function):
    r"""See the module docstring for the maths (im2col + one GEMM per group).

    `pad_value` pads with a constant other than 0 (binary convs pad ±1 maps with +1 or 0).  `binary=True`
    promises that x is ±1 and every output channel of w is ±α_o; the reference computes the same float conv
    either way, a compiled twin may then use the exact XNOR-popcount kernel.

    .. math::

       y_{n,o,i,j} = b_o + \sum_{c \in \text{group}(o)} \sum_{u,v} w_{o,c,u,v}\, x^{\text{pad}}_{n,c,\, i s + u,\, j s + v}

       \frac{\partial L}{\partial W} = G^\top \cdot \text{cols},
       \qquad \frac{\partial L}{\partial \text{cols}} = G\, W \;\xrightarrow{\text{col2im}}\; \frac{\partial L}{\partial x},
       \qquad \frac{\partial L}{\partial b_o} = \sum_{n,i,j} g_{n,o,i,j}
    """

    @staticmethod
    def forward(ctx, x, w, b=None, stride=(1, 1), padding=(0, 0), groups=1, pad_value=0.0, binary=False):
        check_conv_shapes(x, w, groups)
        oh, ow = check_fits(x, w, stride, padding)
        xp = pad_input(x, padding, pad_value)
        cols = im2col(xp, w.shape[2], w.shape[3], stride, groups)
        wmat = w.reshape(groups, w.shape[0] // groups, -1)
        out = np.matmul(cols, wmat.transpose(0, 2, 1))  # (g, N·OH·OW, Og)
        n = x.shape[0]
        og = w.shape[0] // groups   # explicit sizes, not -1: an empty batch (N = 0) reshapes too
        out = out.reshape(groups, n, oh, ow, og).transpose(1, 0, 4, 2, 3).reshape(n, w.shape[0], oh, ow)
        ctx.stride, ctx.padding, ctx.groups, ctx.has_bias, ctx.xp_shape = stride, padding, groups, b is not None, \
            xp.shape
        ctx.save(cols, w)
        if b is not None:
            out = out + b.reshape(1, -1, 1, 1)
        return np.ascontiguousarray(out)

    @staticmethod
    def backward(ctx, g):
        cols, w = ctx.saved
        groups = ctx.groups
        n, o, oh, ow = g.shape
        kh, kw = w.shape[2:]
        og = o // groups
        gmat = g.reshape(n, groups, og, oh, ow).transpose(1, 0, 3, 4, 2).reshape(groups, n * oh * ow, og)
        dw = np.matmul(gmat.transpose(0, 2, 1), cols).reshape(w.shape)
        db = g.sum(axis=(0, 2, 3)) if ctx.has_bias else None
        dx = None
        if ctx.needs_input_grad[0]:
            dcols = np.matmul(gmat, w.reshape(groups, o // groups, -1))
            dxp = col2im(dcols, ctx.xp_shape, kh, kw, ctx.stride, groups, (oh, ow))
            dx = np.ascontiguousarray(unpad(dxp, ctx.padding))
        return (dx, dw, db) if ctx.has_bias else (dx, dw)


class DepthwiseConvolution(Function):
    r"""A depthwise conv (groups = C_in, m kernels per input channel): `depthwise_forward` / `depthwise_backward`,
    sums of shifted copies instead of a GEMM with one input channel per group.  The options are Convolution's.

    .. math::

       y_{n,cm+k,i,j} = b_{cm+k} + \sum_{u,v} w_{cm+k,0,u,v}\, x^{\text{pad}}_{n,c,\, i s + u,\, j s + v}

       \frac{\partial L}{\partial w_{cm+k,0,u,v}} = \sum_{n,i,j} g_{n,cm+k,i,j}\, x^{\text{pad}}_{n,c,\, is+u,\, js+v},
       \qquad \frac{\partial L}{\partial x^{\text{pad}}_{n,c,\, is+u,\, js+v}} \;{+}{=}\; \sum_k g_{n,cm+k,i,j}\, w_{cm+k,0,u,v}
    """

    @staticmethod
    def forward(ctx, x, w, b=None, stride=(1, 1), padding=(0, 0), groups=1, pad_value=0.0):
        check_conv_shapes(x, w, groups)
        oh, ow = check_fits(x, w, stride, padding)
        xp = pad_input(x, padding, pad_value)
        ctx.stride, ctx.padding, ctx.has_bias = stride, padding, b is not None
        ctx.save(xp, w)
        return depthwise_forward(xp, w, stride, (oh, ow), b)

    @staticmethod
    def backward(ctx, g):
        xp, w = ctx.saved
        dxp, dw = depthwise_backward(xp, w, g, ctx.stride)
        dx = np.ascontiguousarray(unpad(dxp, ctx.padding))
        return (dx, dw, g.sum(axis=(0, 2, 3))) if ctx.has_bias else (dx, dw)


def conv2d(x, weight, bias=None, stride=1, padding=0, groups=1, pad_value=0.0):
    """PyTorch-style conv2d (NCHW, weight (C_out, C_in/groups, kh, kw)), padding with `pad_value` (0)."""
    args = (x, weight) if bias is None else (x, weight, bias)
    check_conv_options(pair(stride), pair(padding), groups)
    op = DepthwiseConvolution if is_depthwise(x, weight, groups) else Convolution
    return op.apply(*args, stride=pair(stride), padding=pair(padding), groups=groups, pad_value=pad_value)
