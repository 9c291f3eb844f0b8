"""Data: image folders, the preprocessing cache, Imagenette download, synthetic data, augmentation, loading."""
import hashlib
import os

from .cache import build_cache, open_cache
from .folder import DataError, scan_image_folder
from .imagenette import VARIANTS, default_cache_dir, fetch_imagenette, find_local_imagenette
from .loader import ArrayDataset, Loader
from .synthetic import make_synthetic

HOW_TO_GET_DATA = ("no Imagenette found in {cache}. Download it with `--data imagenette` (about 100 MB for the "
                   "160 px variant), point `--data` at an image folder (root/{{train,val}}/<class>/*), or run offline "
                   "with `--data synthetic`.")


def load_datasets(spec, image_size, cache_dir=None, synthetic_size=(2000, 500), seed=0, progress=True,
                  input="cache"):
    """(train, val) datasets for `spec`: 'synthetic', 'imagenette[-160|-320]', None (local Imagenette) or a
    folder path.  Real images go through the preprocessing cache at `image_size` (input 'cache'), or are decoded
    as batches are prepared (input 'stream', ImageNet layouts: minilab.data.stream)."""
    cache_dir = cache_dir or default_cache_dir()
    if spec == "synthetic":
        n_train, n_val = synthetic_size
        tr = make_synthetic(n_train, image_size, seed=seed)
        va = make_synthetic(n_val, image_size, seed=seed + 1)
        classes = [f"texture{i}" for i in range(10)]
        return check_datasets(ArrayDataset(*tr, classes, "synthetic"), ArrayDataset(*va, classes, "synthetic"),
                              "--synthetic-size")
    if spec is None:
        root = find_local_imagenette(cache_dir)
        if root is None:
            raise DataError(HOW_TO_GET_DATA.format(cache=cache_dir))
    elif spec == "imagenette" or spec in VARIANTS or spec.startswith("imagenette2"):
        root = fetch_imagenette("imagenette2-160" if spec == "imagenette" else spec, cache_dir, progress)
    else:
        root = spec
    name = os.path.basename(os.path.normpath(root)) or "data"
    if input == "stream":
        from .stream import open_stream_datasets
        train, val = open_stream_datasets(root, image_size, name)
        return check_datasets(train, val, root)
    _, _, classes = scan_image_folder(root, "train")   # both splits checked before the long cache build
    if len(classes) < 2:
        raise DataError(f"{root} has a single class ({classes[0]!r}); classification needs at least two class "
                        "folders")
    scan_image_folder(root, "val", classes)
    tag = f"{name}-{hashlib.md5(os.path.abspath(root).encode()).hexdigest()[:8]}"
    train_dir = build_cache(root, "train", image_size, os.path.join(cache_dir, "preprocessed"), tag, progress=progress)
    images, labels, classes = open_cache(train_dir)
    val_dir = build_cache(root, "val", image_size, os.path.join(cache_dir, "preprocessed"), tag, classes=classes,
                          progress=progress)
    v_images, v_labels, _ = open_cache(val_dir)
    return check_datasets(ArrayDataset(images, labels, classes, name), ArrayDataset(v_images, v_labels, classes, name),
                          root)


def check_datasets(train, val, where):
    """What training needs of the data: two classes or more, two training images or more, one validation image."""
    if len(train.classes) < 2:
        raise DataError(f"{where} has a single class ({train.classes[0]!r}); classification needs at least two "
                        "class folders")
    if len(train) < 2:
        raise DataError(f"{where} has {len(train)} usable training image(s); training needs at least two")
    if len(val) < 1:
        raise DataError(f"{where} has no usable validation images")
    return train, val
