"""Image folders: `root/{train,val}/<class>/*.{jpg,jpeg,png,…}` (ImageNet / Imagenette layout)."""
import os

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


class DataError(Exception):
    """A problem with the user's data, reported as one clear sentence (the CLIs print it without a traceback)."""


def find_split(root, split):
    path = os.path.join(root, split)
    if not os.path.isdir(root):
        raise DataError(f"data directory {root!r} does not exist")
    if not os.path.isdir(path):
        raise DataError(f"{root!r} has no {split!r} folder: expected {root}/{{train,val}}/<class>/<images>")
    return path


def scan_image_folder(root, split, classes=None):
    """Sorted (paths, labels, classes).  `classes` fixes the label order (use the train split's for val)."""
    path = find_split(root, split)
    found = sorted(d for d in os.listdir(path) if os.path.isdir(os.path.join(path, d)))
    if not found:
        raise DataError(f"{path!r} has no class folders")
    classes = found if classes is None else list(classes)
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise DataError(f"{path!r} has class folders not in the training split: {unknown[:5]}")
    paths, labels = [], []
    for label, name in enumerate(classes):
        folder = os.path.join(path, name)
        files = sorted(f for f in os.listdir(folder) if f.lower().endswith(IMAGE_EXTENSIONS)) \
            if os.path.isdir(folder) else []
        if not files:
            raise DataError(f"class folder {folder!r} is empty (no {'/'.join(IMAGE_EXTENSIONS)} files)")
        paths += [os.path.join(folder, f) for f in files]
        labels += [label] * len(files)
    return paths, labels, classes
