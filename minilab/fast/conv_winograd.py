"""The backward pass of a 3×3, stride-1 conv with Winograd's minimal filtering F(2×2, 3×3) — on the compiled
kernels, for training; `ops/conv.py`'s im2col + GEMM is the reference it is tested against.

Why: the two backward GEMMs of the 3×3 convs are most of a BNN training step (the binary forward runs on the
XNOR-popcount kernel), and Winograd computes a 2×2 block of outputs from a 4×4 input tile with 16 products
instead of 36: 2.25× fewer multiply-adds, in 16 ordinary GEMMs.

The forward algorithm (Lavin & Gray 2016) for one output tile y (2×2), input tile d (4×4) and filter w (3×3):

    y = Aᵀ [ (G w Gᵀ) ⊙ (Bᵀ d B) ] A

with the matrices of `_ext/winograd.h`.  It is bilinear in (w, d), so its gradients are the same products run
backwards.  With U = G w Gᵀ, V = Bᵀ d B and Z = A ∂y Aᵀ (the transformed output gradient):

    ∂d = B (U ⊙ Z) Bᵀ          ∂w = Gᵀ (Z ⊙ V) G

Summed over channels and tiles, each of the 16 positions ξ of a transformed tile is one GEMM:

    ∂W:  M_ξ (O × C)     = Σ_tiles  Z_ξ (O × tiles) · V_ξᵀ (tiles × C),      then ∂w[o, c] = Gᵀ M[:, o, c] G
    ∂x:  N_ξ (C × tiles) = U_ξᵀ (C × O) · Z_ξ (O × tiles),                    then ∂x += B N[:, c, t] Bᵀ per tile

Tiles overlap by two cells in x, so ∂x adds each tile's 4×4 block into the map (the padding cells are dropped).
An odd-sized output gets a last tile half outside it, with zero gradient there.  The results equal the direct
backward up to float32 rounding (the transforms add and halve a few terms, errors of a few ulp of the inputs'
magnitude).

Images are taken a chunk at a time (tiles of a few MB), so V, Z and N stay in cache between the transforms and
the GEMMs, as in `conv_chunked.py`."""
import numpy as np

from ..core import config
from ..core.config import compiled as ext
from .conv_chunked import image_chunks, matmul

# V, Z and N of one chunk of images together.  Big enough for good GEMMs; small enough that what the transforms
# write is still in the cache when the GEMMs read it (a budget of tens of MB sent it to memory in between).
CHUNK_BYTES = 4 << 20


def applicable(x, w, stride, padding):
    """3×3 filters, stride 1, the same padding on both axes — and enough tiles.  The filter transforms cost
    ~16·O·C whatever the batch, the GEMMs save ~20·O·C per tile: with fewer tiles than half the channels (Bi-Real's
    last stage at 64 px: 64 tiles, 512 channels) the direct backward is faster."""
    if w.shape[2:] != (3, 3) or tuple(stride) != (1, 1) or padding[0] != padding[1]:
        return False
    oh, ow = (size + 2 * padding[0] - 2 for size in x.shape[2:])
    tiles = x.shape[0] * ((oh + 1) // 2) * ((ow + 1) // 2)
    return 2 * tiles >= max(w.shape[:2])


def conv3x3_backward(x, w, g, padding, pad_value, need_input_grad):
    """(∂L/∂x or None, ∂L/∂w) of y = conv(x padded by `padding` cells of pad_value, w), 3×3 stride 1, for
    ∂L/∂y = g.  x, w, g: C-contiguous float32."""
    threads = config.threads
    p = padding[0]
    if padding[1] != p:
        raise ValueError(f"conv3x3_backward: padding must be the same on both axes, not {padding}")
    n, c = x.shape[:2]
    o = w.shape[0]
    th, tw = ext.winograd_tile_count(*g.shape[2:])
    per_image = 16 * th * tw * (2 * c + o) * 4 if need_input_grad else 16 * th * tw * (c + o) * 4
    m = ext.winograd_slabs(o, c)
    u = ext.winograd_filters(w, threads=threads) if need_input_grad else None
    dx = np.zeros(x.shape, dtype=np.float32) if need_input_grad else None
    for start, stop in image_chunks(n, per_image, CHUNK_BYTES):
        v = ext.winograd_input_tiles(x[start:stop], p, pad_value, threads=threads)       # (16, C, tiles)
        z = ext.winograd_grad_tiles(g[start:stop], threads=threads)                       # (16, O, tiles)
        matmul(z, v.transpose(0, 2, 1), m, accumulate=start > 0)                          # (16, O, C)
        if need_input_grad:
            nt = matmul(u.transpose(0, 2, 1), z, ext.winograd_slabs(*v.shape[1:]))           # (16, C, tiles)
            ext.winograd_input_grads(nt, dx[start:stop], p, threads=threads)
    return dx, ext.winograd_filter_grads(m, threads=threads)
