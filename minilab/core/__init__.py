"""The core every other part stands on: the autograd engine (`autograd`), the choice between a NumPy reference
op and its compiled twin (`dispatch`), every run-time setting (`config`), the thread pools (`threads`), the
OpenBLAS NumPy loaded (`blas`), and the numerical gradient check (`gradcheck`).  Nothing here imports an op, a
layer or a model; the compiled kernels load on first use (`config.kernels()`)."""
