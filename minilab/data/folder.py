"""Image folders: `root/{train,val}/<class>/*.{jpg,jpeg,png,…}` (ImageNet / Imagenette layout).

Hidden entries (names starting with '.', such as macOS `._photo.jpg` twins or `.ipynb_checkpoints/`) are not
data and are ignored, as is anything that is not a regular file (a FIFO named `x.jpg` would block a reader)."""
import os
import stat

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
MAX_FILES_PER_SPLIT = 20_000_000   # more than any real dataset; a bigger count means --data names the wrong folder


class DataError(Exception):
    """A problem with the user's data, reported as one clear sentence (the CLIs print it without a traceback)."""


def find_split(root, split):
    path = os.path.join(root, split)
    if not os.path.isdir(root):
        raise DataError(f"data directory {root!r} does not exist")
    if not os.path.isdir(path):
        raise DataError(f"{root!r} has no {split!r} folder: expected {root}/{{train,val}}/<class>/<images>")
    return path


def visible(name):
    return not name.startswith(".")


def is_regular_file(path):
    """True for a regular file (after following links); False for FIFOs, sockets, devices, folders, dead links."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def list_images(folder):
    """Sorted image file names in `folder`: visible, regular files with an image extension."""
    return sorted(f for f in os.listdir(folder)
                  if visible(f) and f.lower().endswith(IMAGE_EXTENSIONS) and is_regular_file(os.path.join(folder, f)))


def find_images_under(folder):
    """Sorted paths of the images anywhere below `folder`; hidden files and folders (`._x.jpg` twins,
    `.ipynb_checkpoints/`, `.git/`) are not searched."""
    found = []
    for root, folders, files in os.walk(folder):
        folders[:] = [d for d in folders if visible(d)]   # prunes the walk
        found += [os.path.join(root, f) for f in files if visible(f) and f.lower().endswith(IMAGE_EXTENSIONS)]
    return sorted(found)


def scan_image_folder(root, split, classes=None):
    """Sorted (paths, labels, classes).  `classes` fixes the label order (use the train split's for val)."""
    path = find_split(root, split)
    found = sorted(d for d in os.listdir(path) if visible(d) and os.path.isdir(os.path.join(path, d)))
    if not found:
        raise DataError(f"{path!r} has no class folders")
    classes = found if classes is None else list(classes)
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise DataError(f"{path!r} has class folders not in the training split: {unknown[:5]}")
    paths, labels = [], []
    for label, name in enumerate(classes):
        folder = os.path.join(path, name)
        files = list_images(folder) if os.path.isdir(folder) else []
        if not files:
            raise DataError(f"class folder {folder!r} is empty (no {'/'.join(IMAGE_EXTENSIONS)} files)")
        paths += [os.path.join(folder, f) for f in files]
        labels += [label] * len(files)
        if len(paths) > MAX_FILES_PER_SPLIT:
            raise DataError(f"{path!r} holds more than {MAX_FILES_PER_SPLIT:,} images: is --data the right folder?")
    return paths, labels, classes
