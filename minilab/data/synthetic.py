"""A generated dataset for offline smoke runs and tests: each class is a texture family (stripe orientation and
frequency) with its own shading direction, plus per-image random phase, contrast, colour and noise.  Classes
differ in *local* texture and shading — what a binarizer has to preserve — not in mean colour alone."""
import numpy as np


def make_synthetic(n, size, num_classes=10, seed=0):
    """(images (n, size, size, 3) uint8, labels (n,) int64), balanced over classes."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % num_classes
    rng.shuffle(labels)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    for i, k in enumerate(labels):
        angle = np.pi * k / num_classes + rng.normal(0, 0.05)
        freq = 3 + 2 * (k % 3) + rng.normal(0, 0.2)
        phase = rng.uniform(0, 2 * np.pi)
        u = np.cos(angle) * xx + np.sin(angle) * yy
        texture = np.sin(2 * np.pi * freq * u + phase)
        shade_angle = 2 * np.pi * ((k * 3) % num_classes) / num_classes
        shading = np.cos(shade_angle) * (xx - 0.5) + np.sin(shade_angle) * (yy - 0.5)
        base = 0.5 + 0.25 * rng.uniform(0.6, 1.0) * texture + 0.4 * shading
        colour = rng.uniform(0.6, 1.0, size=3)
        img = base[..., None] * colour + rng.normal(0, 0.08, size=(size, size, 3))
        images[i] = np.clip(img * 255, 0, 255).astype(np.uint8)
    return images, labels.astype(np.int64)
