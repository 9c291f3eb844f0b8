"""The local tests written into a student's workspace (tests/test_taskN.py).  `check` runs these copies, not the
workspace's, so editing them cannot change a grade."""
