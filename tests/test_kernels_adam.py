"""Adam's kernel against the reference optimizer: the same float32 steps in the same order, bit for bit."""
import numpy as np
import pytest

from minilab.nn import Parameter
from minilab.optim import Adam, AdamW
from kernel_cases import needs_ext, rand, reference

pytestmark = needs_ext


@pytest.mark.parametrize("make", [lambda p: Adam(p, lr=0.01), lambda p: Adam(p, lr=0.01, weight_decay=1e-3),
                                  lambda p: AdamW(p, lr=0.01, weight_decay=1e-2)])
@pytest.mark.parametrize("clip", [None, 0.5])
def test_adam_kernel_is_bit_identical(make, clip):
    """Including the latent-weight clip the kernel applies in the same pass (np.clip in the reference)."""
    def run():
        p = Parameter(rand(0, (7, 5, 3)), clip=clip)
        opt = make([p])
        for step in range(5):
            p.grad = rand(step + 1, p.shape)
            opt.step()
        return p.data, opt.state[0]["m"], opt.state[0]["v"]

    for a, b in zip(run(), reference(run)):
        np.testing.assert_array_equal(a, b)
