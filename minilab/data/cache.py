"""The one-time preprocessing cache: decode every image once, resize it to the training resolution and store the
split as one uint8 array (N, S, S, 3) in a memory-mappable `.npy`, so epochs never touch a JPEG again.

Decoding: every image Pillow can open becomes 8-bit RGB — the EXIF orientation tag is applied; greyscale, palette,
CMYK and alpha images are converted (alpha is dropped); 16-bit greyscale is scaled by 255/65535 rather than
clipped.  Then the short side goes to S (bicubic) and the centre S×S crop is kept.

Unreadable, oversized (more pixels than Pillow's decompression-bomb limit) and vanished files are skipped and
named in the warning (the first ten); if more than 1 % of a split is unusable that is an error.

Reuse: the cache lives in `<cache_dir>/<name>-<split>-<S>px/` with images.npy, labels.npy and meta.json.
meta.json holds a digest of the split's manifest — every file's relative path (which is also its label), size and
modification time — and is written last, so the cache is reused only when it is complete and the folder still
holds exactly the files it was built from: a moved, added, removed or replaced image means a rebuild.  Path, size
and mtime cost one stat() per file (well under a second for Imagenette); hashing the contents would read the
whole dataset at every start.  (A file rewritten in place with the same size and a forged mtime goes unnoticed.)

Writing: pixels are written with plain sequential writes, never through a writable memory map — a full disk then
gives ENOSPC (an error with a message) rather than SIGBUS (the process killed without one).  Files are written
under unique temporary names and renamed into place, and one lock per cache entry makes a second process that
wants the same cache wait for the first and reuse its result."""
import fcntl
import glob
import hashlib
import json
import os
import tempfile
import warnings
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import numpy as np

from .child_process import WORKER_START, start_worker
from .folder import DataError, is_regular_file, scan_image_folder
from .loader import shut_down_pool
from ..nn.module import user_file_mode
from ..core.validate import Refused, check_image_header

CACHE_FORMAT = 2
MAX_NAMED = 10
SIXTEEN_BIT_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N")


def to_rgb8(img):
    """Any Pillow image → upright 8-bit RGB."""
    from PIL import Image, ImageOps

    try:
        img = ImageOps.exif_transpose(img)
    except (ValueError, TypeError, KeyError, OSError, SyntaxError):   # a malformed EXIF block: keep the pixels
        pass
    if img.mode in SIXTEEN_BIT_MODES:   # Pillow's convert() would clip 0…65535 to 0…255 instead of scaling
        values = np.asarray(img, dtype=np.float64) * (255 / 65535)
        img = Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), "L")
    elif img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    return img.convert("RGB")


def open_rgb8(path, short_side=None):
    """The image file at `path` as upright 8-bit RGB (`to_rgb8`), fully decoded — after its header says that
    neither it nor its resize to `short_side` would exceed `validate.MAX_IMAGE_PIXELS` (`validate.Refused`)."""
    from PIL import Image

    with Image.open(path) as img:
        check_image_header(img, path, short_side)
        return to_rgb8(img)


def centre_crop(img, size):
    """Short side to `size` (bicubic), then the centre size×size crop, as a (size, size, 3) uint8 array: the
    validation preprocessing, the same for the cache, the streaming loader and `predict`."""
    from PIL import Image

    w, h = img.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    img = img.resize((nw, nh), Image.BICUBIC)
    left, top = (nw - size) // 2, (nh - size) // 2
    return np.asarray(img.crop((left, top, left + size, top + size)), dtype=np.uint8)


def decoding(path, decode):
    """(decode(), None), or (None, why the file at `path` cannot be used).  The one policy for a file that does
    not decode, shared by the cache and the streaming loader: an oversized image (more pixels than Pillow's
    decompression-bomb limit, whether Pillow warns or refuses) is "too large", and whatever a decoder raises on a
    damaged or hostile file is reported rather than ending the program."""
    from PIL import Image, UnidentifiedImageError

    if not is_regular_file(path):
        return None, "not a regular file"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return decode(), None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        return None, f"too large ({error})"
    except Refused as error:
        return None, f"too large ({str(error).replace(path + ': ', '')})"
    except UnidentifiedImageError:
        return None, "not an image format Pillow reads"
    except Exception as error:  # noqa: BLE001 — a decoder may raise anything on a hostile file; skip and name it
        return None, f"unreadable ({type(error).__name__}: {str(error).replace(path, 'the file')})"


def read_image(path, size):
    """(the (size, size, 3) uint8 validation crop, None) or (None, why the file cannot be used)."""
    return decoding(path, lambda: centre_crop(open_rgb8(path, size), size))


def load_image(path, size):
    """Decode one image file into a (size, size, 3) uint8 array, or None when it cannot be used."""
    return read_image(path, size)[0]


def _load_chunk(args):
    paths, size = args
    return [read_image(p, size) for p in paths]


def manifest_digest(root, paths, classes, size):
    """SHA-256 over (relative path, size, mtime) of every file, the class order and the resolution."""
    digest = hashlib.sha256(json.dumps([CACHE_FORMAT, size, list(classes)]).encode())
    for path in paths:
        st = os.stat(path)
        digest.update(f"{os.path.relpath(path, root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _read_meta(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):   # missing or damaged: the cache is rebuilt
        return None


class _NpyWriter:
    """Append (S, S, 3) uint8 images to a .npy file with ordinary writes; the header is rewritten at the end
    with the final count (the header is reserved at the length the largest count needs)."""

    def __init__(self, path, max_count, size):
        self.path, self.size, self.count = path, size, 0
        self.header_length = len(self._header(max_count))
        self.file = open(path, "wb")
        self.file.write(self._header(max_count))

    def _header(self, count, length=None):
        text = repr({"descr": "|u1", "fortran_order": False, "shape": (count, self.size, self.size, 3)})
        prefix = b"\x93NUMPY\x01\x00"
        body_length = (length or -(-(len(prefix) + 2 + len(text) + 1) // 64) * 64) - len(prefix) - 2
        body = text.ljust(body_length - 1).encode("latin1") + b"\n"
        return prefix + body_length.to_bytes(2, "little") + body

    def append(self, image):
        self.file.write(np.ascontiguousarray(image, dtype=np.uint8).tobytes())
        self.count += 1

    def finish(self):
        self.file.seek(0)
        self.file.write(self._header(self.count, self.header_length))
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()


def _named(problems, root):
    shown = "; ".join(f"{os.path.relpath(p, root)}: {why}" for p, why in problems[:MAX_NAMED])
    more = f"; and {len(problems) - MAX_NAMED} more" if len(problems) > MAX_NAMED else ""
    return shown + more


def _decode_into(writer, paths, size, workers, progress, desc):
    """Decode `paths` in worker processes (in order) into `writer`; returns the kept mask and the problems."""
    from tqdm import tqdm

    keep = np.zeros(len(paths), dtype=bool)
    problems = []
    chunk = 64
    jobs = [(paths[i:i + chunk], size) for i in range(0, len(paths), chunk)]
    bar = tqdm(total=len(paths), desc=desc, unit="img", disable=not progress)
    pool = ProcessPoolExecutor(workers, mp_context=WORKER_START, initializer=start_worker,
                               initargs=(os.getpid(),))
    try:
        for j, result in enumerate(pool.map(_load_chunk, jobs)):
            for k, (img, why) in enumerate(result):
                i = j * chunk + k
                if img is None:
                    problems.append((paths[i], why))
                else:
                    writer.append(img)
                    keep[i] = True
            bar.update(len(result))
    except BrokenProcessPool:
        raise DataError("a worker process building the preprocessing cache died (killed, or out of memory); "
                        "nothing was kept — run again") from None
    finally:
        bar.close()
        shut_down_pool(pool)
    return keep, problems


def _write_split(out, paths, labels, classes, root, split, size, digest, workers, progress):
    """Decode, then write images.npy, labels.npy and (last) meta.json into `out` under temporary names."""
    fd, images_tmp = tempfile.mkstemp(dir=out, prefix="images.", suffix=".tmp")
    os.fchmod(fd, user_file_mode())   # as every other file the program writes (mkstemp's is 0600)
    os.close(fd)
    temps = [images_tmp]
    try:
        writer = _NpyWriter(images_tmp, len(paths), size)
        try:
            keep, problems = _decode_into(writer, paths, size, workers, progress, f"caching {split} at {size}px")
            writer.finish()
        finally:
            writer.file.close()
        bad = len(problems)
        if bad > max(1, len(paths) // 100):
            raise DataError(f"{bad} of {len(paths)} files in {root}/{split} are not readable images: "
                            f"{_named(problems, root)}")
        if bad:
            warnings.warn(f"skipped {bad} unreadable image(s) in {root}/{split}: {_named(problems, root)}",
                          RuntimeWarning, stacklevel=3)
        for name, write in (("labels.npy", lambda f: np.save(f, np.asarray(labels, dtype=np.int64)[keep])),
                            ("meta.json", lambda f: f.write(json.dumps({
                                "format": CACHE_FORMAT, "source": os.path.abspath(root), "files": len(paths),
                                "skipped": bad, "size": size, "classes": classes, "manifest": digest}).encode()))):
            fd, tmp = tempfile.mkstemp(dir=out, prefix=name + ".", suffix=".tmp")
            temps.append(tmp)
            os.fchmod(fd, user_file_mode())
            with os.fdopen(fd, "wb") as f:
                write(f)
        os.replace(images_tmp, os.path.join(out, "images.npy"))
        os.replace(temps[1], os.path.join(out, "labels.npy"))
        os.replace(temps[2], os.path.join(out, "meta.json"))   # last: its presence says the rest is complete
    except OSError as error:
        raise DataError(f"could not write the preprocessing cache in {out}: {error.strerror or error}; nothing "
                        "was kept there (free some space, or choose another --cache-dir)") from None
    finally:
        for tmp in temps:
            if os.path.exists(tmp):
                os.unlink(tmp)


def build_cache(root, split, size, cache_dir, name="data", classes=None, workers=None, progress=True):
    """Build (or reuse) the cache of one split; returns its directory."""
    out = os.path.join(cache_dir, f"{name}-{split}-{size}px")
    meta_path = os.path.join(out, "meta.json")
    paths, labels, classes = scan_image_folder(root, split, classes)
    digest = manifest_digest(root, paths, classes, size)
    try:
        os.makedirs(out, exist_ok=True)
        lock = open(out + ".lock", "a")
    except OSError as error:
        raise DataError(f"cannot create the preprocessing cache {out}: {error.strerror or error} (choose a "
                        "writable --cache-dir)") from None
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for another process that is building {out}", flush=True)
            fcntl.flock(lock, fcntl.LOCK_EX)   # released by the kernel if that process dies
        for stale in glob.glob(os.path.join(glob.escape(out), "*.tmp")):   # a killed build's; we hold the lock
            os.unlink(stale)
        meta = _read_meta(meta_path)
        if meta is not None and meta.get("manifest") == digest and os.path.exists(os.path.join(out, "images.npy")):
            return out
        if meta is not None:
            print(f"{root}/{split} changed since its cache was built (files added, removed, moved or modified): "
                  "rebuilding it", flush=True)
            for stale in ("meta.json", "images.npy", "labels.npy"):   # first: room for one copy is enough
                if os.path.exists(os.path.join(out, stale)):
                    os.unlink(os.path.join(out, stale))
        workers = workers or min(os.cpu_count() or 1, 8)
        _write_split(out, paths, labels, classes, root, split, size, digest, workers, progress)
    return out


def open_cache(directory):
    """(images memmap (N, S, S, 3) uint8, labels int64, classes)."""
    meta = _read_meta(os.path.join(directory, "meta.json"))
    if meta is None:
        raise DataError(f"{directory} is not a complete preprocessing cache (no readable meta.json)")
    images = np.load(os.path.join(directory, "images.npy"), mmap_mode="r")
    labels = np.load(os.path.join(directory, "labels.npy"))
    return images, labels, meta["classes"]
