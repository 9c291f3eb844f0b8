"""Activation binarizers: the maps from a float feature map to ±1, each with the pseudo-gradient that trains it.

Every binarizer is documented as Larq documents its quantizers: the forward, and the pseudo-gradient its backward
uses in place of sign's zero derivative.  `surrogate` is the smooth function whose *true* derivative equals that
pseudo-gradient; `gradcheck(..., surrogate=True)` differentiates it numerically to verify the backward.
Convention: sign(0) = +1 (Larq).

Parameter-free binarizers are plain functions of x (`get_binarizer(name)`).  LAB has parameters: it lives in
`minilab.nn.LAB`, with the functional form `minilab.ops.lab.lab`.

Niblack and Sauvola (the paper's local-threshold baselines) threshold every pixel against statistics of its 3×3
neighbourhood::

    m = AvgPool3×3(x)                       (stride 1, 'same', padding excluded from the mean)
    s = √(AvgPool3×3((x − m)²) + 1e-9)      (each neighbour centred on its *own* local mean)
    Niblack:  t = m + k·s                               (k = −0.2)
    Sauvola:  t = m·(1 + k·(s/(R + 1e-9) − 1)),  R = max s over the whole batch   (k = 0.5)
    forward:  q(x) = sign(x − t);  pseudo-gradient: STE on x − t (1 where |x − t| ≤ 1), and the gradient also
              flows through m, s and R (no stop-gradient), as in the authors' implementation.
"""
from functools import partial

import numpy as np

from ..core.autograd import Function
from .arith import add, amax, div, mul, sqrt, sub
from .pool import avg_pool2d


def sign(x: np.ndarray) -> np.ndarray:
    """±1 with sign(0) = +1, in x's dtype (scalars of that dtype: no int64 intermediate)."""
    return np.where(x >= 0, x.dtype.type(1), x.dtype.type(-1))


class SignSTE(Function):
    r"""Straight-through sign (Larq `ste_sign`)::

        forward:          q(x) = sign(x)
        pseudo-gradient:  ∂q/∂x = 1 if |x| ≤ clip else 0
        surrogate:        clip(x, −clip, clip)

    .. math::

       q(x) = \operatorname{sign}(x) = \begin{cases} +1 & x \ge 0 \\ -1 & x < 0 \end{cases}

       \frac{\partial q}{\partial x} \approx \mathbb{1}\left[\,|x| \le c\,\right],
       \qquad \text{surrogate } \tilde q(x) = \operatorname{clip}(x, -c, c), \quad c = \text{clip}
    """

    @staticmethod
    def forward(ctx, x, clip=1.0):
        ctx.save(np.abs(x) <= clip)
        return sign(x)

    @staticmethod
    def surrogate(ctx, x, clip=1.0):
        ctx.save(np.abs(x) <= clip)
        return np.clip(x, -clip, clip)

    @staticmethod
    def backward(ctx, g):
        (inside,) = ctx.saved
        return g * inside


class ApproxSign(Function):
    r"""Bi-Real Net's ApproxSign (Larq `approx_sign`)::

        forward:          q(x) = sign(x)
        pseudo-gradient:  ∂q/∂x = 2 − 2|x| if |x| ≤ 1 else 0
        surrogate:        2x − x|x| on [−1, 1], sign(x) outside (a piecewise quadratic)

    .. math::

       q(x) = \operatorname{sign}(x)

       \frac{\partial q}{\partial x} \approx \begin{cases} 2 - 2|x| & |x| \le 1 \\ 0 & \text{otherwise} \end{cases},
       \qquad \text{surrogate } \tilde q(x) = \begin{cases} 2x - x|x| & |x| \le 1 \\ \operatorname{sign}(x) & \text{otherwise} \end{cases}
    """

    @staticmethod
    def forward(ctx, x):
        ctx.save(x)
        return sign(x)

    @staticmethod
    def surrogate(ctx, x):
        ctx.save(x)
        return np.where(np.abs(x) <= 1, 2 * x - x * np.abs(x), np.sign(x)).astype(x.dtype)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved
        ax = np.abs(x)
        return g * np.where(ax <= 1, 2 - 2 * ax, 0).astype(g.dtype)


def sign_ste(x, clip=1.0):
    return SignSTE.apply(x, clip=clip)


def approx_sign(x):
    return ApproxSign.apply(x)


def local_stats(x):
    m = avg_pool2d(x, 3, stride=1, padding=1)
    d = sub(x, m)
    s = sqrt(add(avg_pool2d(mul(d, d), 3, stride=1, padding=1), 1e-9))
    return m, s


def niblack(x, k=-0.2):
    r"""Niblack's local threshold (k = −0.2): q(x) = sign(x − t), t = m + k·s with m, s the 3×3 local mean and std; STE
    backward, flowing through m and s.

    .. math::

       t = m + k\, s, \qquad q(x) = \operatorname{sign}(x - t), \qquad k = -0.2

       \frac{\partial q}{\partial (x - t)} \approx \mathbb{1}\left[\,|x - t| \le 1\,\right] \quad \text{(through } m \text{ and } s \text{ as well)}
    """
    m, s = local_stats(x)
    return sign_ste(sub(x, add(m, mul(s, k))))


def sauvola(x, k=0.5):
    r"""Sauvola's local threshold (k = 0.5): q(x) = sign(x − t), t = m·(1 + k·(s/R − 1)), R = max s; STE backward,
    flowing through m, s and R.

    .. math::

       t = m \left(1 + k \left(\frac{s}{R} - 1\right)\right), \qquad R = \max s,
       \qquad q(x) = \operatorname{sign}(x - t), \qquad k = 0.5

       \frac{\partial q}{\partial (x - t)} \approx \mathbb{1}\left[\,|x - t| \le 1\,\right] \quad \text{(through } m, s \text{ and } R \text{ as well)}
    """
    m, s = local_stats(x)
    r = amax(s)
    t = mul(m, add(mul(sub(div(s, add(r, 1e-9)), 1.0), k), 1.0))
    return sign_ste(sub(x, t))


PARAMETER_FREE = {"sign": sign_ste, "approxsign": approx_sign, "niblack": niblack, "sauvola": sauvola}
ALL_BINARIZERS = tuple(PARAMETER_FREE) + ("lab",)


def get_binarizer(name, k=None):
    """The binarizer function for `name`; `k` overrides Niblack's / Sauvola's constant."""
    if name == "lab":
        raise ValueError("the 'lab' binarizer has parameters: use minilab.nn.LAB(channels) (or ops.lab.lab)")
    if name not in PARAMETER_FREE:
        raise ValueError(f"unknown binarizer {name!r}; choose from {', '.join(ALL_BINARIZERS)}")
    fn = PARAMETER_FREE[name]
    if k is not None and name in ("niblack", "sauvola"):
        fn = partial(fn, k=k)
    return fn
