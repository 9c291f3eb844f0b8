"""Local tests for task 3 (binary conv by XNOR-popcount).  Run: python -m pytest tests/test_task3.py"""
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import minilab
from minilab.testing import binary_maps, conv_configs

from exercises import task3_binary_conv as task3


@given(binary_maps(shape=(3, 70)), binary_maps(shape=(2, 70)))
def test_xnor_popcount_is_the_dot_product(a, b):
    got = task3.xnor_popcount(task3.pack_rows(a), task3.pack_rows(b), a.shape[1])
    np.testing.assert_array_equal(got, a @ b.T)


@given(conv_configs(groups=False), st.sampled_from([0, 1]), st.data())
def test_binary_conv_equals_the_float_conv(cfg, pad_value, data):
    x = data.draw(binary_maps(shape=(cfg["n"], cfg["c_in"], cfg["h"], cfg["w"])))
    w = data.draw(binary_maps(shape=(cfg["c_out"], cfg["c_in"], cfg["kernel"], cfg["kernel"])))
    want = minilab.F.conv2d(minilab.Tensor(x), minilab.Tensor(w), stride=cfg["stride"], padding=cfg["padding"],
                            pad_value=float(pad_value)).data
    got = task3.binary_conv2d(x, w, cfg["stride"], cfg["padding"], pad_value)
    np.testing.assert_array_equal(got, want)
