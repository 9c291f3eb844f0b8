"""Training checkpoints: one .npz holding the model, the optimizer, and a JSON record of where the run is
(epoch, batch, step, the run's configuration).  Written atomically (temp file + rename), so a crash or SIGKILL
mid-write leaves the previous checkpoint intact.  Data order and augmentation are functions of (seed, epoch,
batch), so this is the whole state needed to continue a run exactly.  The record also names the classes (output
index i is class `record["classes"][i]`, with a human name in `record["class_names"]`), so a checkpoint alone can
label an image."""
import json

import numpy as np

from ..nn.module import load_npz, save_npz_atomic
from ..core.validate import check_listed_arrays, list_arrays


FORMAT = "minilab-checkpoint-1"


def save_checkpoint(path, model, optimizer, record: dict):
    arrays = {f"model/{k}": v for k, v in model.state_dict().items()}
    if optimizer is not None:
        arrays.update({f"optim/{k}": v for k, v in optimizer.state_dict().items()})
    arrays["record"] = np.frombuffer(json.dumps({"format": FORMAT, **record, "arrays": list_arrays(arrays)}).encode(),
                                     dtype=np.uint8)
    save_npz_atomic(path, arrays)


def read_checkpoint(path):
    """(model state, optimizer state, record) from a checkpoint file, with clear errors for foreign files."""
    arrays = load_npz(path)
    if "record" not in arrays:
        raise ValueError(f"{path} is not a minilab training checkpoint (no 'record' entry)")
    record = check_record(path, arrays["record"])
    foreign = [k for k in arrays if k != "record" and not k.startswith(("model/", "optim/"))]
    if foreign:
        raise ValueError(f"{path}: entry {foreign[0]!r} is not part of a training checkpoint (the file was edited)")
    odd = [k for k in arrays if k != "record" and arrays[k].dtype.kind not in "fiub"]
    if odd:
        raise ValueError(f"{path}: entry {odd[0]!r} holds {arrays[odd[0]].dtype} data, not numbers")
    if "arrays" in record:   # (a record without the list is from before it existed)
        check_listed_arrays(path, record["arrays"], arrays)
    model = {k[6:]: v for k, v in arrays.items() if k.startswith("model/")}
    optim = {k[6:]: v for k, v in arrays.items() if k.startswith("optim/")}
    return model, optim, record


RESUME_FIELDS = {"epoch": int, "batch": int, "step": int, "model": dict, "args": dict}


def check_record(path, raw):
    """The JSON record of a checkpoint: an object that names its model's architecture (ValueError naming the
    file otherwise)."""
    try:
        record = json.loads(raw.tobytes().decode())
    except (UnicodeDecodeError, ValueError) as error:
        raise ValueError(f"{path}: the checkpoint's record is not valid JSON ({error})") from None
    if not isinstance(record, dict):
        raise ValueError(f"{path}: the checkpoint's record is not a JSON object")
    if record.get("format", FORMAT) != FORMAT:   # (files written before the field existed have none)
        raise ValueError(f"{path}: a checkpoint of format {record['format']!r}; this minilab reads {FORMAT!r}")
    if not isinstance(record.get("model"), dict) or "arch" not in record["model"]:
        raise ValueError(f"{path}: the checkpoint's record does not describe its model (model.arch)")
    return record


def check_resumable(path, record):
    """The fields a resume reads — position (epoch, batch, step) and the run's options — with the right types."""
    for field, kind in RESUME_FIELDS.items():
        if not isinstance(record.get(field), kind) or isinstance(record.get(field), bool):
            raise ValueError(f"{path}: the checkpoint's record has no valid {field!r} (expected {kind.__name__}); "
                             "the file is damaged or was not written by minilab.train")
    return record


def load_model_from_checkpoint(path):
    """Rebuild the model a checkpoint was trained with and load its weights; returns (model, record)."""
    from ..models import create_model

    state, _, record = read_checkpoint(path)
    config = record["model"]
    try:
        model = create_model(**config)
        model.load_state_dict(state)
    except (KeyError, ValueError, TypeError) as error:
        raise ValueError(f"{path} does not match architecture {config.get('arch')!r}: {error}") from None
    return model, record


def model_classes(record, path):
    """(class ids, human names, note) of a checkpoint's record; `note` (else None) says that the file does not
    name its classes, in which case they are shown as indices."""
    from ..data.classnames import classes_of

    return classes_of(record, record["model"]["num_classes"], path)
