"""The compiled twins of the reference ops: the same answers as `minilab.ops`, on the Cython/C kernels.

One module per op family.  Each twin is bound to the reference it must match (`@twin_of(...)`, see
`minilab.core.dispatch`) and says which inputs it accepts; anything else runs on the reference.  The package
root imports this package, which registers every twin; the twins call the kernels through `config.compiled`,
so importing them loads nothing.

    binarize.py      sign STE and the magnitude-aware weight sign            (bit for bit)
    lab.py           LAB's ArgMax for the paper's channel pairing             (bit for bit)
    activation.py    ReLU's and PReLU's forwards                              (bit for bit)
    pool.py          max and average pooling                                  (bit for bit / forward)
    norm.py          BatchNorm, one fused pass per direction                  (float32 tolerance)
    conv.py          float32 convs: chunked im2col + GEMM, Winograd backward, depthwise 3×3, and the
                     XNOR-popcount forward of binary convs (conv_chunked.py, conv_winograd.py, packed.py)
    adam.py          Adam's per-parameter update in one pass                  (bit for bit)"""
from . import activation, adam, binarize, conv, lab, norm, pool  # noqa: F401  (each registers its twins)
