"""Measurements behind `python -m minilab.bench`: the kernels and a training step (`kernels`), the packed
inference engine against the float graph (`inference`, with `profile` and `peak`), and data-parallel scaling
over MPI (`scaling`)."""
