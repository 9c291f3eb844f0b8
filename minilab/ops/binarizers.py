"""Binarizers by name, and the local-threshold binarizers of the paper's Table 7 (Niblack, Sauvola).

A binarizer maps a float map to ±1.  Parameter-free ones are plain functions of x; LAB has parameters and lives
in `minilab.nn.LAB` (functional form: `minilab.ops.lab.lab`).

Niblack and Sauvola threshold every pixel against statistics of its 3×3 neighbourhood, as the released code does:
    m = AvgPool3×3(x)                       (stride 1, 'same', padding excluded from the mean)
    s = √(AvgPool3×3((x − m)²) + 1e-9)      (each neighbour centred on its *own* local mean)
    Niblack:  t = m + k·s                               (k = −0.2)
    Sauvola:  t = m·(1 + k·(s/(R + 1e-9) − 1)),  R = max s over the whole batch   (k = 0.5)
    forward:  q(x) = sign(x − t);  pseudo-gradient: STE on x − t (1 where |x − t| ≤ 1), and the gradient also
              flows through m, s and R (no stop-gradient), as in the released code.
"""
from functools import partial

from .arith import add, amax, div, mul, sqrt, sub
from .binary import approx_sign, sign_ste
from .pool import avg_pool2d


def local_stats(x):
    m = avg_pool2d(x, 3, stride=1, padding=1)
    d = sub(x, m)
    s = sqrt(add(avg_pool2d(mul(d, d), 3, stride=1, padding=1), 1e-9))
    return m, s


def niblack(x, k=-0.2):
    m, s = local_stats(x)
    return sign_ste(sub(x, add(m, mul(s, k))))


def sauvola(x, k=0.5):
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
