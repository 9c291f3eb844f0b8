"""The streaming loader's decoding (`--input stream`): every random-resized crop of a real photo shape decodes
(no grey stand-in), a file over the decompression-bomb limit is named and stood in for, and a file decodes to the
same upright 8-bit RGB as in the preprocessing cache (EXIF orientation, 16-bit greyscale)."""
import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

from minilab.data import stream
from minilab.data.augment import random_crop_box
from minilab.data import cache
from minilab.data.cache import load_image
from minilab.data.stream import StreamDataset, decode_eval, decode_train


def photo(path, size, seed=0):
    """A smooth random colour field of `size` (w, h), saved as a JPEG."""
    rng = np.random.default_rng(seed)
    w, h = size
    coarse = rng.integers(0, 256, (h // 25 + 2, w // 25 + 2, 3), dtype=np.uint8)
    Image.fromarray(coarse).resize((w, h), Image.BICUBIC).save(path, quality=90)
    return str(path)


@pytest.mark.parametrize("shape", [(500, 375), (281, 500), (333, 500)])
@pytest.mark.parametrize("size", [32, 64])
def test_every_random_resized_crop_decodes(tmp_path, shape, size):
    """JPEG draft decoding rounds each axis up on its own (500×375 at ⅛ is 63×47): a box that reaches the right
    or bottom edge must still fall inside the decoded image, or the crop would fail and become grey."""
    path = photo(tmp_path / "p.JPEG", shape)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for seed in range(300):
            img = decode_train(path, size, np.random.default_rng(seed))
            assert img.shape == (size, size, 3)
        data = StreamDataset([path], [0], ["a"], size)
        for seed in range(50):
            assert data.example(0, np.random.default_rng(seed), "rrc").shape == (size, size, 3)


def test_the_whole_image_crop_decodes(tmp_path, monkeypatch):
    """random_crop_box gives None after ten failed draws: the crop is then the whole image."""
    monkeypatch.setattr(stream, "random_crop_box", lambda w, h, rng: None)
    for shape in [(500, 375), (281, 500)]:
        path = photo(tmp_path / f"{shape[0]}.JPEG", shape)
        with Image.open(path) as img:
            img.draft("RGB", (32, 32))                          # the JPEG decoder scales by ⅛
            whole = np.asarray(img.convert("RGB").resize((32, 32), Image.BILINEAR))
        np.testing.assert_array_equal(decode_train(path, 32, np.random.default_rng(0)), whole)


def test_draft_crop_shows_the_same_region_as_a_full_decode(tmp_path):
    path = photo(tmp_path / "p.JPEG", (500, 375), seed=3)
    for seed in range(20):
        box = random_crop_box(500, 375, np.random.default_rng(seed))
        full = np.asarray(Image.open(path).convert("RGB").resize((48, 48), Image.BILINEAR, box=box), dtype=int)
        drafted = decode_train(path, 48, np.random.default_rng(seed)).astype(int)
        assert np.abs(full - drafted).mean() < 8, seed


def _png_claiming(width, height):
    """A PNG header that claims width × height pixels (the data is 64 bytes)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("side", [40_000, 10_000])   # Pillow refuses the first, only warns about the second
@pytest.mark.parametrize("mode", ["rrc", "none"])
def test_decompression_bomb_is_named_and_stood_in_for(tmp_path, side, mode):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_claiming(side, side))
    data = StreamDataset([str(path)], [0], ["a"], 16)
    with pytest.warns(UserWarning, match=r"bomb\.png: too large"):
        img = data.example(0, np.random.default_rng(0), mode)
    assert img.shape == (16, 16, 3) and (img == 128).all()


def _oriented_jpeg(path):
    """Stored landscape 80×40, left half red; EXIF orientation 6: displayed portrait 40×80, red on top."""
    arr = np.zeros((40, 80, 3), dtype=np.uint8)
    arr[:, :40] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(arr).save(path, exif=exif.tobytes(), quality=95)
    return str(path)


def test_exif_orientation_is_applied_as_in_the_cache(tmp_path):
    path = _oriented_jpeg(tmp_path / "o.jpg")
    np.testing.assert_array_equal(decode_eval(path, 20), load_image(path, 20))
    upright = cache.open_rgb8(path)
    assert upright.size == (40, 80)
    for seed in range(20):
        box = random_crop_box(40, 80, np.random.default_rng(seed))      # drawn on the upright size
        want = np.asarray(upright.resize((16, 16), Image.BILINEAR, box=box))
        got = decode_train(path, 16, np.random.default_rng(seed), draft=False)
        np.testing.assert_array_equal(got, want)
    top = decode_eval(path, 20)
    assert top[2, 10, 0] > 200 and top[17, 10, 0] < 50     # upright: red above, black below


def test_sixteen_bit_greyscale_is_scaled_as_in_the_cache(tmp_path):
    path = str(tmp_path / "g16.png")
    Image.fromarray(np.full((30, 30), 32768, dtype=np.uint16)).save(path)
    np.testing.assert_array_equal(decode_eval(path, 8), load_image(path, 8))
    crop = decode_train(path, 8, np.random.default_rng(0))
    assert abs(int(crop.mean()) - 128) <= 1


def test_stream_input_checks_the_dataset_like_the_cache(tmp_path):
    from minilab.data import DataError, load_datasets
    from minilab.data.imagenet import write_sample_tree

    single = write_sample_tree(str(tmp_path / "one"), classes=("n01440764",), per_class=3, val_per_class=1,
                               size=(40, 30))
    with pytest.raises(DataError, match="has a single class"):
        load_datasets(single, 32, str(tmp_path / "cache"), input="stream")


def test_a_hidden_folder_in_a_flat_val_split_is_not_a_class_folder(tmp_path):
    import os

    from minilab.data.imagenet import scan_imagenet, write_sample_tree

    root = write_sample_tree(str(tmp_path), per_class=1, val_per_class=2, size=(40, 30), val_layout="txt")
    os.makedirs(os.path.join(root, "val", ".ipynb_checkpoints"))
    (tmp_path / "val" / "._ILSVRC2012_val_00000001.JPEG").write_bytes(b"\0\0AppleDouble")
    _, _, val_paths, val_labels, _ = scan_imagenet(root)
    assert len(val_paths) == 4 and sorted(val_labels) == [0, 0, 1, 1]
