"""The core every other part stands on: the autograd engine (`autograd`), the choice between a NumPy reference
op and its compiled twin (`dispatch`), every run-time setting (`config`), the thread pools (`threads`) and the
OpenBLAS NumPy loaded (`blas`), and the numerical gradient check (`gradcheck`).  Nothing here imports a layer, a model or a kernel."""
