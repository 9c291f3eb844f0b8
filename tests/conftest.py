import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("minilab", max_examples=25, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile("minilab")

IMAGENETTE = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "imagenette2-224")


@pytest.fixture
def imagenette_root():
    root = os.path.abspath(IMAGENETTE)
    if not os.path.isdir(os.path.join(root, "val")):
        pytest.skip("the real Imagenette split (../shared/data/imagenette2-224) is not present")
    return root
