"""ImageNet's folder layouts, for the streaming loader (`--input stream`).

    train   root/train/<wnid>/*.JPEG                           (one folder per class, as distributed)
    val     root/val/<wnid>/*.JPEG                             (sorted into class folders), or
            root/val/*.JPEG plus a labels file, either
              LOC_val_solution.csv   "ImageId,PredictionString" rows whose PredictionString starts with the wnid
                                     (Kaggle's ImageNet; looked for in root and up to two folders above it)
              val_labels.txt         "ILSVRC2012_val_00000001.JPEG n01751748" lines (in root or root/val)

Classes are the sorted training wnids, so label i means the same class in every layout, and Imagenette's ten
classes keep their ImageNet names.  `write_sample_tree` writes a small tree of ImageNet-sized JPEGs in any of
these layouts (tests, benchmarks, tutorial 08)."""
import csv
import os

import numpy as np

from .folder import DataError, visible, find_split, list_images, scan_image_folder

LABEL_FILES = ("LOC_val_solution.csv", "val_labels.txt")


def find_labels_file(root):
    """The first labels file of LABEL_FILES in root/val, root or (for the csv) up to two folders above root."""
    root = os.path.abspath(root)
    places = [os.path.join(root, "val"), root, os.path.dirname(root), os.path.dirname(os.path.dirname(root))]
    for name in LABEL_FILES:
        for place in places if name.endswith(".csv") else places[:2]:
            path = os.path.join(place, name)
            if os.path.isfile(path):
                return path
    return None


def read_labels_file(path):
    """{image file stem: wnid} from a LOC_val_solution.csv or a "filename wnid" text file."""
    try:
        return _read_labels_file(path)
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 text (byte {error.start}); save it as UTF-8 CSV") from None


def _read_labels_file(path):
    labels = {}
    with open(path, newline="", encoding="utf-8-sig") as f:   # -sig: a spreadsheet's byte-order mark is not a name
        if path.endswith(".csv"):
            reader = csv.reader(f)
            header = next(reader, None)
            if not header or header[:2] != ["ImageId", "PredictionString"]:
                raise DataError(f"{path}: expected the header 'ImageId,PredictionString', found {header}")
            for row in reader:
                if len(row) >= 2 and row[1].split():
                    labels[row[0]] = row[1].split()[0]
        else:
            for number, line in enumerate(f, 1):
                fields = line.split()
                if not fields:
                    continue
                if len(fields) != 2:
                    raise DataError(f"{path}, line {number}: expected 'filename wnid', found {line.strip()!r}")
                labels[os.path.splitext(os.path.basename(fields[0]))[0]] = fields[1]
    if not labels:
        raise DataError(f"{path} lists no labels")
    return labels


def scan_imagenet_val(root, classes):
    """(paths, labels) of the validation split in either layout; `classes` are the training wnids."""
    path = find_split(root, "val")
    # hidden entries (.ipynb_checkpoints, .DS_Store) say nothing about the layout, as in scan_image_folder
    if any(visible(d) and os.path.isdir(os.path.join(path, d)) for d in os.listdir(path)):
        paths, labels, _ = scan_image_folder(root, "val", classes)
        return paths, labels
    files = list_images(path)
    if not files:
        raise DataError(f"{path!r} has neither class folders nor images")
    labels_file = find_labels_file(root)
    if labels_file is None:
        raise DataError(f"{path!r} holds images without class folders, and no labels file was found: put "
                        f"LOC_val_solution.csv or val_labels.txt ('filename wnid' lines) in {root!r}")
    wnids, index = read_labels_file(labels_file), {c: i for i, c in enumerate(classes)}
    missing = [f for f in files if os.path.splitext(f)[0] not in wnids]
    if missing:
        raise DataError(f"{labels_file} has no label for {len(missing)} image(s) of {path!r}, e.g. {missing[0]}")
    unknown = sorted({wnids[os.path.splitext(f)[0]] for f in files} - set(index))
    if unknown:
        raise DataError(f"{labels_file} names classes that are not training folders: {unknown[:5]}")
    return [os.path.join(path, f) for f in files], [index[wnids[os.path.splitext(f)[0]]] for f in files]


def scan_imagenet(root):
    """(train paths, train labels, val paths, val labels, classes) of an ImageNet-layout folder."""
    train_paths, train_labels, classes = scan_image_folder(root, "train")
    val_paths, val_labels = scan_imagenet_val(root, classes)
    return train_paths, train_labels, val_paths, val_labels, classes


def write_sample_tree(root, classes=("n01440764", "n02102040"), per_class=4, val_per_class=2, size=(500, 375),
                      quality=90, val_layout="folders", seed=0):
    """Write root/train/<wnid>/*.JPEG and a val split in `val_layout` ('folders', 'csv' or 'txt'): smooth random
    colour fields with some texture, `size` (w, h) pixels — ImageNet's typical photo — at JPEG `quality`."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    w, h = size

    def picture():
        coarse = rng.integers(0, 256, (h // 25 + 2, w // 25 + 2, 3), dtype=np.uint8)
        img = Image.fromarray(coarse).resize((w, h), Image.BICUBIC)
        noise = rng.integers(-12, 13, (h, w, 3))
        return Image.fromarray(np.clip(np.asarray(img, np.int16) + noise, 0, 255).astype(np.uint8))

    rows, number = [], 0
    for wnid in classes:
        os.makedirs(os.path.join(root, "train", wnid), exist_ok=True)
        for i in range(per_class):
            picture().save(os.path.join(root, "train", wnid, f"{wnid}_{i}.JPEG"), quality=quality)
        for _ in range(val_per_class):
            number += 1
            name = f"ILSVRC2012_val_{number:08d}"
            folder = os.path.join(root, "val", wnid) if val_layout == "folders" else os.path.join(root, "val")
            os.makedirs(folder, exist_ok=True)
            picture().save(os.path.join(folder, name + ".JPEG"), quality=quality)
            rows.append((name, wnid))
    if val_layout == "csv":
        with open(os.path.join(root, "LOC_val_solution.csv"), "w") as f:
            f.write("ImageId,PredictionString\n")
            f.writelines(f"{name},{wnid} 10 20 200 300 \n" for name, wnid in rows)
    elif val_layout == "txt":
        with open(os.path.join(root, "val_labels.txt"), "w") as f:
            f.writelines(f"{name}.JPEG {wnid}\n" for name, wnid in rows)
    return root
