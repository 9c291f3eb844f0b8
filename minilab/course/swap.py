"""Run a model with the student's ops in place of minilab's: `with student_ops(ws): model(x)`.

`minilab.core.dispatch.replaced` makes every `apply` of a reference Function run another implementation.  The
student's classes have their own signatures (no `pairing` option for LAB, a NumPy binary conv without autograd),
so each is wrapped in a small adapter with the reference's contract; the adapters count their calls, so a check
can tell that the student's code really ran."""
import contextlib
from collections import Counter

import numpy as np

from . import refs

calls: Counter = Counter()


def _passing_through(student_class, name):
    """The student's Function as it is (its forward takes the reference's inputs and options), counted."""
    class Student:
        @staticmethod
        def forward(ctx, *arrays, **options):
            calls[name] += 1
            return student_class.forward(ctx, *arrays, **options)

        backward = staticmethod(student_class.backward)
    Student.__name__ = f"Student{student_class.__name__}"
    return Student


def _lab(student):
    class StudentLabArgMax:
        @staticmethod
        def forward(ctx, r, beta, pairing="channel"):
            if pairing != "channel":
                raise ValueError("the course's LAB pairs the maps per channel (pairing='channel')")
            calls["lab"] += 1
            return student.LabArgMax.forward(ctx, r, beta)

        backward = staticmethod(student.LabArgMax.backward)
    return StudentLabArgMax


def _binary_conv(student):
    class StudentBinaryConvolution:
        """A binary conv (binary=True: x ±1, w ±α_o) runs the student's XNOR-popcount forward; the backward, and
        every float conv, stay minilab's (the reference forward runs too, to leave its backward what it needs)."""

        @staticmethod
        def forward(ctx, x, w, b=None, stride=(1, 1), padding=(0, 0), groups=1, pad_value=0.0, binary=False):
            out = refs.Convolution.forward(ctx, x, w, b, stride=stride, padding=padding, groups=groups,
                                           pad_value=pad_value, binary=binary)
            square = stride[0] == stride[1] and padding[0] == padding[1]
            if not (binary and b is None and groups == 1 and square):
                return out
            calls["binary_conv"] += 1
            alpha = np.abs(w.reshape(w.shape[0], -1)[:, 0])
            signs = np.where(w < 0, -1.0, 1.0)
            y = student.binary_conv2d(x, signs, stride=stride[0], padding=padding[0], pad_value=int(pad_value))
            return (np.asarray(y) * alpha[None, :, None, None]).astype(out.dtype)

        backward = staticmethod(refs.Convolution.backward)
    return StudentBinaryConvolution


@contextlib.contextmanager
def student_ops(ws):
    """Inside the block minilab runs the student's tasks 1–5 wherever a model calls sign_ste, approx_sign, a binary
    conv, LAB's ArgMax or PReLU.  `ws` has the student's modules as attributes task1 … task5."""
    with contextlib.ExitStack() as stack:
        for reference, adapter in ((refs.SignSTE, _passing_through(ws.task1.SignSTE, "sign")),
                                   (refs.ApproxSign, _passing_through(ws.task2.ApproxSign, "approxsign")),
                                   (refs.Convolution, _binary_conv(ws.task3)), (refs.LabArgMax, _lab(ws.task4)),
                                   (refs.ParametricRectifier, _passing_through(ws.task5.PReLU, "prelu"))):
            stack.enter_context(refs.dispatch.replaced(reference, adapter))
        yield calls
