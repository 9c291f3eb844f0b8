"""`python -m minilab.predict`: what does a trained model say about these images?  Top-k classes, with their
names and probabilities, for image files, folders (searched recursively) or glob patterns.

The model is a training checkpoint (checkpoint.npz) or a packed model file (`bench model --save`).  By default it
runs on the packed engine — a checkpoint is packed in memory first — whose logits equal the float graph's in eval
mode; `--float` runs the float graph instead (checkpoints only: a packed file no longer holds the float weights).
Images get exactly the validation preprocessing (`cache.centre_crop`, the same whether the model was trained with
`--input cache` or `--input stream`): short side resized to the model's image size (bicubic), centre crop,
ImageNet mean/std.  Hidden files and folders (names starting with '.') are not searched, as in training data."""
import argparse
import fnmatch
import glob
import json
import os
import sys

import numpy as np

from .data.folder import IMAGE_EXTENSIONS, find_images_under
from .core.validate import int_range, strict_json


def find_images(specs):
    """(image paths in the order given, [(spec, reason)] for specs that matched nothing)."""
    paths, missing = [], []
    for spec in specs:
        if os.path.isdir(spec):
            found = find_images_under(spec)
            reason = f"no {'/'.join(IMAGE_EXTENSIONS)} files in this folder"
        elif os.path.exists(spec):
            found, reason = [spec], ""
        elif "**" in spec:
            found = recursive_glob(spec)
        else:
            found = sorted(p for p in glob.glob(spec) if os.path.isfile(p))
            reason = "no such file" if not glob.has_magic(spec) else "the pattern matches no file"
        paths += found
        if not found:
            missing.append((spec, reason))
    return paths, missing


def recursive_glob(pattern):
    """The files matching a pattern with `**` (any number of folders), found by walking the folder before the first
    wildcard without following links to folders — glob's own `**` follows them, and a link back up the tree
    (`a/loop -> ..`) makes its search endless.  Hidden folders are not searched (as in `find_images_under`)."""
    parts = pattern.split(os.sep)
    fixed = next(i for i, part in enumerate(parts) if glob.has_magic(part))
    base = os.sep.join(parts[:fixed]) or (os.sep if pattern.startswith(os.sep) else ".")
    wanted = parts[fixed:]
    found = []
    for root, folders, files in os.walk(base):
        folders[:] = [d for d in folders if not d.startswith(".")]
        rel = os.path.relpath(root, base)
        prefix = [] if rel == "." else rel.split(os.sep)
        found += [os.path.join(root, f) for f in files if _matches(prefix + [f], wanted)]
    return sorted(found)


def _matches(parts, pattern):
    """Whether path components `parts` match pattern components, `**` standing for any number of components."""
    if not pattern:
        return not parts
    if pattern[0] == "**":
        return any(_matches(parts[i:], pattern[1:]) for i in range(len(parts) + 1))
    if not parts or (parts[0].startswith(".") and not pattern[0].startswith(".")):   # as glob: hidden only by name
        return False
    return fnmatch.fnmatchcase(parts[0], pattern[0]) and _matches(parts[1:], pattern[1:])


def load_model(path, use_float=False, threads=1):
    """(forward: float32 batch → logits, model config, class ids, class names, engine description, notes)."""
    from .training.checkpoint import load_model_from_checkpoint, model_classes
    from .data.classnames import classes_of
    from .engine.storage import load_packed, packed_record
    from .nn.module import load_npz

    if not os.path.isfile(path):
        raise FileNotFoundError(f"model file {path!r} does not exist")
    arrays = load_npz(path)
    notes = []
    if is_packed_file(arrays):
        record = packed_record(arrays, path)
        if use_float:
            raise ValueError(f"{path} is a packed model file: it holds only the packed engine's weights. Pass the "
                             "training checkpoint for --float")
        config = record["config"]
        classes, names, note = classes_of(record, config["num_classes"], path)
        return load_packed(path, threads), config, classes, names, "packed engine (packed model file)", \
            [note] if note else []
    model, record = load_model_from_checkpoint(path)
    config = record["model"]
    classes, names, note = model_classes(record, path)
    notes += [note] if note else []
    if not use_float:
        import copy

        from .engine import convert
        try:
            return convert(copy.deepcopy(model), config, threads), config, classes, names, \
                "packed engine (the checkpoint packed in memory; --float for the float graph)", notes
        except RuntimeError as error:   # no compiled extension: say so and use the float graph
            notes.append(f"note: {error}; using the float graph instead")
    return float_forward(model), config, classes, names, "float graph (training graph in eval mode)", notes


def is_packed_file(arrays):
    """Whether an .npz's arrays are a packed model file (a training checkpoint's record has no 'format')."""
    try:
        return str(json.loads(arrays["record"].tobytes().decode()).get("format")).startswith("minilab-packed-")
    except (KeyError, ValueError, AttributeError):
        return False


def float_forward(model):
    from .core.autograd import Tensor, no_grad

    model.eval()

    def forward(x):
        with no_grad():
            return model(Tensor(x)).data
    return forward


def softmax(logits):
    z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def predict(forward, paths, image_size, top_k, batch_size=32, progress=True):
    """[(path, [(class index, probability)] best first)] for the readable images, and [(path, reason)] for the
    others.  Images are decoded and run `batch_size` at a time."""
    from tqdm import tqdm

    from .data.augment import normalize
    from .data.cache import read_image

    results, skipped = [], []
    with tqdm(total=len(paths), desc="predict", unit="img", disable=not progress or len(paths) <= batch_size,
              file=sys.stderr) as bar:
        for start in range(0, len(paths), batch_size):
            batch, names = [], []
            for path in paths[start:start + batch_size]:
                image, why = read_image(path, image_size)
                if image is None:
                    skipped.append((path, why))
                else:
                    batch.append(image)
                    names.append(path)
            if batch:
                probabilities = softmax(forward(normalize(np.stack(batch))))
                k = min(top_k, probabilities.shape[1])
                best = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
                for path, p, order in zip(names, probabilities, best):
                    results.append((path, [(int(i), float(p[i])) for i in order]))
            bar.update(len(paths[start:start + batch_size]))
    return results, skipped


def print_table(results, classes, names):
    for path, top in results:
        print(path)
        for rank, (i, p) in enumerate(top, 1):
            label = names[i] if names[i] == classes[i] else f"{names[i]} ({classes[i]})"
            print(f"  {rank}. {label:44s} {100 * p:6.2f} %")


def as_json(model_path, engine, results, skipped, classes, names):
    return {"model": model_path, "engine": engine,
            "predictions": [{"image": path, "top": [{"index": i, "class": classes[i], "name": names[i],
                                                     "probability": p} for i, p in top]}
                            for path, top in results],
            "skipped": [{"image": path, "reason": reason} for path, reason in skipped]}


def build_parser():
    p = argparse.ArgumentParser(
        prog="python -m minilab.predict",
        description="Label images with a trained model: the top-k classes (names and probabilities) per image. "
                    "Runs on the packed engine by default; images get the validation preprocessing (short-side "
                    "resize to the model's image size, centre crop).",
        epilog="Examples:\n  python -m minilab.predict runs/lab/checkpoint.npz my_photo.jpg\n"
               "  python -m minilab.predict model.npz photos/ 'more/*.png' --top 3 --json > predictions.json",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="a training checkpoint (checkpoint.npz) or a packed model file")
    p.add_argument("images", nargs="+", help="image files, folders (searched recursively) or glob patterns")
    p.add_argument("--top", type=int_range(1, 1000), default=5, help="how many classes to show per image (default 5)")
    p.add_argument("--float", action="store_true", help="run the float graph instead of the packed engine")
    p.add_argument("--json", action="store_true", help="print one JSON document (for scripts) instead of a table")
    p.add_argument("--batch-size", type=int_range(1, 1024), default=32,
                   help="images decoded and run at a time, 1-1024 (default 32)")
    p.add_argument("--threads", type=int_range(1, os.cpu_count() or 1), default=None,
                   help="cores to use: the packed engine's threads, and the BLAS library's for --float (default: "
                        "the packed engine on 1 thread, the BLAS library's own default)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    paths, missing = find_images(args.images)
    if len(paths) == 1 or args.batch_size == 1:
        from .core.config import for_latency
        for_latency()               # one image at a time: before the kernels load (see for_latency)
    if args.threads is not None:
        from .core.threads import set_threads
        set_threads(args.threads)   # before the first kernel runs (see set_threads)
    try:
        forward, config, classes, names, engine, notes = load_model(args.model, args.float, args.threads or 1)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for note in notes:
        print(note, file=sys.stderr)
    print(f"{args.model}: {config['arch']} ({config.get('binarizer')}), {len(classes)} classes, "
          f"{config['image_size']} px — running on the {engine}", file=sys.stderr)
    results, skipped = predict(forward, paths, config["image_size"], args.top, args.batch_size,
                               not args.no_progress)
    skipped = missing + skipped
    for path, reason in skipped:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    if args.json:
        print(strict_json(as_json(args.model, engine, results, skipped, classes, names), indent=1))
    else:
        print_table(results, classes, names)
    if not results:
        print("error: no readable image among the arguments", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
