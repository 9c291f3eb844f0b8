import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("minilab", max_examples=25, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
# CI: the same examples, and a failure prints the blob that replays it (@reproduce_failure) — a red run on a new
# NumPy or CPU can then be rerun exactly.  Neither profile has a per-example deadline: a shared machine's pauses
# are not failures.
settings.register_profile("ci", parent=settings.get_profile("minilab"), print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "minilab")

IMAGENETTE = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "imagenette2-224")


@pytest.fixture
def imagenette_root():
    root = os.path.abspath(IMAGENETTE)
    if not os.path.isdir(os.path.join(root, "val")):
        pytest.skip("the real Imagenette split (../shared/data/imagenette2-224) is not present")
    return root


@pytest.fixture(autouse=True)
def _latency_set_up_stays_in_its_test():
    """Commands that run one image at a time (predict, bench model) switch the process to static loop splits
    (`config.for_latency`); tests call them in this process, so each test gets back the set-up it started with."""
    from minilab.core import config

    latency = config.latency
    yield
    config.latency = latency
    if config._ext is not None:
        config._ext.split_loops_statically(config.static_loops())
