"""Bad data and a hostile environment for the preprocessing cache: stale caches, odd images, hidden and
non-regular files, decompression bombs, full disks, concurrent builds, datasets training cannot use."""
import json
import os
import struct
import subprocess
import sys
import textwrap
import zlib

import numpy as np
import pytest
from PIL import Image

from minilab.data import DataError, build_cache, load_datasets, open_cache
from minilab.data.cache import load_image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def solid(colour, size=(20, 24)):
    return Image.new("RGB", size, colour)


def write_split(root, split="train", per_class=4, classes=("a", "b")):
    for c, colour in zip(classes, [(200, 0, 0), (0, 0, 200), (0, 200, 0)]):
        os.makedirs(root / split / c, exist_ok=True)
        for i in range(per_class):
            solid(colour).save(root / split / c / f"{i}.png")
    return root


def build(root, cache, split="train", **kw):
    return build_cache(str(root), split, 8, str(cache), progress=False, workers=1, **kw)


# ---- item 4: the cache proves it is current ---------------------------------------------------------------------
def test_replaced_image_with_the_same_count_rebuilds_the_cache(tmp_path):
    root = write_split(tmp_path / "d")
    images, _, _ = open_cache(build(root, tmp_path / "c"))
    assert tuple(images[0, 0, 0]) == (200, 0, 0)
    solid((255, 255, 255)).save(root / "train" / "a" / "0.png")   # same name, same count, new pixels
    os.utime(root / "train" / "a" / "0.png", ns=(1, 1))           # and a different mtime, as a copy would have
    images, _, _ = open_cache(build(root, tmp_path / "c"))
    assert tuple(images[0, 0, 0]) == (255, 255, 255)


def test_moved_image_changes_its_label(tmp_path):
    root = write_split(tmp_path / "d")
    _, labels, _ = open_cache(build(root, tmp_path / "c"))
    assert labels.tolist() == [0] * 4 + [1] * 4
    os.rename(root / "train" / "a" / "3.png", root / "train" / "b" / "9.png")
    os.rename(root / "train" / "b" / "0.png", root / "train" / "a" / "8.png")   # the count stays 8
    _, labels, _ = open_cache(build(root, tmp_path / "c"))
    assert labels.tolist() == [0] * 4 + [1] * 4
    images, _, _ = open_cache(build(root, tmp_path / "c"))
    assert tuple(images[3, 0, 0]) == (0, 0, 200)   # a/8.png (sorted last in a) came from b


def test_damaged_meta_json_means_a_rebuild(tmp_path):
    root = write_split(tmp_path / "d")
    out = build(root, tmp_path / "c")
    with open(os.path.join(out, "meta.json"), "w") as f:
        f.write("{not json")
    out = build(root, tmp_path / "c")
    assert json.load(open(os.path.join(out, "meta.json")))["files"] == 8


# ---- item 9: images of every kind, hidden and non-regular files, bombs, named skips -----------------------------
def test_sixteen_bit_greyscale_is_scaled_not_clipped(tmp_path):
    path = tmp_path / "g16.png"
    Image.fromarray(np.full((12, 12), 32768, dtype=np.uint16)).save(path)
    img = load_image(str(path), 8)
    assert img is not None and img.dtype == np.uint8 and img.shape == (8, 8, 3)
    assert abs(int(img[0, 0, 0]) - 128) <= 1


def test_exif_orientation_is_applied(tmp_path):
    arr = np.zeros((20, 40, 3), dtype=np.uint8)
    arr[:, :20] = (255, 0, 0)   # left half red, right half black; stored landscape
    img = Image.fromarray(arr)
    exif = Image.Exif()
    exif[0x0112] = 6             # "rotate 90° clockwise to display"
    img.save(tmp_path / "o.jpg", exif=exif.tobytes(), quality=95)
    out = load_image(str(tmp_path / "o.jpg"), 20)
    # displayed upright the image is portrait with red on top: the centre crop is red above, black below
    assert out[2, 10, 0] > 200 and out[17, 10, 0] < 50


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "CMYK", "1", "I;16"])
def test_every_mode_decodes_to_8bit_rgb(tmp_path, mode):
    img = Image.new("RGB", (16, 16), (10, 120, 250)).convert(mode if mode not in ("I;16",) else "L")
    if mode == "I;16":
        img = Image.fromarray(np.full((16, 16), 1000, dtype=np.uint16))
    if mode == "P":
        img.info["transparency"] = 0
    ext = "jpg" if mode == "CMYK" else "png"
    img.save(tmp_path / f"x.{ext}")
    out = load_image(str(tmp_path / f"x.{ext}"), 8)
    assert out is not None and out.dtype == np.uint8 and out.shape == (8, 8, 3)


def _png_claiming(width, height):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def test_decompression_bomb_header_is_skipped_and_named(tmp_path):
    root = write_split(tmp_path / "d", per_class=60)
    (root / "train" / "b" / "bomb.png").write_bytes(_png_claiming(40_000, 40_000))
    with pytest.warns(RuntimeWarning, match=r"skipped 1 .*b/bomb\.png: too large"):
        out = build(root, tmp_path / "c")
    assert open_cache(out)[0].shape[0] == 120


def test_unreadable_files_are_named_and_hidden_entries_ignored(tmp_path):
    root = write_split(tmp_path / "d", per_class=60)
    (root / "train" / "a" / "._0.png").write_bytes(b"\0\0AppleDouble")      # macOS twin: hidden, ignored
    os.makedirs(root / "train" / ".ipynb_checkpoints")                      # hidden folder: not a class
    solid((1, 2, 3)).save(root / "train" / ".ipynb_checkpoints" / "x.png")
    (root / "train" / "b" / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.warns(RuntimeWarning, match=r"skipped 1 .*b/broken\.jpg") as record:
        out = build(root, tmp_path / "c")
    assert "._0.png" not in str(record[0].message)
    assert open_cache(out)[2] == ["a", "b"]


def test_a_fifo_named_jpg_does_not_hang_the_build(tmp_path):
    root = write_split(tmp_path / "d")
    os.mkfifo(root / "train" / "a" / "pipe.jpg")
    script = "import sys; from minilab.data import build_cache; " \
             "build_cache(sys.argv[1], 'train', 8, sys.argv[2], workers=1, progress=False); print('built')"
    done = subprocess.run([sys.executable, "-c", script, str(root), str(tmp_path / "c")], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert "built" in done.stdout, done.stderr


# ---- item 8: a full disk or an unwritable cache folder is one clear error -----------------------------------------
DISK_FULL_SCRIPT = textwrap.dedent("""
    import resource, signal, sys
    from minilab.data import DataError, build_cache
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)         # so a write past the limit fails with EFBIG instead
    resource.setrlimit(resource.RLIMIT_FSIZE, (3000, 3000))   # of killing the process: a disk that fills up
    try:
        build_cache(sys.argv[1], "train", 32, sys.argv[2], workers=1, progress=False)
    except DataError as error:
        print("error:", error)
""")


def test_full_disk_while_caching_is_a_clear_error_and_leaves_nothing(tmp_path):
    root = write_split(tmp_path / "d")
    done = subprocess.run([sys.executable, "-c", DISK_FULL_SCRIPT, str(root), str(tmp_path / "c")], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "could not write the preprocessing cache" in done.stdout and "Traceback" not in done.stderr
    leftovers = [f for _, _, files in os.walk(tmp_path / "c") for f in files if not f.endswith(".lock")]
    assert leftovers == []


def test_cache_dir_that_is_a_file_is_a_clear_error(tmp_path):
    root = write_split(tmp_path / "d")
    (tmp_path / "c").write_text("not a folder")
    with pytest.raises(DataError, match="choose a writable --cache-dir"):
        build(root, tmp_path / "c")


# ---- item 11: two first runs at once ------------------------------------------------------------------------------
def test_two_processes_building_the_same_cache_both_succeed(tmp_path):
    root = write_split(tmp_path / "d", per_class=40)
    script = "import sys; from minilab.data import build_cache, open_cache; " \
             "print(open_cache(build_cache(sys.argv[1], 'train', 24, sys.argv[2], workers=1, " \
             "progress=False))[0].shape)"
    procs = [subprocess.Popen([sys.executable, "-c", script, str(root), str(tmp_path / "c")], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert all("(80, 24, 24, 3)" in out for out, _ in outs)


# ---- item 7: data training cannot use ----------------------------------------------------------------------------
def test_single_class_is_refused_before_caching(tmp_path):
    root = write_split(tmp_path / "d", classes=("only",))
    write_split(root, "val", classes=("only",))
    with pytest.raises(DataError, match="single class"):
        load_datasets(str(root), 8, str(tmp_path / "c"), progress=False)
    assert not (tmp_path / "c" / "preprocessed").exists()


def test_missing_validation_split_is_refused_before_caching(tmp_path):
    root = write_split(tmp_path / "d")
    with pytest.raises(DataError, match="no 'val' folder"):
        load_datasets(str(root), 8, str(tmp_path / "c"), progress=False)
    assert not (tmp_path / "c" / "preprocessed").exists()


def test_zero_synthetic_validation_images_is_refused():
    with pytest.raises(DataError, match="no usable validation images"):
        load_datasets("synthetic", 8, synthetic_size=(20, 0), progress=False)


def test_analysis_images_skip_hidden_entries(tmp_path):
    from minilab.analysis.report import load_images

    os.makedirs(tmp_path / "imgs" / ".ipynb_checkpoints")
    solid((9, 9, 9)).save(tmp_path / "imgs" / ".ipynb_checkpoints" / "a.png")
    solid((9, 9, 9)).save(tmp_path / "imgs" / "._b.png")
    solid((200, 0, 0)).save(tmp_path / "imgs" / "c.png")
    assert load_images(str(tmp_path / "imgs"), 8, 10).shape[0] == 1


def test_a_dead_worker_is_noticed_when_the_pool_never_reports_it():
    """A worker killed while writing its result to the pool's pipe can leave ProcessPoolExecutor waiting for the
    rest of that message, never marking itself broken: the loader reads the workers' exit codes too, and says
    the worker died instead of waiting out its timeout."""
    import concurrent.futures

    from minilab.data.loader import Loader, WorkerDied

    class KilledWorker:
        exitcode = -9

        def join(self, timeout=None):
            pass

        def is_alive(self):
            return False

    class StuckPool:             # its future never completes, its one worker is gone
        _processes = {1: KilledWorker()}

        def shutdown(self, wait=True, cancel_futures=False):
            pass

    loader = Loader(list(range(8)), 4, workers=1, timeout=2.0)
    loader._pool = StuckPool()
    with pytest.raises(WorkerDied, match=r"worker process died \(killed by signal 9\)"):
        loader._wait(concurrent.futures.Future(), None)
