"""Weight initialisers as Keras (and so Larq) define them, from one seedable generator.

Keras' "normal" variants draw from a normal truncated at ±2σ, with σ divided by 0.8796 (the std of a unit normal
truncated at ±2) so that the *result* has the intended variance:
    glorot_normal:  σ = √(2 / (fan_in + fan_out))        glorot_uniform: U(±√(6 / (fan_in + fan_out)))
    he_normal:      σ = √(2 / fan_in)
For a conv kernel (C_out, C_in/groups, kh, kw): fan_in = C_in/groups·kh·kw, fan_out = C_out·kh·kw; for LAB's depthwise
kernel Keras sees shape [3, 3, C, 2], so fan_in = 9C and fan_out = 18 (the released LAB code initialises it
with glorot_uniform on that shape).
"""
import numpy as np

_rng = np.random.default_rng(0)
_TRUNCATED_STD = 0.87962566103423978


def seed(value: int):
    """Reseed the generator every initialiser draws from (minilab.nn.init.seed(0) makes models reproducible)."""
    global _rng
    _rng = np.random.default_rng(value)


def rng() -> np.random.Generator:
    return _rng


def truncated_normal(shape, std):
    out = _rng.standard_normal(shape)
    bad = np.abs(out) > 2
    while bad.any():
        out[bad] = _rng.standard_normal(int(bad.sum()))
        bad = np.abs(out) > 2
    return (out * std / _TRUNCATED_STD).astype(np.float32)


def glorot_normal(shape, fan_in, fan_out):
    return truncated_normal(shape, np.sqrt(2.0 / (fan_in + fan_out)))


def glorot_uniform(shape, fan_in, fan_out):
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return _rng.uniform(-limit, limit, shape).astype(np.float32)


def he_normal(shape, fan_in, fan_out=None):
    return truncated_normal(shape, np.sqrt(2.0 / fan_in))


INITIALIZERS = {"glorot_normal": glorot_normal, "glorot_uniform": glorot_uniform, "he_normal": he_normal}


def conv_fans(shape, groups=1):
    c_out, c_in_per_group, kh, kw = shape
    return c_in_per_group * kh * kw, c_out * kh * kw


def initialize(name, shape, fan_in, fan_out):
    if name not in INITIALIZERS:
        raise ValueError(f"unknown initializer {name!r}; choose from {sorted(INITIALIZERS)}")
    return INITIALIZERS[name](shape, fan_in, fan_out)
