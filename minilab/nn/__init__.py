"""Layers (modules) built on minilab.ops."""
from . import init
from .binary import LAB, Binarizer, BinaryConv2d, make_binarizer, set_lab_bits
from .layers import (AvgPool2d, BatchNorm2d, Conv2d, Flatten, GlobalAvgPool, Identity, LearnableBias, Linear,
                     MaxPool2d, PReLU, ReLU, Sequential)
from .module import Module, Parameter, load_npz, save_npz_atomic
