"""Augmentation and normalisation, deterministic under a seed: the same (seed, epoch, index) always gives the
same crop and flip, whichever worker process prepares the batch.

    train "rrc":     random-resized crop (area 25–100 %, aspect 3/4–4/3, 10 tries, else the whole image)
                     back to S×S (bilinear), then a horizontal flip with probability ½
    train "padcrop": pad 4 px (reflect), random S×S crop, flip (the CIFAR recipe, for tiny images)
    eval:            the cached centre crop as is
    both:            (x/255 − mean)/std with ImageNet's RGB mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225)
"""
import math

import numpy as np

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32) * 255
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32) * 255
AUGMENTATIONS = ("rrc", "padcrop", "none")


def random_crop_box(w, h, rng, scale=(0.25, 1.0), ratio=(3 / 4, 4 / 3)):
    """The (left, top, right, bottom) box of a random-resized crop of a w×h image, or None (use it whole)."""
    for _ in range(10):
        area = h * w * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        cw, ch = int(round(math.sqrt(area * aspect))), int(round(math.sqrt(area / aspect)))
        if 0 < cw <= w and 0 < ch <= h:
            x0, y0 = rng.integers(0, w - cw + 1), rng.integers(0, h - ch + 1)
            return int(x0), int(y0), int(x0 + cw), int(y0 + ch)
    return None


def random_resized_crop(img, rng, scale=(0.25, 1.0), ratio=(3 / 4, 4 / 3)):
    from PIL import Image

    h, w = img.shape[:2]
    box = random_crop_box(w, h, rng, scale, ratio)
    if box is None:
        return np.asarray(img)
    return np.asarray(Image.fromarray(np.asarray(img)).resize((w, h), Image.BILINEAR, box=box))


def pad_crop(img, rng, pad=4):
    h, w = img.shape[:2]
    padded = np.pad(img, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
    y, x = rng.integers(0, 2 * pad + 1, size=2)
    return padded[y:y + h, x:x + w]


def augment(img, rng, mode):
    if mode == "rrc":
        img = random_resized_crop(img, rng)
    elif mode == "padcrop":
        img = pad_crop(img, rng)
    elif mode != "none":
        raise ValueError(f"unknown augmentation {mode!r}; choose from {AUGMENTATIONS}")
    if mode != "none" and rng.random() < 0.5:
        img = img[:, ::-1]
    return img


def normalize(batch_uint8):
    """(B, S, S, 3) uint8 → (B, 3, S, S) float32, ImageNet mean/std."""
    x = (batch_uint8.astype(np.float32) - MEAN) / STD
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
