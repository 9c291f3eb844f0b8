"""The packed binary convolution of the inference engine: binarize-and-pack the float input in one pass (sign, or
LAB's two depthwise responses, their comparison and the bit-packing fused in one kernel), then the XNOR-popcount
GEMM with the magnitude scale, the zero-padding correction and any following ReLU / BatchNorm folded into its
output transform (and, in a residual block, the shortcut add and PReLU: fused_block.py).

Each float32 step is the one the training graph computes in eval mode, in the same order (the extension is built
without FMA contraction), so binary activation maps are identical and logits agree to rounding."""
import time

import numpy as np

from ..core import config
from ..core.autograd import Tensor
from ..nn.module import Module
from ..ops.lab import lab, split_pairs
from ..ops.packed import tap_sums_from_packed, zero_padding_correction


def lab_pair_indices(channels, pairing):
    """For LAB output channel c: the indices of the two depthwise maps it compares (r0, r1)."""
    maps = np.arange(2 * channels).reshape(1, 2 * channels, 1, 1)
    i0, i1 = split_pairs(maps, pairing)
    return np.ascontiguousarray(i0.reshape(-1), np.int32), np.ascontiguousarray(i1.reshape(-1), np.int32)


def packed_bytes(shape, padding):
    """Bytes of the packed words (N, H + 2p, W + 2p, ceil(C/64)) of a float input of `shape` (N, C, H, W)."""
    n, c, h, w = shape
    return 8 * n * (h + 2 * padding) * (w + 2 * padding) * ((c + 63) // 64)


def shaped_like_output(residual, shape):
    """`residual` as the C-contiguous float32 array of the conv's output `shape` that the kernel reads: as in the
    training graph, a smaller shortcut (odd input sizes) broadcasts.  No copy when it already is one."""
    if residual.shape != shape or residual.dtype != np.float32 or not residual.flags.c_contiguous:
        residual = np.ascontiguousarray(np.broadcast_to(residual, shape), np.float32)
    return residual


def unpack_channels_last(packed, channels, padding=(0, 0)):
    """Packed words (N, Hp, Wp, CW) → the ±1 float32 map (N, C, H, W) they encode (padding removed)."""
    n, hp, wp, cw = packed.shape
    bits = np.unpackbits(packed.view(np.uint8).reshape(n, hp, wp, cw * 8), axis=-1, bitorder="little")
    ph, pw = padding
    bits = bits[:, ph:hp - ph, pw:wp - pw, :channels]
    return np.where(bits.transpose(0, 3, 1, 2) == 1, -1.0, 1.0).astype(np.float32)


class PackedBinaryConv2d(Module):
    """Arrays (all plain NumPy, saved by minilab.engine.storage):
        words (O, kh·kw·CW) uint64  weight signs, bit = 1 for −1, in packed_im2col's (u, v, word) order
        alpha (O,) float32          per-channel magnitude
        mean, invstd, gamma, beta   folded eval-mode BatchNorm (optional), relu: folded ReLU before it
        binarizer: "sign" | "prebinarized" | "lab" | "float" (niblack/sauvola: computed with the float ops)
        lab_weight (2C, 1, 3, 3) float32, lab_bias, lab_beta, lab_pairing.

    LAB with INT8 / INT4 kernels (lab_bits 8 / 4) computes with the dequantised kernel ŵ = q·s (one float32
    product per weight, exactly what the training graph's fake quantisation computes), in float32 like FP32 LAB.
    Integer arithmetic would only be exact if the input were integer too; LAB's input is the float output of
    the previous block, so an integer kernel would have to round it and could flip bits."""

    def __init__(self, spec, arrays, float_binarizer=None):
        super().__init__()
        self.spec = dict(spec)
        self.arrays = {k: v for k, v in arrays.items()}
        self.float_binarizer = float_binarizer
        self.threads = 1
        self.capture = None            # set to a list to collect the packed input maps (equivalence tests)
        self.last_shapes = None        # (input shape, output shape) of the last forward
        self.profiler = None           # fn(category, seconds), set by minilab.benchmarks.profile while it times
        self._prepare()

    def _prepare(self):
        ext = config.kernels()
        if ext is None:
            raise RuntimeError(f"the packed engine needs the compiled extension ({config.reason()})")
        s, a = self.spec, self.arrays
        o, c, kh, kw = s["out_channels"], s["in_channels"], s["kernel"], s["kernel"]
        cw = (c + 63) // 64
        words = a["words"].reshape(o, kh, kw, cw)
        opad = (o + 15) // 16 * 16
        bt = np.zeros((kh * kw * cw, opad), dtype=np.uint64)
        bt[:, :o] = words.reshape(o, -1).T
        self._bt = bt
        self._tap_sums = tap_sums_from_packed(bt, c, o, kh * kw)      # Σ_c sign(w)[o, c, u, v]
        self._lab_plan = None
        if s["binarizer"] == "lab":
            map0, map1 = lab_pair_indices(c, s["lab_pairing"])
            self._lab_plan = ext.LabPackPlan(np.asarray(a["lab_weight"], np.float32).reshape(2 * c, 9),
                                             a["lab_bias"], float(a["lab_beta"]), map0, map1)
        self._ext = ext
        self._transform = {key: None if a.get(key) is None else np.ascontiguousarray(a[key], np.float32).reshape(-1)
                           for key in ("alpha", "mean", "invstd", "gamma", "beta")}
        self._plans = {}                                                # input shape -> ext.PackedConvPlan

    def _plan(self, shape):
        """The compiled conv for inputs of `shape` (N, C, H, W): output size, zero-padding correction, its row
        pattern tiled over the batch and the transform's vectors, all made once.  A batch-1 forward is dozens of
        small convs, and the Python work around each one does not shrink with more threads."""
        plan = self._plans.get(shape)
        if plan is None:
            s = self.spec
            k, st, p = s["kernel"], s["stride"], s["padding"]
            pattern = corr = None
            if s["pad_value"] == 0 and p > 0:
                corr, pattern = zero_padding_correction(self._tap_sums, shape[2:], (k, k), (st, st), (p, p))
            plan = self._plans[shape] = self._ext.PackedConvPlan(
                self._bt, s["out_channels"], s["in_channels"] * k * k, shape, (k, k), (st, st), (p, p),
                relu=int(s.get("relu", False)), row_pattern=pattern, pattern_corr=corr, **self._transform)
        return plan

    def binarize_and_pack(self, x):
        ext = self._ext    # the engine runs on the kernels even inside config.use(kernels=False)
        s, a = self.spec, self.arrays
        p = s["padding"]
        kind = s["binarizer"]
        if kind == "lab" and x.shape[1] == 1:
            # one channel: the training graph's LAB conv is a plain conv on the GEMM, not the depthwise kernel,
            # and only the same float ops give the same bits
            y = lab(Tensor(x), Tensor(a["lab_weight"]), Tensor(a["lab_bias"]), Tensor(np.float32(a["lab_beta"])),
                    s["lab_pairing"]).data
            return ext.pack_channels_last(np.ascontiguousarray(y, np.float32), p, p, self.threads)
        if kind == "lab":
            return self._lab_plan.run(x, p, self.threads)
        if kind == "float":
            x = np.ascontiguousarray(self.float_binarizer(Tensor(x)).data, dtype=np.float32)
        return ext.pack_channels_last(x, p, p, self.threads)

    def forward(self, x):
        return Tensor(self.forward_fused(x), _keep_dtype=True)

    def bound_forward(self, shape):
        """forward_fused for inputs of exactly `shape`, with the shape's checks and the plan's lookup done once,
        here (the packed model's program, program.py, calls it once per layer per forward)."""
        s = self.spec
        if len(shape) != 4 or shape[1] != s["in_channels"]:
            raise ValueError(f"packed binary conv expects (N, {s['in_channels']}, H, W), got {shape}")
        plan = self._plan(shape)
        out_shape = (shape[0], s["out_channels"], plan.out_h, plan.out_w)
        shapes = (shape, out_shape)
        lab_plan = self._lab_plan if shape[1] > 1 else None
        padding = s["padding"]

        def forward(x, residual=None, prelu=None, residual_bn=None):
            if lab_plan is None or self.profiler is not None or self.capture is not None:
                return self.forward_fused(x, residual, prelu, residual_bn)
            if x.dtype != np.float32 or not x.flags.c_contiguous:
                x = np.ascontiguousarray(x, np.float32)
            if residual is not None:
                residual = shaped_like_output(residual, out_shape)
            self.last_shapes = shapes
            return plan.run_lab(lab_plan, x, padding, residual, prelu, self.threads, residual_bn)
        return forward

    def forward_fused(self, x, residual=None, prelu=None, residual_bn=None):
        """The conv's float32 output (N, O, OH, OW) as an array; `residual` (same shape) is added after the
        folded BatchNorm and `prelu` (O,) slopes applied last, inside the popcount kernel's output transform;
        `residual_bn` (mean, invstd, gamma, beta) is the residual's own eval BatchNorm, applied to each residual
        value as the transform reads it."""
        s = self.spec
        xd = x.data if isinstance(x, Tensor) else x
        if xd.dtype != np.float32 or not xd.flags.c_contiguous:
            xd = np.ascontiguousarray(xd, dtype=np.float32)
        if xd.ndim != 4 or xd.shape[1] != s["in_channels"]:
            raise ValueError(f"packed binary conv expects (N, {s['in_channels']}, H, W), got {xd.shape}")
        plan = self._plan(xd.shape)
        if residual is not None:
            residual = shaped_like_output(residual, (xd.shape[0], s["out_channels"], plan.out_h, plan.out_w))
        if self._lab_plan is not None and xd.shape[1] > 1 and self.profiler is None and self.capture is None:
            # LAB and the conv in one call, on several threads in one parallel region (the profiler and the
            # capture need the packed bits between the two, and take the two calls below)
            out = plan.run_lab(self._lab_plan, xd, s["padding"], residual, prelu, self.threads, residual_bn)
            self.last_shapes = (xd.shape, out.shape)
            return out
        timed = self.profiler is not None     # the clock is read only while a profiler listens
        start = time.perf_counter() if timed else 0.0
        packed = self.binarize_and_pack(xd)
        if timed:
            self.profiler("LAB binarize + pack" if s["binarizer"] == "lab" else "binarize + pack",
                          time.perf_counter() - start)
            start = time.perf_counter()
        if self.capture is not None:
            self.capture.append(unpack_channels_last(packed, s["in_channels"], (s["padding"],) * 2))
        out = plan.run(packed, residual, prelu, self.threads, residual_bn)
        if timed:
            self.profiler("binary conv", time.perf_counter() - start)
        self.last_shapes = (xd.shape, out.shape)
        return out

    def extra_repr(self):
        s = self.spec
        return (f"{s['in_channels']}, {s['out_channels']}, k={s['kernel']}, stride={s['stride']}, "
                f"binarizer={s['binarizer']}, folded={'relu+' if s.get('relu') else ''}"
                f"{'bn' if 'mean' in self.arrays else ''}")
