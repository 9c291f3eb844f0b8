"""The model registry: `create_model("labbnn", num_classes=10, width=0.5, binarizer="lab", lab_blocks="1111")`."""
from ..nn import Binarizer, set_lab_bits
from .birealnet import BiRealNet18
from .labbnn import LabBNN
from .quicknet import QuickNet, QuickNetLarge, QuickNetSmall
from .reactnet import ReActNetA
from .xnornet import XNORNet

MODELS = {
    "labbnn": LabBNN,
    "birealnet18": BiRealNet18,
    "quicknet": QuickNet,
    "quicknet_small": QuickNetSmall,
    "quicknet_large": QuickNetLarge,
    "reactnet_a": ReActNetA,
    "xnornet": XNORNet,
}

DEFAULT_BINARIZER = {"labbnn": "lab"}   # every other architecture binarizes its activations with sign


def default_binarizer(arch):
    """The activation binarizer an architecture uses when none is asked for (the CLIs' --binarizer default)."""
    return DEFAULT_BINARIZER.get(arch, "sign")


def create_model(arch, num_classes=1000, image_size=224, **kwargs):
    if arch not in MODELS:
        raise ValueError(f"unknown architecture {arch!r}; choose from {', '.join(MODELS)}")
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    lab_bits = kwargs.pop("lab_bits", 32)
    binarizer_k = kwargs.pop("binarizer_k", None)
    if arch == "xnornet":
        kwargs["image_size"] = image_size
    model = MODELS[arch](num_classes=num_classes, **kwargs)
    if binarizer_k is not None:
        set_binarizer_k(model, binarizer_k)
    return set_lab_bits(model, lab_bits)


def set_binarizer_k(model, k):
    """Niblack's / Sauvola's constant k for every local-threshold binarizer of the model."""
    from ..ops.binarizers import get_binarizer

    for module in model.modules():
        if isinstance(module, Binarizer) and module.name in ("niblack", "sauvola"):
            module.k, module.fn = k, get_binarizer(module.name, k)
    return model
