"""Local tests for task 4 (LAB).  Run: python -m pytest tests/test_task4.py"""
import numpy as np
from hypothesis import given

import minilab
from minilab.testing import arrays, assert_gradcheck, assert_matches_reference, tensor_of

from exercises import task4_lab


class Checked(task4_lab.LabArgMax):
    """Your LabArgMax, with the Soft-ArgMax s = tanh(β(r1 − r0)/2) as the surrogate gradcheck differentiates."""

    @staticmethod
    def surrogate(ctx, r, beta):
        task4_lab.LabArgMax.forward(ctx, r, beta)
        return np.tanh(beta * (r[:, 1::2] - r[:, 0::2]) / 2)


def test_a_tie_gives_minus_one():
    r = tensor_of(np.zeros((1, 2, 2, 2)))
    np.testing.assert_array_equal(task4_lab.LabArgMax.apply(r, tensor_of(np.array(1.0))).data, -1)


@given(arrays(shape=(2, 4, 3, 3)))
def test_backward_against_the_soft_argmax(r):
    assert_gradcheck(Checked.apply, tensor_of(r), tensor_of(np.array(1.5)), surrogate=True)


@given(arrays(shape=(2, 2, 4, 4)))
def test_matches_minilab_lab(x):
    rng = np.random.default_rng(0)
    inputs = [tensor_of(x), tensor_of(rng.standard_normal((4, 1, 3, 3))), tensor_of(rng.standard_normal(4)),
              tensor_of(np.array(1.0))]
    assert_matches_reference(task4_lab.lab, minilab.F.lab, *inputs)
