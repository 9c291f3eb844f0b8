"""One file per packed model (.npz, uncompressed so its size is the storage it needs): packed binary weights as
uint64 words, LAB kernels as float32 or as INT8 / INT4 (two per byte) with per-channel scales, every float
parameter as float32, and a JSON record of the architecture, of each packed layer and of the classes (ids and
human names) when the model's training checkpoint named them."""
import json
import os

import numpy as np

from ..data.classnames import class_record
from ..models import create_model
from ..nn import Identity
from ..nn.module import load_npz, save_npz_atomic
from ..ops.quant import dequantize, pack_int4, unpack_int4
from .convert import PackedModel
from .tree import set_submodule
from .frozen import bind_float_layers
from .fused_block import fuse_residual_blocks
from .packed_conv import PackedBinaryConv2d
from ..core.validate import check_listed_arrays, list_arrays

FORMAT = "minilab-packed-2"    # -2: the record lists every array (name, shape, dtype) the file must hold
STORED = ("words", "alpha", "mean", "invstd", "gamma", "beta", "lab_bias", "lab_beta")


def save_packed(packed: PackedModel, path, classes=None):
    """Write `packed` to `path`; `classes` (the class ids, in output order) are stored with their human names."""
    arrays, layers = {}, []
    for name, module in packed.model.named_modules():
        if not isinstance(module, PackedBinaryConv2d):
            continue
        layers.append({"name": name, "spec": module.spec})
        a = module.arrays
        for key in STORED:
            if key in a:
                arrays[f"packed/{name}/{key}"] = a[key]
        if "lab_weight" in a:
            bits = module.spec["lab_bits"]
            if bits == 32:
                arrays[f"packed/{name}/lab_weight"] = a["lab_weight"]
            else:
                q = a["lab_q"]
                arrays[f"packed/{name}/lab_q"] = pack_int4(q) if bits == 4 else q
                arrays[f"packed/{name}/lab_scale"] = a["lab_scale"]
    for name, value in packed.model.state_dict().items():
        arrays[f"float/{name}"] = value
    record = {"format": FORMAT, "config": packed.config, "layers": layers,
              "arrays": list_arrays(arrays)}
    if classes is not None:
        record.update(class_record(classes))
    arrays["record"] = np.frombuffer(json.dumps(record).encode(), dtype=np.uint8)
    save_npz_atomic(path, arrays)
    return os.path.getsize(path)


def packed_record(arrays, path):
    """The JSON record of a packed model file's arrays, after checking that the file holds exactly the arrays the
    record lists, with their shapes and dtypes; a clear one-line ValueError naming the file and the entry
    otherwise (a missing array is never replaced by a default)."""
    try:
        record = json.loads(arrays["record"].tobytes().decode())
        assert isinstance(record, dict) and str(record.get("format", "")).startswith("minilab-packed-")
    except (KeyError, ValueError, AssertionError):
        raise ValueError(f"{path} is not a minilab packed model") from None
    if record["format"] != FORMAT:
        raise ValueError(f"{path} is a packed model of format {record['format']!r}; this minilab reads {FORMAT!r}: "
                         "write it again with `python -m minilab.bench model --checkpoint CKPT --save FILE`")
    if not isinstance(record.get("config"), dict) or not isinstance(record.get("layers"), list):
        raise ValueError(f"{path}: the packed model's record lacks its 'config' or 'layers' entry")
    check_listed_arrays(path, record.get("arrays"), arrays)
    return record


def load_state_dict_or_refuse(model, path, state):
    try:
        model.load_state_dict(state)
    except (KeyError, ValueError) as error:
        raise ValueError(f"{path}: the float weights do not fit architecture {model.__class__.__name__} "
                         f"({str(error).strip(chr(39))})") from None


def load_packed(path, threads=1):
    arrays = load_npz(path)
    record = packed_record(arrays, path)
    config = record["config"]
    try:
        model = create_model(**config)
    except (TypeError, ValueError, KeyError) as error:
        raise ValueError(f"{path}: the record's 'config' does not describe a model ({error})") from None
    for layer in record["layers"]:
        name, spec = layer["name"], layer["spec"]
        prefix = f"packed/{name}/"
        a = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
        if "lab_q" in a:
            shape = (2 * spec["in_channels"], 1, 3, 3)
            q = unpack_int4(a["lab_q"], shape) if spec["lab_bits"] == 4 else a["lab_q"]
            a["lab_q"] = q
            a["lab_weight"] = np.ascontiguousarray(dequantize(q, a["lab_scale"]))
        float_binarizer = None
        if spec["binarizer"] == "float":
            from ..nn import Binarizer
            float_binarizer = Binarizer(spec["float_binarizer"], k=spec.get("binarizer_k"))
        try:
            set_submodule(model, name, PackedBinaryConv2d(spec, a, float_binarizer))
            for folded in spec.get("folded", []):
                set_submodule(model, folded, Identity())
        except (AttributeError, IndexError, KeyError) as error:
            raise ValueError(f"{path}: packed layer {name!r} does not fit architecture {config['arch']!r} "
                             f"({error})") from None
    fuse_residual_blocks(model)
    load_state_dict_or_refuse(model, path, {k[6:]: v for k, v in arrays.items() if k.startswith("float/")})
    model.eval()
    bind_float_layers(model)       # after the statistics are loaded: it reads them once
    return PackedModel(model, config, threads)
