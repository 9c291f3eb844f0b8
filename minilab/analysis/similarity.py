"""Dissimilarity between the channels of a layer's binarized features (the paper's Table 2): SSIM and ENDSIM,
averaged over all channel pairs.

SSIM (Wang et al. 2004), from its definition, over local windows (`window="gaussian"`: 11×11, σ = 1.5, as in the
original paper; `"uniform"`: 7×7 box), 'valid' positions only (a window smaller than the map shrinks to the map):
    SSIM(x, y) = mean over windows of  (2 μx μy + C1)(2 σxy + C2) / ((μx² + μy² + C1)(σx² + σy² + C2)),
    C1 = (0.01 L)², C2 = (0.03 L)², L = the data range of the encoding (2 for ±1, 1 for {0, 1}, max − min for float).
SSIM(A, A) = 1; lower = more dissimilar.

ENDSIM(Ai, Aj) = √(d² + a²),  d = mean |Ai − Aj|,  a = mean |Ai + Aj|   (formula as written in the paper).
Encodings (`encoding=`): "pm1" (the ±1 maps), "01" ((A + 1)/2), "float" (the pre-binarization maps).  On ±1 maps
|Ai − Aj| + |Ai + Aj| = 2 at every pixel, so d + a = 2 and ENDSIM ∈ [√2, 2]: √2 for independent maps (d = a = 1),
2 for identical *or* inverted maps — lowest for the most dissimilar pairs.  On {0, 1} maps d + a ∈ [1, 2].  The
paper reports values 0.76–1.7, which ±1 maps cannot give and which its text does not explain; minilab reports each
encoding and leaves the reading to the user."""
import numpy as np

ENCODINGS = ("pm1", "01", "float")


def encode(binary, float_maps=None, encoding="pm1"):
    if encoding == "pm1":
        return binary.astype(np.float64)
    if encoding == "01":
        return (binary.astype(np.float64) + 1) / 2
    if encoding == "float":
        if float_maps is None:
            raise ValueError("encoding='float' needs the pre-binarization maps")
        return float_maps.astype(np.float64)
    raise ValueError(f"unknown encoding {encoding!r}; choose from {ENCODINGS}")


def endsim(a, b):
    d = np.abs(a - b).mean()
    s = np.abs(a + b).mean()
    return float(np.sqrt(d * d + s * s))


def _window(kind, size):
    if kind == "uniform":
        k = min(7, size)
        w = np.ones(k)
    elif kind == "gaussian":
        k = min(11, size)
        t = np.arange(k) - (k - 1) / 2
        w = np.exp(-t * t / (2 * 1.5 ** 2))
    else:
        raise ValueError(f"unknown SSIM window {kind!r}; choose 'gaussian' or 'uniform'")
    return w / w.sum()


def _filter(maps, wy, wx):
    """Separable 'valid' filtering of (..., H, W) maps."""
    from numpy.lib.stride_tricks import sliding_window_view
    out = (sliding_window_view(maps, len(wy), axis=-2) * wy).sum(-1)
    return (sliding_window_view(out, len(wx), axis=-1) * wx).sum(-1)


def pairwise_ssim(maps, data_range, window="gaussian"):
    """(C, C) SSIM between every pair of channels of one image's maps (C, H, W)."""
    c, h, w = maps.shape
    wy, wx = _window(window, h), _window(window, w)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu = _filter(maps, wy, wx)                                     # (C, h', w')
    sq = _filter(maps * maps, wy, wx) - mu * mu
    out = np.ones((c, c))
    for i in range(c):
        cross = _filter(maps[i] * maps[i + 1:], wy, wx) - mu[i] * mu[i + 1:]
        num = (2 * mu[i] * mu[i + 1:] + c1) * (2 * cross + c2)
        den = (mu[i] ** 2 + mu[i + 1:] ** 2 + c1) * (sq[i] + sq[i + 1:] + c2)
        vals = (num / den).mean(axis=(1, 2))
        out[i, i + 1:] = vals
        out[i + 1:, i] = vals
    return out


def data_range(encoding, maps):
    return {"pm1": 2.0, "01": 1.0}.get(encoding, float(maps.max() - maps.min()) or 1.0)


def layer_dissimilarity(binary, float_maps=None, encoding="pm1", window="gaussian", max_channels=None):
    """Mean SSIM and mean ENDSIM over all channel pairs (i < j) and images of one layer (N, C, H, W)."""
    maps_all = encode(binary, float_maps, encoding)
    if max_channels is not None:
        maps_all = maps_all[:, :max_channels]
    ssims, endsims = [], []
    for maps in maps_all:
        c = maps.shape[0]
        if c < 2:
            continue
        s = pairwise_ssim(maps, data_range(encoding, maps), window)
        iu = np.triu_indices(c, 1)
        ssims.append(s[iu].mean())
        flat = maps.reshape(c, -1)
        d = np.abs(flat[:, None] - flat[None]).mean(-1)
        a = np.abs(flat[:, None] + flat[None]).mean(-1)
        endsims.append(np.sqrt(d * d + a * a)[iu].mean())
    return float(np.mean(ssims)), float(np.mean(endsims))


def plus_one_fraction(binary):
    """Fig. 5: fraction of +1 in a layer's maps (N, C, H, W): the layer's mean and one value per channel."""
    per_channel = (binary > 0).mean(axis=(0, 2, 3))
    return float((binary > 0).mean()), per_channel
