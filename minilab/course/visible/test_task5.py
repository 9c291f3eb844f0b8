"""Local tests for task 5 (PReLU).  Run: python -m pytest tests/test_task5.py"""
import numpy as np
from hypothesis import given

import minilab
from minilab.testing import arrays, assert_gradcheck, assert_matches_reference, tensor_of

from exercises import task5_prelu


@given(arrays(shape=(2, 3, 4, 4)))
def test_matches_minilab_prelu(x):
    a = tensor_of(np.array([0.25, -0.5, 1.0]))
    assert_matches_reference(task5_prelu.prelu, minilab.F.prelu, tensor_of(x), a)


@given(arrays(shape=(2, 3, 2, 2)))
def test_gradients_against_central_differences(x):
    assert_gradcheck(task5_prelu.prelu, tensor_of(x), tensor_of(np.array([0.25, -0.5, 1.0])))
