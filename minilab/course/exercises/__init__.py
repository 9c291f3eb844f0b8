"""Exercises of the minilab course on binary neural networks: one module per graded task, each building on the
ones before.  Write the bodies marked `raise NotImplementedError("task N: …")`; the docstrings state the maths.

Check your work with `python -m minilab.course check .` (all tasks) or `--task N` (one), or run the local tests
with `python -m pytest tests`."""
