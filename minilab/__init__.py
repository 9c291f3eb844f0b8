"""minilab — binary neural networks with the Learnable Activation Binarizer, in NumPy (+ Cython kernels)."""
from .core import config, threads
from . import ops as F
from .core.autograd import Function, Tensor, no_grad, surrogate_mode, tensor
from .core.gradcheck import gradcheck
from . import fast  # noqa: F401,E402  (registers the compiled twins with the dispatcher; loads no kernel)

from .core.info import info  # noqa: E402  (prints the CPU, the kernels chosen for it, threads, wait policy, BLAS)

__all__ = ["F", "Function", "Tensor", "config", "gradcheck", "info", "no_grad", "surrogate_mode", "tensor",
           "threads"]
__version__ = "0.1.0"
