"""Run a model with the student's ops in place of minilab's: `with student_ops(ws): model(x)`.

`minilab.dispatch.replaced` makes every `apply` of a reference Function run another implementation.  The
student's classes have their own signatures (no `pairing` option for LAB, a NumPy binary conv without autograd),
so each is wrapped in a small adapter with the reference's contract; the adapters count their calls, so a check
can tell that the student's code really ran."""
import contextlib
from collections import Counter

import numpy as np

from . import refs

calls: Counter = Counter()


def _sign_ste(student):
    class StudentSignSTE:
        @staticmethod
        def forward(ctx, x, clip=1.0):
            calls["sign"] += 1
            return student.SignSTE.forward(ctx, x, clip=clip)

        backward = staticmethod(student.SignSTE.backward)
    return StudentSignSTE


def _approx_sign(student):
    class StudentApproxSign:
        @staticmethod
        def forward(ctx, x):
            calls["approxsign"] += 1
            return student.ApproxSign.forward(ctx, x)

        backward = staticmethod(student.ApproxSign.backward)
    return StudentApproxSign


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


def _prelu(student):
    class StudentPReLU:
        @staticmethod
        def forward(ctx, x, a):
            calls["prelu"] += 1
            return student.PReLU.forward(ctx, x, a)

        backward = staticmethod(student.PReLU.backward)
    return StudentPReLU


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
        for reference, adapter in ((refs.SignSTE, _sign_ste(ws.task1)), (refs.ApproxSign, _approx_sign(ws.task2)),
                                   (refs.Convolution, _binary_conv(ws.task3)), (refs.LabArgMax, _lab(ws.task4)),
                                   (refs.ParametricRectifier, _prelu(ws.task5))):
            stack.enter_context(refs.dispatch.replaced(reference, adapter))
        yield calls
