"""Streaming input (`--input stream`): image files decoded when their batch is prepared, for datasets whose
preprocessing cache would not fit (ImageNet at 224 px: 1,281,167 × 224 × 224 × 3 bytes ≈ 193 GB).

    train:  the random-resized-crop box (the same distribution as the cache's "rrc") is drawn on the file's own
            width × height, Pillow's `draft` makes the JPEG decoder scale by 1/2, 1/4 or 1/8 while decoding — the
            largest reduction that keeps the crop at least S px — and the crop is resized to S×S (bilinear) and
            flipped with probability ½.  Decoding a 500×375 photo for a 64 px crop then touches an eighth of
            its pixels.
    eval:   short side to S (bicubic), centre S×S crop of the full-size decode — what the preprocessing cache
            stores, pixel for pixel.
    Both decode like the cache: EXIF orientation applied, 16-bit greyscale scaled to 8 bits (`cache.to_rgb8`).

The loader's worker processes (`--workers`) call `StreamDataset.example`, and under MPI each rank prepares only
its slice of every batch, so every rank decodes only its own images.  A file that cannot be decoded (damaged, not
an image, or over Pillow's decompression-bomb limit: the cache's rule, `cache.decoding`) is reported once, by
name and reason, and replaced by a mid-grey image, so that one bad file among a million does not end a run."""
import math
import warnings

import numpy as np

from .augment import pad_crop, random_crop_box
from ..core.validate import check_image_header
from .cache import centre_crop, decoding, open_rgb8, to_rgb8

TRANSPOSING_ORIENTATIONS = (5, 6, 7, 8)   # EXIF orientations that turn the stored image by a quarter turn


def upright_size(img):
    """(width, height) of an opened image once its EXIF orientation is applied (what `to_rgb8` returns)."""
    try:
        orientation = img.getexif().get(0x0112)
    except (ValueError, TypeError, KeyError, OSError, SyntaxError):   # a malformed EXIF block: to_rgb8 ignores it
        orientation = None
    w, h = img.size
    return (h, w) if orientation in TRANSPOSING_ORIENTATIONS else (w, h)


def draft_open(path, want_w, want_h, draft=True):
    """Open `path` as upright 8-bit RGB (`cache.to_rgb8`), decoded at the smallest JPEG scale (1, ½, ¼, ⅛) that
    is still ≥ want_w × want_h (upright sizes; full size with draft=False).  Returns (image, (fx, fy)): decoded
    size / file size along each axis.  The decoder rounds each axis up on its own (500×375 at ⅛ is 63×47), so
    the two factors differ slightly, and a box drawn on the file's size must be scaled by both."""
    from PIL import Image

    with Image.open(path) as img:
        check_image_header(img, path)
        full_w, full_h = upright_size(img)
        if draft and img.format == "JPEG":
            stored = (want_w, want_h) if (full_w, full_h) == img.size else (want_h, want_w)
            img.draft("RGB", tuple(max(1, math.ceil(v)) for v in stored))
        rgb = to_rgb8(img)
    return rgb, (rgb.size[0] / full_w, rgb.size[1] / full_h)


def decode_train(path, size, rng, draft=True):
    """Random-resized crop of the file at `path` to size×size, decided by `rng`, without the flip.  The box is
    drawn on the upright image (EXIF orientation applied), like every other decode of the file."""
    from PIL import Image

    with Image.open(path) as probe:
        check_image_header(probe, path)
        w, h = upright_size(probe)
    box = random_crop_box(w, h, rng) or (0, 0, w, h)
    cw, ch = box[2] - box[0], box[3] - box[1]
    img, (fx, fy) = draft_open(path, w * size / cw, h * size / ch, draft)
    # the right and bottom edges may land a fraction of a pixel past the decoded image: clamp them onto it
    scaled = (box[0] * fx, box[1] * fy, min(box[2] * fx, img.size[0]), min(box[3] * fy, img.size[1]))
    return np.asarray(img.resize((size, size), Image.BILINEAR, box=scaled), dtype=np.uint8)


def decode_eval(path, size):
    """The validation preprocessing (`cache.centre_crop`): the full-size decode, short side to `size`, centre
    size×size crop — exactly what the preprocessing cache stores and `predict` sees, so that a model validated
    here gives the same answers everywhere.  (Draft decoding would save time, but not give the same pixels.)"""
    return centre_crop(open_rgb8(path, size), size)


class StreamDataset:
    """Image files with labels, decoded to image_size × image_size on demand (see the module docstring)."""

    def __init__(self, paths, labels, classes, image_size, name="data", draft=True):
        if len(paths) != len(labels):
            raise ValueError(f"{len(paths)} files but {len(labels)} labels")
        self.paths, self.labels = list(paths), np.asarray(labels, np.int64)
        self.classes, self.image_size, self.name = list(classes), image_size, name
        self.draft, self._reported = draft, set()

    def __len__(self):
        return len(self.labels)

    def decode(self, i, rng, mode):
        if mode == "rrc":
            return decode_train(self.paths[i], self.image_size, rng, self.draft)
        img = decode_eval(self.paths[i], self.image_size)
        return pad_crop(img, rng) if mode == "padcrop" else img

    def example(self, i, rng, mode):
        """Image i as (S, S, 3) uint8, augmented by `mode` ('rrc', 'padcrop' or 'none') with `rng`."""
        img, why = decoding(self.paths[i], lambda: self.decode(i, rng, mode))
        if img is None:
            if self.paths[i] not in self._reported:
                self._reported.add(self.paths[i])
                warnings.warn(f"cannot decode {self.paths[i]}: {why}; a grey image stands in for it", stacklevel=2)
            return np.full((self.image_size, self.image_size, 3), 128, np.uint8)
        if mode != "none" and rng.random() < 0.5:
            img = img[:, ::-1]
        return img


def open_stream_datasets(root, image_size, name):
    """(train, val) StreamDatasets of an ImageNet-layout folder (minilab.data.imagenet)."""
    from .imagenet import scan_imagenet

    train_paths, train_labels, val_paths, val_labels, classes = scan_imagenet(root)
    return (StreamDataset(train_paths, train_labels, classes, image_size, name),
            StreamDataset(val_paths, val_labels, classes, image_size, name))
