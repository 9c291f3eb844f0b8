"""The hidden checks, one module per task.  Each module defines CHECKS: a list of `Check`s, run in order; the
first one that fails stops its task, and its hint is what the student reads."""
