"""minilab — binary neural networks with the Learnable Activation Binarizer, in NumPy (+ Cython kernels)."""
from . import config
from . import ops as F
from .autograd import Function, Tensor, no_grad, surrogate_mode, tensor
from .gradcheck import gradcheck



def info():
    """Print the CPU, the compiled kernel variant chosen for it, the usable cores, the default thread count,
    the OpenMP wait policy and the BLAS (`minilab.machine.info`); returns the same as a dict."""
    from .machine import info as machine_info
    return machine_info()


__all__ = ["F", "Function", "Tensor", "config", "gradcheck", "info", "no_grad", "surrogate_mode", "tensor"]
__version__ = "0.1.0"
