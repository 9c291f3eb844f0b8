"""Local test for task 6 (the Bi-Real block, trained with your ops).  Run: python -m pytest tests/test_task6.py"""
import numpy as np

import minilab
import minilab.nn
from minilab.course.swap import student_ops

from exercises import task1_sign, task2_approxsign, task3_binary_conv, task4_lab, task5_prelu, task6_bireal


class YourOps:
    task1, task2, task3, task4, task5 = task1_sign, task2_approxsign, task3_binary_conv, task4_lab, task5_prelu


def test_the_loss_goes_down_with_your_ops():
    rng = np.random.default_rng(0)
    labels = np.arange(16) % 2
    images = rng.standard_normal((16, 4, 6, 6)) * 0.5 + np.where(labels, 1, -1)[:, None, None, None] * \
        rng.standard_normal((4, 6, 6))
    minilab.nn.init.seed(0)
    model = task6_bireal.TinyNet(4, 2)
    with student_ops(YourOps):
        losses = task6_bireal.train(model, minilab.Tensor(images.astype(np.float32)), labels, steps=15, lr=0.02)
    assert losses[-1] < losses[0]
