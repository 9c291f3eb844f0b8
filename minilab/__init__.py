"""minilab — binary neural networks with the Learnable Activation Binarizer, in NumPy (+ Cython kernels)."""
from .core import config
from . import ops as F
from .core.autograd import Function, Tensor, no_grad, surrogate_mode, tensor
from .core.gradcheck import gradcheck

__all__ = ["F", "Function", "Tensor", "config", "gradcheck", "no_grad", "surrogate_mode", "tensor"]
__version__ = "0.1.0"
