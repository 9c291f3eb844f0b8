import hashlib
import http.server
import io
import os
import tarfile
import threading

import numpy as np
import pytest
from PIL import Image

from minilab.data import DataError, Loader, build_cache, load_datasets, make_synthetic, open_cache
from minilab.data.augment import augment, normalize
from minilab.data.imagenette import download, safe_extract


def write_folder(root, classes=("a", "b"), per_class=10, size=20, split="train", grey=False):
    rng = np.random.default_rng(0)
    for c in classes:
        os.makedirs(root / split / c, exist_ok=True)
        for i in range(per_class):
            arr = rng.integers(0, 255, (size, size + 4, 3), dtype=np.uint8)
            img = Image.fromarray(arr).convert("L") if grey and i == 0 else Image.fromarray(arr)
            img.save(root / split / c / f"{i}.png")
    return root


def test_cache_builds_once_and_converts_greyscale(tmp_path):
    root = write_folder(tmp_path / "d", grey=True)
    out = build_cache(str(root), "train", 16, str(tmp_path / "cache"), progress=False, workers=1)
    images, labels, classes = open_cache(out)
    assert images.shape == (20, 16, 16, 3) and images.dtype == np.uint8
    assert classes == ["a", "b"] and labels.tolist() == [0] * 10 + [1] * 10
    mtime = os.path.getmtime(os.path.join(out, "images.npy"))
    build_cache(str(root), "train", 16, str(tmp_path / "cache"), progress=False, workers=1)
    assert os.path.getmtime(os.path.join(out, "images.npy")) == mtime          # reused, not rebuilt


def test_a_few_bad_images_are_skipped_with_a_counted_warning(tmp_path):
    root = write_folder(tmp_path / "d", per_class=60)
    (root / "train" / "a" / "broken.jpg").write_bytes(b"not a jpeg at all")
    with pytest.warns(RuntimeWarning, match="skipped 1 unreadable"):
        out = build_cache(str(root), "train", 8, str(tmp_path / "cache"), progress=False, workers=1)
    assert open_cache(out)[0].shape[0] == 120


def test_mostly_corrupt_folder_is_an_error(tmp_path):
    root = write_folder(tmp_path / "d", per_class=2)
    for i in range(5):
        (root / "train" / "b" / f"junk{i}.png").write_bytes(b"\x00" * 10)
    with pytest.raises(DataError, match="not readable images"):
        build_cache(str(root), "train", 8, str(tmp_path / "cache"), progress=False, workers=1)


def test_empty_class_and_missing_directories(tmp_path):
    root = write_folder(tmp_path / "d")
    os.makedirs(root / "train" / "empty")
    with pytest.raises(DataError, match="is empty"):
        build_cache(str(root), "train", 8, str(tmp_path / "c"), progress=False)
    with pytest.raises(DataError, match="does not exist"):
        load_datasets(str(tmp_path / "nowhere"), 16, str(tmp_path / "c"), progress=False)
    with pytest.raises(DataError, match="no 'val' folder"):
        load_datasets(str(write_folder(tmp_path / "e")), 16, str(tmp_path / "c"), progress=False)


def test_no_data_message_points_to_synthetic(tmp_path):
    with pytest.raises(DataError, match="--data synthetic"):
        load_datasets(None, 16, str(tmp_path))


def test_image_folder_end_to_end(tmp_path):
    root = write_folder(tmp_path / "d")
    write_folder(root, split="val", per_class=3)
    train, val = load_datasets(str(root), 16, str(tmp_path / "cache"), progress=False)
    assert len(train) == 20 and len(val) == 6 and val.classes == ["a", "b"]


def test_augmentation_is_deterministic_and_loader_order_depends_only_on_seed_epoch_batch():
    images, labels = make_synthetic(50, 16, seed=3)
    from minilab.data import ArrayDataset
    ds = ArrayDataset(images, labels, [str(i) for i in range(10)])
    a = list(Loader(ds, 8, augmentation="rrc", seed=1).batches(2))
    pool_loader = Loader(ds, 8, augmentation="rrc", seed=1, workers=2)
    b = list(pool_loader.batches(2))
    tail = list(pool_loader.batches(2, start_batch=4))
    pool_loader.close()
    assert len(a) == 7 and a[-1][0].shape == (2, 3, 16, 16)
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    np.testing.assert_array_equal(tail[0][0], a[4][0])
    other_epoch = list(Loader(ds, 8, augmentation="rrc", seed=1).batches(3))
    assert not np.array_equal(other_epoch[0][1], a[0][1])
    rng = np.random.default_rng(0)
    img = images[0]
    assert augment(img, rng, "padcrop").shape == img.shape
    x = normalize(images[:2])
    assert x.dtype == np.float32 and x.shape == (2, 3, 16, 16) and abs(x.mean()) < 3


def test_synthetic_classes_are_balanced():
    _, labels = make_synthetic(100, 8)
    assert np.bincount(labels).tolist() == [10] * 10


# ---- hostile archives ------------------------------------------------------------------------------------------
def make_tar(path, members):
    with tarfile.open(path, "w:gz") as tar:
        for name, kind, target in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                data = b"hello"
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            elif kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, target
                tar.addfile(info)
            elif kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, target
                tar.addfile(info)


@pytest.mark.parametrize("members", [
    [("../evil.txt", "file", None)],
    [("/tmp/absolute.txt", "file", None)],
    [("ok/../../evil.txt", "file", None)],
    [("link", "symlink", "/etc/passwd")],
    [("link", "symlink", "../../outside")],
    [("hard", "hardlink", "/etc/passwd")],
])
def test_hostile_tarballs_are_refused(tmp_path, members):
    archive = tmp_path / "bad.tgz"
    make_tar(archive, members)
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(DataError, match="refusing to extract"):
        safe_extract(str(archive), str(target))
    assert not (tmp_path / "evil.txt").exists()


def test_benign_tarball_extracts(tmp_path):
    archive = tmp_path / "ok.tgz"
    make_tar(archive, [("imagenette2-160/train/a.txt", "file", None), ("imagenette2-160/link", "symlink", "train/a.txt")])
    safe_extract(str(archive), str(tmp_path))
    assert (tmp_path / "imagenette2-160" / "train" / "a.txt").read_bytes() == b"hello"


def test_not_a_tarball(tmp_path):
    (tmp_path / "x.tgz").write_bytes(b"garbage")
    with pytest.raises(DataError, match="not a readable tar"):
        safe_extract(str(tmp_path / "x.tgz"), str(tmp_path))


# ---- resumable download from a local server --------------------------------------------------------------------
class RangeHandler(http.server.BaseHTTPRequestHandler):
    payload = b""
    ranges_seen = []

    def do_GET(self):
        data = self.payload
        rng = self.headers.get("Range")
        RangeHandler.ranges_seen.append(rng)
        if rng:
            start = int(rng.split("=")[1].split("-")[0])
            self.send_response(206)
            data = data[start:]
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    RangeHandler.payload = os.urandom(300_000)
    RangeHandler.ranges_seen = []
    httpd = http.server.HTTPServer(("127.0.0.1", 0), RangeHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}/file.tgz"
    httpd.shutdown()


def test_download_resumes_and_verifies_md5(tmp_path, server):
    payload = RangeHandler.payload
    md5 = hashlib.md5(payload).hexdigest()
    dest = tmp_path / "file.tgz"
    (tmp_path / "file.tgz.part").write_bytes(payload[:100_000])     # an interrupted earlier download
    download(server, str(dest), md5, progress=False)
    assert dest.read_bytes() == payload
    assert RangeHandler.ranges_seen == ["bytes=100000-"]


def test_download_checksum_mismatch(tmp_path, server):
    with pytest.raises(DataError, match="checksum mismatch"):
        download(server, str(tmp_path / "f.tgz"), "0" * 32, progress=False)
    assert not (tmp_path / "f.tgz.part").exists() and not (tmp_path / "f.tgz").exists()


def test_download_unreachable(tmp_path):
    with pytest.raises(DataError, match="could not download"):
        download("http://127.0.0.1:9/none.tgz", str(tmp_path / "x.tgz"), progress=False, timeout=5)
