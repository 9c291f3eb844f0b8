"""Class names that travel with a model: the ordered class identifiers a model was trained on (its output index i
is class i) and, where known, a human-readable name for each.

An image folder's classes are its sub-folder names.  For ImageNet and Imagenette those are WordNet ids
("n01440764"), which mean nothing to a reader, so the 1,000 ImageNet classes are looked up in
imagenet_classes.txt beside this file ("n01440764" → "tench"); any other folder name is its own human name."""
import functools
import os

TABLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "imagenet_classes.txt")


@functools.lru_cache(maxsize=1)
def imagenet_names():
    """{wnid: short human name} for the 1,000 ImageNet classes (the first synonym of each line)."""
    names = {}
    with open(TABLE, encoding="utf-8") as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            wnid, _, synonyms = line.strip().partition(" ")
            names[wnid] = synonyms.split(",")[0].strip()
    return names


def human_names(classes):
    """The human-readable name of each class identifier: ImageNet's name for a wnid, the identifier otherwise."""
    table = imagenet_names()
    return [table.get(c, c) for c in classes]


def class_record(classes):
    """What a checkpoint or packed model file stores about its classes: {'classes': ids, 'class_names': names}."""
    classes = [str(c) for c in classes]
    return {"classes": classes, "class_names": human_names(classes)}


def classes_of(record, num_classes, path):
    """(ids, names, note) of a stored record.  A file written without class names still works: its classes are
    shown as indices ("class 0", …) and `note` says why, so a caller can print it once."""
    classes, names = record.get("classes"), record.get("class_names")
    if classes and len(classes) == num_classes:
        return list(classes), list(names) if names and len(names) == num_classes else human_names(classes), None
    ids = [str(i) for i in range(num_classes)]
    note = (f"note: {path} does not record its class names (files written by older minilab versions do not); "
            f"showing class indices 0–{num_classes - 1} instead. A model trained with this version carries them.")
    return ids, [f"class {i}" for i in ids], note
