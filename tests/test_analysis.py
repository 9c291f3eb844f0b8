import importlib.util

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minilab import F, config
from minilab.analysis import count_distinct, endsim, layer_dissimilarity, pairwise_ssim, uniqueness_ratio
from minilab.analysis.uniqueness import KERNELS, responses
from minilab.ops.quant import dequantize, pack_int4, quantize_symmetric, unpack_int4
from minilab.testing import arrays, assert_gradcheck, binary_maps, rounding_tolerance, tensor_of


def brute_force_eta(a, pad_value=0):
    """512 float convolutions written as loops, sign, distinct maps by set of tuples."""
    h, w = a.shape
    padded = np.full((h + 2, w + 2), float(pad_value))
    padded[1:-1, 1:-1] = a
    seen = set()
    for k in KERNELS[:, 0]:
        out = np.empty((h, w))
        for i in range(h):
            for j in range(w):
                out[i, j] = (padded[i:i + 3, j:j + 3] * k).sum()
        seen.add(tuple(np.where(out >= 0, 1, -1).ravel()))
    return len(seen) / 512


@pytest.mark.parametrize("name,a", [
    ("constant", np.ones((6, 6))),
    ("checkerboard", np.where((np.indices((6, 7)).sum(0) % 2) == 0, 1.0, -1.0)),
    ("random", np.where(np.random.default_rng(0).random((5, 6)) < 0.5, -1.0, 1.0)),
])
@pytest.mark.parametrize("pad_value", [0, 1])
def test_eta_against_brute_force(name, a, pad_value):
    assert uniqueness_ratio(a, pad_value) == pytest.approx(brute_force_eta(a, pad_value))


def test_eta_orders_flat_below_rich_maps():
    const = uniqueness_ratio(np.ones((8, 8)), pad_value=1)
    rich = uniqueness_ratio(np.where(np.random.default_rng(1).random((8, 8)) < 0.5, -1.0, 1.0), pad_value=1)
    assert const < 0.05 < 0.5 < rich
    # +1 padding, constant map: every pixel's response is the kernel sum, so maps are all-+1 or all-−1
    assert const == pytest.approx(2 / 512)


@given(binary_maps(shape=(1, 1, 5, 5)))
def test_responses_are_the_float_convolutions(a):
    r = responses(a[0, 0], pad_value=0)
    want = F.conv2d(tensor_of(a.astype(np.float64), False), tensor_of(KERNELS.astype(np.float64), False),
                    padding=1).data[0]
    np.testing.assert_array_equal(r, want)


def test_count_distinct():
    maps = np.array([[1, -1], [1, -1], [-1, -1]], dtype=np.float32)
    assert count_distinct(maps) == 2


@given(binary_maps(shape=(1, 4, 12, 12)))
def test_ssim_and_endsim_properties(maps):
    a, b = maps[0, 0].astype(np.float64), maps[0, 1].astype(np.float64)
    s = pairwise_ssim(maps[0].astype(np.float64), 2.0)
    np.testing.assert_allclose(np.diag(s), 1.0)
    np.testing.assert_allclose(s, s.T)
    assert endsim(a, b) == pytest.approx(endsim(b, a))
    assert endsim(a, a) == pytest.approx(2.0) == pytest.approx(endsim(a, -a))   # identical ↔ inverted
    assert np.sqrt(2) - 1e-9 <= endsim(a, b) <= 2 + 1e-9                       # d + a = 2 on ±1 maps


def test_endsim_of_independent_maps_is_sqrt2_and_01_encoding_differs():
    a = np.array([1, 1, -1, -1.0])
    b = np.array([1, -1, 1, -1.0])
    assert endsim(a, b) == pytest.approx(np.sqrt(2))
    maps = np.stack([a, b]).reshape(1, 2, 2, 2)
    _, end_pm1 = layer_dissimilarity(maps, encoding="pm1", window="uniform")
    _, end_01 = layer_dissimilarity(maps, encoding="01", window="uniform")
    assert end_pm1 == pytest.approx(np.sqrt(2)) and end_01 == pytest.approx(np.sqrt(0.5 ** 2 + 1.0 ** 2))


def test_ssim_of_independent_maps_is_near_zero():
    rng = np.random.default_rng(0)
    a, b = (np.where(rng.random((32, 32)) < 0.5, -1.0, 1.0) for _ in range(2))
    s = pairwise_ssim(np.stack([a, b]), 2.0, window="uniform")
    assert abs(s[0, 1]) < 0.1 and s[0, 0] == pytest.approx(1.0)


@given(arrays(shape=(6, 1, 3, 3)), st.sampled_from([8, 4]))
def test_quantisation_round_trip(w, bits):
    q, scale = quantize_symmetric(w.astype(np.float32), bits)
    qmax = 2 ** (bits - 1) - 1
    assert np.abs(q).max() <= qmax
    deq = dequantize(q, scale)
    np.testing.assert_array_equal(quantize_symmetric(deq, bits)[0], q)           # idempotent
    # half a step, plus the float32 rounding of q·scale and of w itself
    assert np.all(np.abs(deq - w) <= scale / 2 + rounding_tolerance(np.maximum(np.abs(deq), np.abs(w)), 2))
    np.testing.assert_array_equal(unpack_int4(pack_int4(np.clip(q, -7, 7)), q.shape), np.clip(q, -7, 7))


@given(arrays(shape=(1, 2, 4, 4)), st.sampled_from([8, 4]), st.data())
def test_fake_quantised_lab_gradcheck(x, bits, data):
    from minilab.ops.quant import fake_quant
    w = data.draw(arrays(shape=(4, 1, 3, 3), low=-1, high=1))
    b = data.draw(arrays(shape=(4,), low=-1, high=1))
    assert_gradcheck(lambda x, w, b: F.lab(x, fake_quant(w, bits), b, np.float64(1.3)), tensor_of(x), tensor_of(w),
                     tensor_of(b), surrogate=True)


@pytest.mark.skipif(not config.available(), reason="η uses the popcount kernels' path")
def test_analyze_cli_writes_a_report(tmp_path):
    from PIL import Image

    from minilab.analyze import main
    from minilab.training.checkpoint import save_checkpoint
    from minilab.models import create_model

    for binarizer in ("lab", "sign"):
        config = dict(arch="labbnn", num_classes=10, image_size=32, width=0.25, binarizer=binarizer)
        save_checkpoint(tmp_path / f"{binarizer}.npz", create_model(**config), None, {"model": config})
    folder = tmp_path / "imgs" / "x"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    out = tmp_path / "report"
    assert main(["--checkpoint", str(tmp_path / "lab.npz"), "--compare", str(tmp_path / "sign.npz"), "--images",
                 str(tmp_path / "imgs"), "--out", str(out), "--layers", "2", "--eta-images", "2",
                 "--ssim-images", "2", "--max-channels", "4"]) == 0
    text = (out / "report.md").read_text()
    assert "Table 1" in text and "Table 2" in text and "η lab" in text and "η sign" in text
    if importlib.util.find_spec("matplotlib") is not None:
        pngs = ["plus_one.png", "eta.png", "ssim.png", *[p.name for p in out.glob("features_*.png")]]
        assert len(pngs) == 5 and all((out / p).exists() and f"]({p})" in text for p in pngs)
        assert all(Image.open(out / p).info["Software"].startswith("Matplotlib") for p in pngs)
    assert main(["--checkpoint", str(tmp_path / "missing.npz"), "--images", str(tmp_path)]) == 2
