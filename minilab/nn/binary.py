"""Binary layers: the LAB binarizer module, parameter-free binarizers as modules, and BinaryConv2d."""
import numpy as np

from .. import ops as F
from ..ops.binarizers import ALL_BINARIZERS, get_binarizer
from ..ops.quant import SUPPORTED_BITS, fake_quant
from . import init
from .module import Module, Parameter


class LAB(Module):
    """Learnable Activation Binarizer (see minilab.ops.lab for the maths).

    Parameters: weight (2C, 1, 3, 3) glorot_uniform with Keras' fans (9C, 18), bias (2C,) zeros, β = 1.0:
    20·C + 1 in all.  `bits` = 8 or 4 trains the depthwise kernel with fake quantisation (minilab.ops.quant)."""

    def __init__(self, channels, pairing="channel", beta=1.0, bits=32):
        super().__init__()
        self.pairing, self.bits = pairing, bits
        self.weight = Parameter(init.glorot_uniform((2 * channels, 1, 3, 3), 9 * channels, 18))
        self.bias = Parameter(np.zeros(2 * channels))
        self.beta = Parameter(np.float32(beta))

    def forward(self, x):
        return F.lab(x, fake_quant(self.weight, self.bits), self.bias, self.beta, self.pairing)

    def extra_repr(self):
        return f"{self.bias.shape[0] // 2}, pairing={self.pairing!r}, bits={self.bits}"


def set_lab_bits(model, bits):
    """Store (and train) every LAB depthwise kernel of `model` in `bits` = 32, 8 or 4."""
    if bits not in SUPPORTED_BITS:
        raise ValueError(f"LAB kernels can be stored in {SUPPORTED_BITS} bits, got {bits}")
    for module in model.modules():
        if isinstance(module, LAB):
            module.bits = bits
    return model


class Binarizer(Module):
    """A parameter-free binarizer (sign, approxsign, niblack, sauvola) as a module."""

    def __init__(self, name="sign", clip=1.0, k=None):
        super().__init__()
        self.name, self.clip, self.k = name, clip, k
        self.fn = get_binarizer(name, k)

    def forward(self, x):
        if self.name == "sign":
            return F.sign_ste(x, self.clip)
        return self.fn(x)

    def extra_repr(self):
        return self.name


def make_binarizer(name, channels, clip=1.0, k=None, pairing="channel"):
    """`name=None` means the input is already ±1 (ReActNet binarizes once in RSign for two parallel convs)."""
    if name is None:
        from .layers import Identity
        return Identity()
    if name == "lab":
        return LAB(channels, pairing)
    if name not in ALL_BINARIZERS:
        raise ValueError(f"unknown binarizer {name!r}; choose from {', '.join(ALL_BINARIZERS)}")
    return Binarizer(name, clip, k)


class BinaryConv2d(Module):
    """Larq's QuantConv2D: binarize the input (`binarizer`), pad it with `pad_value` (0 or +1), convolve with the
    quantized latent weights (`weight_quantizer`), no bias.  The latent weights are clipped to [−weight_clip,
    weight_clip] after every optimizer step (Parameter.clip)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=None, binarizer="sign",
                 pad_value=0, weight_quantizer="magnitude_aware_sign", weight_clip=1.0, input_clip=1.0,
                 binarizer_k=None, lab_pairing="channel", initializer="glorot_normal"):
        super().__init__()
        if pad_value not in (0, 1):
            raise ValueError(f"BinaryConv2d: pad_value must be 0 or 1, got {pad_value}")
        self.stride, self.pad_value, self.weight_quantizer = stride, pad_value, weight_quantizer
        self.padding = kernel_size // 2 if padding is None else padding
        shape = (out_channels, in_channels, kernel_size, kernel_size)
        self.weight = Parameter(init.initialize(initializer, shape, *init.conv_fans(shape)), clip=weight_clip,
                                binary=True)
        self.binarizer = make_binarizer(binarizer, in_channels, input_clip, binarizer_k, lab_pairing)

    @property
    def binarizer_name(self):
        if isinstance(self.binarizer, LAB):
            return "lab"
        return getattr(self.binarizer, "name", None)

    def forward(self, x):
        if x.shape[1] != self.weight.shape[1]:
            raise ValueError(f"BinaryConv2d expects {self.weight.shape[1]} input channels, got {x.shape[1]}")
        return F.binary_conv2d(x, self.weight, self.stride, self.padding, self.pad_value,
                               binarizer=self.binarizer, weight_quantizer=self.weight_quantizer)

    def extra_repr(self):
        o, i, k, _ = self.weight.shape
        return f"{i}, {o}, k={k}, stride={self.stride}, pad_value={self.pad_value}"
