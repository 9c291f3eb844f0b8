"""What every command checks before it starts work, in one place (docs/refusals.md lists the limits).

- Numeric options: argparse types that check a range at parse time (`int_range`, `float_range`), so a bad value
  ends in one line that names the option and what it accepts, before anything is allocated.
- Output paths: `check_output_file` / `check_output_dir` look at a path before the work that fills it (a folder
  where a file is expected, a missing or read-only folder), so an hour of work never ends in an unwritable file.
- Machine-readable output: `strict_json` writes JSON that every strict parser reads — a non-finite number becomes
  null and the record lists where in its "non_finite" field; `loads_strict` reads JSON back and refuses the
  non-standard NaN / Infinity tokens.
- Files read back: `check_listed_arrays` holds a file to the list of arrays (names, shapes, dtypes) its record
  was written with (`list_arrays`), so a missing, extra or reshaped entry is refused, never replaced by a default.
- Images: `check_image_header` bounds the pixels an image will take, from its header, before they are decoded —
  both the decoded image and the resized one (a 1 × 1,000,000 strip resized to a short side of 64 would be
  64 × 64,000,000 pixels).

Every check raises `Refused` (a ValueError: the commands print its one-line message and exit with status 2)."""
import argparse
import json
import math
import os

import numpy as np

# ranges shared by the commands' options
CORES = os.cpu_count() or 1
IMAGE_SIZES = (16, 512)       # px: what the models are built for (each architecture checks its own sizes too)
MAX_WIDTH = 4.0               # width multiplier: 4× the paper's network has 16× its weights
MAX_BATCH = 4096

# Pillow's own decompression-bomb threshold (about 268 MB of 8-bit RGB): larger images are refused, not decoded.
MAX_IMAGE_PIXELS = 89_478_485


class Refused(ValueError):
    """An input, option or output path that minilab will not use; the message is one line and says why."""


# ---------------------------------------------------------------- numeric options, checked at parse time

def _range_text(lo, hi, lo_open=False):
    if hi is None:
        return f"greater than {lo}" if lo_open else f"at least {lo}"
    return f"between {lo} (exclusive) and {hi}" if lo_open else f"between {lo} and {hi}"


def int_range(lo, hi=None):
    """An argparse `type`: an integer in [lo, hi] (no upper bound when hi is None)."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number {_range_text(lo, hi)}, got {text!r}") \
                from None
        if value < lo or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"must be {_range_text(lo, hi)}, got {value}")
        return value
    parse.__name__ = "int"   # argparse names the type in some messages
    return parse


def float_range(lo, hi=None, lo_open=False):
    """An argparse `type`: a finite number in [lo, hi] (or (lo, hi] with lo_open; no upper bound when hi is None)."""
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number {_range_text(lo, hi, lo_open)}, got {text!r}") \
                from None
        if not math.isfinite(value) or value < lo or (lo_open and value == lo) or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"must be a number {_range_text(lo, hi, lo_open)}, got {text}")
        return value
    parse.__name__ = "float"
    return parse


WIDTH = float_range(0, MAX_WIDTH, lo_open=True)


def memory_bytes():
    """The machine's physical memory in bytes (None where the system does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_allocation(nbytes, what, option):
    """Refuse, before allocating it, an array of `nbytes` that would not fit in the machine's memory."""
    total = memory_bytes()
    if total is not None and nbytes > total:
        raise Refused(f"{option}: {what} would need {nbytes / 2**30:,.1f} GiB, more than this machine's "
                      f"{total / 2**30:,.1f} GiB of memory")


# ---------------------------------------------------------------- output paths, checked before the work

def check_output_file(path, option):
    """Refuse an output file path that cannot be written: a folder, a file in a missing or read-only folder, or an
    existing file that is not writable.  `option` names the flag in the message (e.g. '--out')."""
    where = f"{option} {path}"
    if os.path.isdir(path):
        raise Refused(f"{where} is a folder; give a file name (e.g. {os.path.join(path, 'out.png')})")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        what = "is not a folder" if os.path.exists(folder) else "does not exist"
        raise Refused(f"{where}: the folder {folder} {what}; create it first or choose another path")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise Refused(f"{where}: the file exists and is not writable")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise Refused(f"{where}: the folder {folder} is not writable")
    return path


def check_output_dir(path, option):
    """Refuse an output folder that cannot be created or written: a file in its place, a file or a read-only
    folder on the way to it."""
    where = f"{option} {path}"
    if os.path.exists(path):
        if not os.path.isdir(path):
            raise Refused(f"{where} is a file, not a folder")
        if not os.access(path, os.W_OK | os.X_OK):
            raise Refused(f"{where}: the folder is not writable")
        return path
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise Refused(f"{where}: {parent} is a file, so the folder cannot be created")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise Refused(f"{where}: the folder cannot be created inside {parent}, which is not writable")
    return path


# ---------------------------------------------------------------- strict JSON

def finite_or_null(value, where="", found=None):
    """(a copy of `value` with every non-finite float replaced by None, [JSON paths of those replaced])."""
    found = [] if found is None else found
    if isinstance(value, float) or (hasattr(value, "dtype") and getattr(value, "ndim", 1) == 0
                                    and value.dtype.kind == "f"):
        if not math.isfinite(value):
            found.append(where or "$")
            return None, found
        return float(value), found
    if isinstance(value, dict):
        return {k: finite_or_null(v, f"{where}.{k}" if where else str(k), found)[0] for k, v in value.items()}, found
    if isinstance(value, (list, tuple)):
        return [finite_or_null(v, f"{where}[{i}]", found)[0] for i, v in enumerate(value)], found
    return value, found


def strict_json(record, **dumps_options):
    """`record` (a dict) as standard JSON text: non-finite numbers become null, and when there were any, the
    record's "non_finite" field lists where they were (JSON paths such as 'predictions[0].top[1].probability')."""
    clean, found = finite_or_null(record)
    if found:
        clean["non_finite"] = found
    return json.dumps(clean, allow_nan=False, **dumps_options)


def _no_constant(name):
    raise ValueError(f"{name} is not a JSON number")


def loads_strict(text):
    """json.loads that refuses NaN, Infinity and -Infinity (Python's json reads them; standard JSON has none)."""
    return json.loads(text, parse_constant=_no_constant)


# ---------------------------------------------------------------- files read back

def list_arrays(arrays):
    """{name: {'shape', 'dtype'}} of a file's arrays: what a record stores so that loading can check them."""
    return {k: {"shape": list(v.shape), "dtype": v.dtype.str} for k, v in ((k, np.asarray(v)) for k, v in
                                                                           arrays.items())}


def check_listed_arrays(path, listed, arrays):
    """The file at `path` holds exactly the arrays `listed` (`list_arrays` of what was written, kept in its
    record), with their shapes and dtypes: a missing, extra or reshaped entry is refused with one line naming the
    file and the entry — never replaced by a default.  `arrays` may hold the record itself under 'record'."""
    if not isinstance(listed, dict):
        raise Refused(f"{path}: the record does not list the file's arrays (damaged, or not written by minilab)")
    held = set(arrays) - {"record"}
    missing, extra = sorted(set(listed) - held), sorted(held - set(listed))
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise Refused(f"{path}: entry {missing[0]!r} is missing{more}; the file is damaged or was edited")
    if extra:
        raise Refused(f"{path}: entry {extra[0]!r} is not one the file was written with (the file was edited)")
    for name, want in sorted(listed.items()):
        got = np.asarray(arrays[name])
        if not isinstance(want, dict) or list(got.shape) != list(want.get("shape", [None])) \
                or got.dtype.str != want.get("dtype"):
            raise Refused(f"{path}: entry {name!r} is {got.dtype.str} {list(got.shape)}, the file's record says "
                          f"{want}")


# ---------------------------------------------------------------- images, bounded before decoding

def check_image_header(img, path, short_side=None):
    """Refuse an opened (not yet decoded) Pillow image whose decoded pixels, or whose pixels once its short side is
    resized to `short_side`, exceed MAX_IMAGE_PIXELS.  Reads only the header's size."""
    w, h = img.size
    if w < 1 or h < 1:
        raise Refused(f"{path}: an image of {w}×{h} pixels has nothing to decode")
    if w * h > MAX_IMAGE_PIXELS:
        raise Refused(f"{path}: {w}×{h} pixels is over the limit of {MAX_IMAGE_PIXELS:,} decoded pixels")
    if short_side is not None:
        scale = short_side / min(w, h)
        resized = max(short_side, round(w * scale)) * max(short_side, round(h * scale))
        if resized > MAX_IMAGE_PIXELS:
            raise Refused(f"{path}: {w}×{h} pixels, resized to a short side of {short_side}, would be {resized:,} "
                          f"pixels, over the limit of {MAX_IMAGE_PIXELS:,} (an aspect ratio of "
                          f"{max(w, h) / min(w, h):,.0f}:1)")
    return w, h
