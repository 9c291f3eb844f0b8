import numpy as np
import pytest

import minilab as ml
from minilab import F, nn
from minilab.models import MODELS, create_model
from minilab.analysis.summary import summarize

# parameter counts of the authors' released models (Larq zoo, 1000 classes, 224 px), which minilab must match
COUNTS = {
    ("birealnet18", "sign"): 11_689_512,
    ("birealnet18", "lab"): 11_689_512 + 67_856,
    ("labbnn", "lab"): 11_753_464,
    ("quicknet", "sign"): 13_234_088,
    ("quicknet", "lab"): 13_234_088 + 76_816,
    ("xnornet", "sign"): 62_387_104,
    ("xnornet", "lab"): 62_387_104 + 109_446,
    ("reactnet_a", "sign"): 29_343_592,
    ("reactnet_a", "lab"): 29_343_592 + 198_426,
}


@pytest.mark.parametrize("arch,binarizer", sorted(COUNTS))
def test_parameter_counts_match_the_released_code(arch, binarizer):
    model = create_model(arch, num_classes=1000, binarizer=binarizer)
    assert summarize(model, 224)["params"] == COUNTS[arch, binarizer]


def test_bireal_model_size_and_binary_count():
    t = summarize(create_model("birealnet18", num_classes=1000), 224)
    assert t["binary_params"] == 10_985_472
    assert round(t["size_mb"], 3) == 4.189


@pytest.mark.parametrize("arch", sorted(MODELS))
@pytest.mark.parametrize("size", [64, 224])
def test_every_architecture_builds_and_runs_forward_backward(arch, size):
    width = 0.25 if size == 224 else 0.5
    model = create_model(arch, num_classes=10, image_size=size, width=width, binarizer="lab")
    x = ml.Tensor(np.random.default_rng(0).standard_normal((2, 3, size, size)).astype(np.float32))
    logits = model(x)
    assert logits.shape == (2, 10)
    F.cross_entropy(logits, np.array([1, 2])).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None and "fixed" not in n]
    assert not missing, f"parameters without gradient: {missing[:5]}"


def binarizer_names(model):
    return [m.binarizer_name for m in model.modules() if isinstance(m, nn.BinaryConv2d)]


@pytest.mark.parametrize("mask", ["1111", "0000", "1000", "0101", "0011"])
def test_lab_blocks_switch_exactly_their_stage(mask):
    model = create_model("labbnn", num_classes=10, width=0.25, lab_blocks=mask)
    names = binarizer_names(model)
    assert len(names) == 16
    for stage in range(4):
        want = "lab" if mask[stage] == "1" else "sign"
        assert names[4 * stage:4 * stage + 4] == [want] * 4


def test_lab_blocks_on_reactnet_groups():
    model = create_model("reactnet_a", num_classes=10, width=0.25, binarizer="lab", lab_blocks="0100")
    labs = [isinstance(b.sign1.binarize, nn.LAB) for b in model.blocks]
    assert labs == [False, True, True, True, True] + [False] * 8


def test_sign_model_has_no_lab_and_bireal_has_no_prelu():
    model = create_model("birealnet18", num_classes=10, width=0.25)
    assert set(binarizer_names(model)) == {"sign"}
    assert not any(isinstance(m, nn.PReLU) for m in model.modules())
    assert set(binarizer_names(create_model("birealnet18", num_classes=10, width=0.25,
                                            binarizer="approxsign"))) == {"approxsign"}


def test_quicknet_pads_with_plus_one_and_bireal_with_zero():
    q = [m.pad_value for m in create_model("quicknet", num_classes=10, width=0.25).modules()
         if isinstance(m, nn.BinaryConv2d)]
    b = [m.pad_value for m in create_model("birealnet18", num_classes=10, width=0.25).modules()
         if isinstance(m, nn.BinaryConv2d)]
    assert set(q) == {1} and set(b) == {0}


def test_registry_errors():
    with pytest.raises(ValueError, match="choose from .*labbnn"):
        create_model("resnet50")
    with pytest.raises(ValueError, match="binarizer"):
        create_model("labbnn", binarizer="tanh")
    with pytest.raises(ValueError, match="lab_blocks"):
        create_model("labbnn", lab_blocks="11")


def test_summary_counts_lab_as_float_work():
    sign = summarize(create_model("birealnet18", num_classes=1000), 224)
    lab = summarize(create_model("birealnet18", num_classes=1000, binarizer="lab"), 224)
    assert lab["bops"] == sign["bops"]
    assert lab["flops"] - sign["flops"] == pytest.approx(30.26e6, rel=1e-3)   # LAB on Bi-Real-18: 30.26 M float MACs
    assert lab["ops"] == lab["bops"] / 64 + lab["flops"]


def test_summary_cli(capsys):
    from minilab.summary import main
    assert main(["--arch", "birealnet18", "--totals"]) == 0
    assert "4.189 MB" in capsys.readouterr().out


def test_a_model_runs_on_an_empty_batch():
    """Convolutions, BatchNorm in eval mode, pooling and flatten all pass 0 images through, with the compiled
    kernels (where built) and on the NumPy reference ops."""
    from minilab import config
    from minilab.core.autograd import Tensor, no_grad
    from minilab.models import create_model

    model = create_model("labbnn", num_classes=10, image_size=32, width=0.25)
    model.eval()
    for kernels in (True, False):
        with config.use(kernels=kernels), no_grad():
            assert model(Tensor(np.zeros((0, 3, 32, 32), np.float32))).shape == (0, 10)
