"""Slow tests on the real Imagenette split (see conftest.py for where it is looked for); skipped cleanly when it is
absent."""
import numpy as np
import pytest

from minilab import nn
from minilab.data import Loader, load_datasets
from minilab.training.evaluation import evaluate
from minilab.models import create_model
from minilab.optim import Adam
from minilab.training.loop import train_step

pytestmark = pytest.mark.slow


def test_real_imagenette_caches_and_a_lab_bnn_learns(imagenette_root, tmp_path):
    train, val = load_datasets(imagenette_root, 32, str(tmp_path), progress=False)
    assert (len(train), len(val)) == (9469, 3925) and len(train.classes) == 10
    assert train.images.shape[1:] == (32, 32, 3)          # greyscale JPEGs became RGB
    assert np.bincount(val.labels).min() > 300
    nn.init.seed(0)
    model = create_model("labbnn", num_classes=10, width=0.25)
    opt = Adam(model.parameters())
    loader = Loader(train, 64, augmentation="padcrop", seed=0)
    for step, (x, y) in enumerate(loader.batches(0)):
        train_step(model, opt, x, y)
        if step == 150:
            break
    subset = Loader(type(val)(val.images[::4], val.labels[::4], val.classes), 100, shuffle=False)
    result = evaluate(model, subset)
    print(f"top-1 after 150 steps: {result['top1']:.3f}")
    assert result["top1"] > 0.18, f"top-1 {result['top1']:.3f} after 150 steps on real data (chance 0.10)"
