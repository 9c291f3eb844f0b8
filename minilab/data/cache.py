"""The one-time preprocessing cache: decode every image once, resize it to the training resolution and store the
split as one uint8 array (N, S, S, 3) in a memory-mappable `.npy`, so epochs never touch a JPEG again.

Resize: the short side goes to S (bicubic), then the centre S×S crop.  Greyscale and CMYK images become RGB.
Unreadable files are skipped and counted; if more than 1 % of a split is unreadable that is an error.
The cache lives in `<cache_dir>/<name>-<split>-<S>px/` with images.npy, labels.npy and meta.json; meta.json is
written last, so a half-written cache (a crash while building) is detected and rebuilt."""
import json
import os
import warnings
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from .folder import DataError, scan_image_folder


def load_image(path, size):
    """Decode one image file into a (size, size, 3) uint8 array, or None when it is not a readable image."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            w, h = img.size
            scale = size / min(w, h)
            nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
            img = img.resize((nw, nh), Image.BICUBIC)
            left, top = (nw - size) // 2, (nh - size) // 2
            return np.asarray(img.crop((left, top, left + size, top + size)), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return None


def _load_chunk(args):
    paths, size = args
    return [load_image(p, size) for p in paths]


def build_cache(root, split, size, cache_dir, name="data", classes=None, workers=None, progress=True):
    """Build (or reuse) the cache of one split; returns its directory."""
    out = os.path.join(cache_dir, f"{name}-{split}-{size}px")
    meta_path = os.path.join(out, "meta.json")
    paths, labels, classes = scan_image_folder(root, split, classes)
    if os.path.exists(meta_path):
        with open(meta_path) as f:
            meta = json.load(f)
        if meta.get("source") == os.path.abspath(root) and meta.get("files") == len(paths):
            return out
    os.makedirs(out, exist_ok=True)
    if os.path.exists(meta_path):
        os.unlink(meta_path)
    images = np.lib.format.open_memmap(os.path.join(out, "images.tmp.npy"), mode="w+", dtype=np.uint8,
                                       shape=(len(paths), size, size, 3))
    keep = np.zeros(len(paths), dtype=bool)
    chunk = 64
    jobs = [(paths[i:i + chunk], size) for i in range(0, len(paths), chunk)]
    workers = workers or min(os.cpu_count() or 1, 8)
    from tqdm import tqdm

    bar = tqdm(total=len(paths), desc=f"caching {split} at {size}px", unit="img", disable=not progress)
    with ProcessPoolExecutor(workers) as pool:
        for j, result in enumerate(pool.map(_load_chunk, jobs)):
            for k, img in enumerate(result):
                i = j * chunk + k
                if img is not None:
                    images[i] = img
                    keep[i] = True
            bar.update(len(result))
    bar.close()
    bad = int((~keep).sum())
    if bad > max(1, len(paths) // 100):
        raise DataError(f"{bad} of {len(paths)} files in {root}/{split} are not readable images")
    if bad:
        warnings.warn(f"skipped {bad} unreadable image(s) in {root}/{split}", RuntimeWarning, stacklevel=2)
    images.flush()
    tmp = os.path.join(out, "images.tmp.npy")
    if bad:  # drop the unreadable slots: a second, compacted file
        np.save(os.path.join(out, "images.npy"), images[keep])
        del images
        os.unlink(tmp)
    else:
        del images
        os.replace(tmp, os.path.join(out, "images.npy"))
    np.save(os.path.join(out, "labels.npy"), np.asarray(labels, dtype=np.int64)[keep])
    with open(meta_path + ".tmp", "w") as f:
        json.dump({"source": os.path.abspath(root), "files": len(paths), "skipped": bad, "size": size,
                   "classes": classes}, f)
    os.replace(meta_path + ".tmp", meta_path)
    return out


def open_cache(directory):
    """(images memmap (N, S, S, 3) uint8, labels int64, classes)."""
    with open(os.path.join(directory, "meta.json")) as f:
        meta = json.load(f)
    images = np.load(os.path.join(directory, "images.npy"), mmap_mode="r")
    labels = np.load(os.path.join(directory, "labels.npy"))
    return images, labels, meta["classes"]
