"""minilab — binary neural networks with the Learnable Activation Binarizer, in NumPy (+ Cython kernels)."""
from .core import config, threads
from . import ops as F
from .core.autograd import Function, Tensor, no_grad, surrogate_mode, tensor
from .core.gradcheck import gradcheck
from . import fast  # noqa: F401,E402  (registers the compiled twins with the dispatcher; loads no kernel)



def info():
    """Print the CPU, the compiled kernel variant chosen for it, the usable cores, the default thread count,
    the OpenMP wait policy and the BLAS (`minilab.core.machine.info`); returns the same as a dict."""
    from .core.machine import info as machine_info
    return machine_info()


__all__ = ["F", "Function", "Tensor", "config", "gradcheck", "info", "no_grad", "surrogate_mode", "tensor",
           "threads"]
__version__ = "0.1.0"
