"""Data parallelism: the world a run trains in — one process, or the ranks of an MPI job (`world`).  The rest
of minilab calls the world's methods and never asks how many ranks there are."""
