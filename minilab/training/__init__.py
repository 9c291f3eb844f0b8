"""Training a model: the loop (`loop`), its checkpoints (`checkpoint`), the run directory and its resume rules
(`run_dir`), the metrics file (`metrics`), validation (`evaluation`) and the allocator setting for long runs
(`memory`).  The command `python -m minilab.train` is a parser over this package."""
