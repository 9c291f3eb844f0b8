"""Class names travel with the model; `python -m minilab.predict` labels images exactly as `evaluate` does."""
import json

import numpy as np
import pytest
from PIL import Image

from minilab.core import config
from minilab.training.checkpoint import load_model_from_checkpoint, model_classes, read_checkpoint, save_checkpoint
from minilab.data import Loader, load_datasets, scan_image_folder
from minilab.data.classnames import class_record, classes_of, human_names, imagenet_names
from minilab.training.evaluation import evaluate
from minilab.evaluate import main as evaluate_main
from minilab.models import create_model
from minilab.predict import main as predict_main
from minilab.train import main as train_main

WNIDS = ("n01440764", "n02102040", "n03888257")        # tench, English springer, parachute


def write_images(root, split, per_class, seed):
    """Three classes of 40×52 images, each class with its own colour bias, so a model can tell them apart."""
    rng = np.random.default_rng(seed)
    for label, wnid in enumerate(WNIDS):
        folder = root / split / wnid
        folder.mkdir(parents=True)
        for i in range(per_class):
            image = rng.integers(0, 160, (40, 52, 3)).astype(np.uint8)
            image[..., label] += 90
            Image.fromarray(image).save(folder / f"{i}.png")


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A short LAB-BNN run (two epochs, enough to predict all three classes) on a three-class folder named by
    ImageNet wnids: (run dir, data root, cache)."""
    tmp = tmp_path_factory.mktemp("run")
    root = tmp / "data"
    write_images(root, "train", 12, 0)
    write_images(root, "val", 5, 1)
    out, cache = tmp / "lab", tmp / "cache"
    assert train_main(["--arch", "labbnn", "--data", str(root), "--image-size", "32", "--width", "0.25",
                       "--epochs", "2", "--batch-size", "6", "--out", str(out), "--cache-dir", str(cache),
                       "--no-progress"]) == 0
    return out, root, cache


def test_the_imagenet_table_names_all_1000_classes_and_imagenettes_ten():
    names = imagenet_names()
    assert len(names) == 1000 and all(w.startswith("n") and len(w) == 9 for w in names)
    assert list(names) == sorted(names)                      # the standard index order is the sorted wnids
    assert human_names(["n01440764", "n03028079", "n03417042"]) == ["tench", "church", "garbage truck"]
    assert human_names(["cats", "n99999999"]) == ["cats", "n99999999"]   # a folder's own name otherwise


def test_new_checkpoints_carry_their_class_ids_and_names(trained_run):
    out, _, _ = trained_run
    _, _, record = read_checkpoint(str(out / "checkpoint.npz"))
    assert record["classes"] == list(WNIDS)
    assert record["class_names"] == ["tench", "English springer", "parachute"]
    classes, names, note = model_classes(record, "x.npz")
    assert classes == list(WNIDS) and names[0] == "tench" and note is None


def test_old_checkpoints_without_names_load_with_a_clear_note(tmp_path, capsys):
    model_config = dict(arch="labbnn", num_classes=3, image_size=32, width=0.25, binarizer="lab")
    path = tmp_path / "old.npz"
    save_checkpoint(path, create_model(**model_config), None, {"model": model_config})
    model, record = load_model_from_checkpoint(path)
    classes, names, note = model_classes(record, str(path))
    assert classes == ["0", "1", "2"] and names == ["class 0", "class 1", "class 2"]
    assert str(path) in note and "does not record its class names" in note
    image = tmp_path / "a.png"
    Image.fromarray(np.full((40, 40, 3), 90, np.uint8)).save(image)
    assert predict_main([str(path), str(image), "--top", "2", "--float"]) == 0
    captured = capsys.readouterr()
    assert "does not record its class names" in captured.err and "class " in captured.out
    # a record whose class list does not fit the model is not trusted either
    assert classes_of({"classes": ["a", "b"]}, 3, "m.npz")[2] is not None


def predictions_by_path(argv, capsys):
    assert predict_main(argv + ["--json", "--no-progress"]) == 0
    document = json.loads(capsys.readouterr().out)
    return {p["image"]: p["top"] for p in document["predictions"]}, document


@pytest.fixture(scope="module")
def stream_run(tmp_path_factory):
    """A short run trained with --input stream on 200×150 JPEGs in ImageNet's layout, at 32 px (the JPEG decoder
    could decode those at ¼ scale): (run dir, data root, cache)."""
    from minilab.data.imagenet import write_sample_tree

    tmp = tmp_path_factory.mktemp("stream")
    root = write_sample_tree(str(tmp / "data"), classes=WNIDS, per_class=4, val_per_class=3, size=(200, 150))
    out, cache = tmp / "lab", tmp / "cache"
    assert train_main(["--arch", "labbnn", "--data", root, "--input", "stream", "--image-size", "32", "--width",
                       "0.25", "--epochs", "1", "--batch-size", "4", "--out", str(out), "--cache-dir", str(cache),
                       "--no-progress"]) == 0
    return out, tmp / "data", cache


@pytest.mark.parametrize("source", ["cache", "stream"])
@pytest.mark.parametrize("engine", ["packed", "float"])
def test_predict_equals_evaluate_on_the_same_images(request, source, engine, capsys):
    """predict's probabilities are the softmax of the logits `evaluate` computes on the run's own validation
    data (--input cache or stream, as the run was trained), image for image."""
    from minilab.core.autograd import no_grad
    from minilab.predict import softmax

    if engine == "packed" and config.kernels() is None:
        pytest.skip(f"the packed engine needs the compiled extension ({config.reason()})")
    out, root, cache = request.getfixturevalue("trained_run" if source == "cache" else "stream_run")
    capsys.readouterr()                      # the fixture's training log, when it ran inside this test
    checkpoint = str(out / "checkpoint.npz")
    model, record = load_model_from_checkpoint(checkpoint)
    assert record["args"]["input"] == source
    _, val = load_datasets(str(root), 32, str(cache), progress=False, input=source)
    loader = Loader(val, 8, shuffle=False)
    result = evaluate(model, loader)
    model.eval()
    with no_grad():
        expected = softmax(np.concatenate([model(x).data for x, _ in loader.batches(0)]))
    if source == "stream":
        paths, labels = list(val.paths), val.labels.tolist()
    else:
        paths, labels, _ = scan_image_folder(str(root), "val", list(WNIDS))
    assert result["labels"].tolist() == labels                              # the loader's order is the files'
    argv = [checkpoint, str(root / "val"), "--top", "3", "--batch-size", "8"] + (["--float"] if engine == "float"
                                                                                  else [])
    predicted, document = predictions_by_path(argv, capsys)
    assert document["engine"].startswith(engine)
    assert sorted(predicted) == sorted(paths)
    top1 = [predicted[p][0]["index"] for p in paths]
    assert top1 == result["predictions"].tolist()
    if source == "cache":
        assert len(set(top1)) > 1                                           # not one class for everything
    for path, want in zip(paths, expected):
        got = np.zeros(3)
        for t in predicted[path]:
            got[t["index"]] = t["probability"]
        # probabilities (float64 softmax) lie in [0, 1]: an absolute floor has a fixed scale here
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7, err_msg=path)
    first = predicted[paths[0]]
    assert [t["class"] for t in first] == [WNIDS[t["index"]] for t in first]
    assert first[0]["name"] == human_names([first[0]["class"]])[0]
    probabilities = [t["probability"] for t in first]
    assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1 + 1e-9


@pytest.mark.skipif(config.kernels() is None, reason="the packed engine needs the compiled extension")
def test_packed_and_float_predictions_have_the_same_probabilities(trained_run, capsys):
    out, root, _ = trained_run
    argv = [str(out / "checkpoint.npz"), str(root / "val"), "--top", "3", "--batch-size", "8"]
    packed, _ = predictions_by_path(argv, capsys)
    floating, _ = predictions_by_path(argv + ["--float"], capsys)
    assert packed == floating        # the engine's logits equal the float graph's in eval mode, bit for bit


def test_predict_takes_files_globs_and_folders_and_skips_unreadable_images(trained_run, tmp_path, capsys):
    out, root, _ = trained_run
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    one = str(root / "val" / WNIDS[0] / "0.png")
    argv = [str(out / "checkpoint.npz"), one, str(root / "val" / WNIDS[1] / "*.png"), str(tmp_path / "broken.jpg"),
            str(tmp_path / "missing.png"), "--top", "2"]
    assert predict_main(argv + ["--no-progress"]) == 0
    captured = capsys.readouterr()
    assert captured.out.count(".png\n") == 6                         # one file + five from the glob
    assert "tench (n01440764)" in captured.out or "English springer (n02102040)" in captured.out
    assert "skipped " + str(tmp_path / "broken.jpg") + ": not an image format Pillow reads" in captured.err
    assert "missing.png: no such file" in captured.err
    if config.kernels() is not None:
        assert "running on the packed engine" in captured.err
    else:                                # no compiled extension: the float graph, and it says why
        assert "running on the float graph" in captured.err and "using the float graph instead" in captured.err
    assert predict_main([str(out / "checkpoint.npz"), str(tmp_path / "broken.jpg")]) == 2
    assert predict_main([str(tmp_path / "nothing.npz"), one]) == 2


def test_folders_skip_hidden_files_and_folders(trained_run, tmp_path, capsys):
    out, root, _ = trained_run
    photos = tmp_path / "photos"
    (photos / ".ipynb_checkpoints").mkdir(parents=True)
    (photos / "._0.png").write_bytes(b"\0\0AppleDouble")                  # macOS metadata twin
    Image.open(root / "val" / WNIDS[0] / "0.png").save(photos / "0.png")
    Image.open(root / "val" / WNIDS[0] / "1.png").save(photos / ".ipynb_checkpoints" / "1.png")
    predicted, document = predictions_by_path([str(out / "checkpoint.npz"), str(photos)], capsys)
    assert list(predicted) == [str(photos / "0.png")] and document["skipped"] == []


def test_threads_must_be_at_least_one(trained_run, capsys):
    out, root, _ = trained_run
    with pytest.raises(SystemExit) as exit_:       # refused by the argument parser, before the model is read
        predict_main([str(out / "checkpoint.npz"), str(root / "val"), "--threads", "0"])
    assert exit_.value.code == 2 and "argument --threads: must be between 1 and" in capsys.readouterr().err


@pytest.mark.skipif(config.kernels() is None, reason="the packed engine needs the compiled extension")
def test_packed_model_files_store_the_class_names(trained_run, tmp_path, capsys):
    import copy

    from minilab.engine import convert, save_packed

    out, root, _ = trained_run
    model, record = load_model_from_checkpoint(out / "checkpoint.npz")
    packed = convert(copy.deepcopy(model), record["model"])
    save_packed(packed, tmp_path / "named.npz", record["classes"])
    save_packed(packed, tmp_path / "unnamed.npz")
    image = str(root / "val" / WNIDS[2] / "1.png")
    named, document = predictions_by_path([str(tmp_path / "named.npz"), image], capsys)
    assert document["engine"].startswith("packed") and named[image][0]["name"] in ("tench", "English springer",
                                                                                     "parachute")
    assert predict_main([str(tmp_path / "unnamed.npz"), image]) == 0
    assert "does not record its class names" in capsys.readouterr().err
    assert predict_main([str(tmp_path / "named.npz"), image, "--float"]) == 2
    assert "Pass the training checkpoint for --float" in capsys.readouterr().err


def test_evaluate_prints_per_class_accuracy_and_draws_the_confusion_matrix(trained_run, tmp_path, capsys):
    out, root, cache = trained_run
    png = tmp_path / "confusion.png"
    assert evaluate_main(["--checkpoint", str(out / "checkpoint.npz"), "--data", str(root), "--cache-dir",
                          str(cache), "--confusion", str(png)]) == 0
    text = capsys.readouterr().out
    assert "per-class top-1 accuracy" in text
    for name, wnid in zip(("tench", "English springer", "parachute"), WNIDS):
        assert f"{name} ({wnid})" in text and "(5 images)" in text
    if _has_matplotlib():
        assert Image.open(png).info["Software"].startswith("Matplotlib")


def test_class_record_is_what_train_stores():
    assert class_record(["b", "n01440764"]) == {"classes": ["b", "n01440764"], "class_names": ["b", "tench"]}


def _has_matplotlib():
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None
