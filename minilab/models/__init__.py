"""The model registry: `create_model("labbnn", num_classes=10, width=0.5, binarizer="lab", lab_blocks="1111")`."""
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

DEFAULT_BINARIZER = {"labbnn": "lab"}


def create_model(arch, num_classes=1000, image_size=224, **kwargs):
    if arch not in MODELS:
        raise ValueError(f"unknown architecture {arch!r}; choose from {', '.join(MODELS)}")
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    if arch == "xnornet":
        kwargs["image_size"] = image_size
    return MODELS[arch](num_classes=num_classes, **kwargs)
