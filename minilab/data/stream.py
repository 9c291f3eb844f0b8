"""Streaming input (`--input stream`): image files decoded when their batch is prepared, for datasets whose
preprocessing cache would not fit (ImageNet at 224 px: 1,281,167 × 224 × 224 × 3 bytes ≈ 193 GB).

    train:  the random-resized-crop box (the same distribution as the cache's "rrc") is drawn on the file's own
            width × height, Pillow's `draft` makes the JPEG decoder scale by 1/2, 1/4 or 1/8 while decoding — the
            largest reduction that keeps the crop at least S px — and the crop is resized to S×S (bilinear) and
            flipped with probability ½.  Decoding a 500×375 photo for a 64 px crop then touches an eighth of
            its pixels.
    eval:   short side to S (bicubic), centre S×S crop — what the preprocessing cache stores.

The loader's worker processes (`--workers`) call `StreamDataset.example`, and under MPI each rank prepares only
its slice of every batch, so every rank decodes only its own images.  A file that cannot be decoded is reported
(once, by name) and replaced by a mid-grey image, so that one bad file among a million does not end a run."""
import math
import warnings

import numpy as np

from .augment import pad_crop, random_crop_box


def draft_open(path, want_w, want_h, draft=True):
    """Open `path` as RGB, decoded at the smallest JPEG scale (1, ½, ¼, ⅛) that is still ≥ want_w × want_h
    (full size with draft=False).  Returns (image, factor) with factor = decoded width / file width."""
    from PIL import Image

    img = Image.open(path)
    full_w = img.size[0]
    if draft and img.format == "JPEG":
        img.draft("RGB", (max(1, math.ceil(want_w)), max(1, math.ceil(want_h))))
    img = img.convert("RGB")
    return img, img.size[0] / full_w


def decode_train(path, size, rng, draft=True):
    """Random-resized crop of the file at `path` to size×size, decided by `rng`, without the flip."""
    from PIL import Image

    with Image.open(path) as probe:
        w, h = probe.size
    box = random_crop_box(w, h, rng) or (0, 0, w, h)
    cw, ch = box[2] - box[0], box[3] - box[1]
    img, f = draft_open(path, w * size / cw, h * size / ch, draft)
    with img:
        scaled = tuple(v * f for v in box)
        return np.asarray(img.resize((size, size), Image.BILINEAR, box=scaled), dtype=np.uint8)


def decode_eval(path, size, draft=True):
    """Short side to `size`, centre size×size crop."""
    from PIL import Image

    with Image.open(path) as probe:
        w, h = probe.size
    img, _ = draft_open(path, w * size / min(w, h), h * size / min(w, h), draft)
    with img:
        w, h = img.size
        scale = size / min(w, h)
        nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
        img = img.resize((nw, nh), Image.BICUBIC)
        left, top = (nw - size) // 2, (nh - size) // 2
        return np.asarray(img.crop((left, top, left + size, top + size)), dtype=np.uint8)


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

    def example(self, i, rng, mode):
        """Image i as (S, S, 3) uint8, augmented by `mode` ('rrc', 'padcrop' or 'none') with `rng`."""
        try:
            if mode == "rrc":
                img = decode_train(self.paths[i], self.image_size, rng, self.draft)
            else:
                img = decode_eval(self.paths[i], self.image_size, self.draft)
                if mode == "padcrop":
                    img = pad_crop(img, rng)
        except (OSError, ValueError, SyntaxError) as error:
            if self.paths[i] not in self._reported:
                self._reported.add(self.paths[i])
                warnings.warn(f"cannot decode {self.paths[i]} ({error}); a grey image stands in for it", stacklevel=2)
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
