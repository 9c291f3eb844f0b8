"""The packed inference engine: convert a trained model into bit-packed binary convolutions with folded
scales and BatchNorm, save / load it as one file, run and profile it."""
from .convert import PackedModel, convert
from .packed_conv import PackedBinaryConv2d, unpack_channels_last
from .storage import load_packed, save_packed
