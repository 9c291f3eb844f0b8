"""Real full and read-only disks: a small tmpfs mounted for the test (needs root and a working `mount`; skipped
otherwise — tests/test_faults_data.py and test_faults_train.py simulate a full disk with RLIMIT_FSIZE anywhere)."""
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def mount_tmpfs(tmp_path):
    mounted = []

    def mount(name, size_kb, read_only=False):
        if os.geteuid() != 0:
            pytest.skip("mounting a small tmpfs needs root")
        path = tmp_path / name
        path.mkdir()
        options = f"size={size_kb}k" + (",ro" if read_only else "")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
        mounted.append(path)
        return path

    yield mount
    for path in mounted:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def image_folder(root, per_class=30, size=64):
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in ("a", "b"):
            os.makedirs(root / split / c, exist_ok=True)
            for i in range(per_class):
                pixels = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / c / f"{i}.png")
    return root


def train_cli(args, cache):
    env = dict(os.environ, MINILAB_CACHE=str(cache))
    return subprocess.run([sys.executable, "-m", "minilab.train", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


TINY = ["--width", "0.25", "--image-size", "32", "--batch-size", "8", "--epochs", "1", "--threads", "1",
        "--no-progress"]


def test_cache_on_a_full_disk_is_an_error_message_not_sigbus(tmp_path, mount_tmpfs):
    data = image_folder(tmp_path / "d")
    cache = mount_tmpfs("cache", 96)   # 60 images of 32×32×3 need 184 KB
    done = train_cli(["--data", str(data), "--out", str(tmp_path / "run"), *TINY], cache)
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    assert "could not write the preprocessing cache" in done.stderr and "No space left on device" in done.stderr
    assert "Traceback" not in done.stderr
    leftovers = [f for _, _, files in os.walk(cache) for f in files if not f.endswith(".lock")]
    assert leftovers == []


def test_checkpoint_on_a_full_disk_is_one_line(tmp_path, mount_tmpfs):
    out = mount_tmpfs("out", 64)   # the checkpoint (about 3 MB) does not fit
    done = train_cli(["--data", "synthetic", "--synthetic-size", "32", "8", "--out", str(out / "run"), *TINY],
                     tmp_path / "cache")
    assert done.returncode == 2, done.stderr[-2000:]
    assert "could not write" in done.stderr and "No space left on device" in done.stderr
    assert "Traceback" not in done.stderr
    assert not [f for f in os.listdir(out / "run") if f.endswith(".tmp.npz")]


def test_read_only_out_and_cache_are_one_line(tmp_path, mount_tmpfs):
    read_only = mount_tmpfs("ro", 64, read_only=True)
    done = train_cli(["--data", "synthetic", "--out", str(read_only / "run"), *TINY], tmp_path / "cache")
    assert done.returncode == 2 and "cannot create the run folder" in done.stderr and "Read-only" in done.stderr
    assert "Traceback" not in done.stderr
    data = image_folder(tmp_path / "d", per_class=3)
    done = train_cli(["--data", str(data), "--out", str(tmp_path / "run"), *TINY], read_only)
    assert done.returncode == 2 and "choose a writable --cache-dir" in done.stderr and "Traceback" not in done.stderr
