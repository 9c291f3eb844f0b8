"""Every figure function draws a matplotlib PNG of the promised size, different data give different pictures, the
training CLI keeps curves.png up to date — and without matplotlib everything still runs and says how to get it."""
import importlib.util
import json
import sys

import numpy as np
import pytest
from PIL import Image

from minilab.training import metrics
from minilab.analysis import plotting
from minilab.analysis.figures import feature_figure, to_gray
from minilab.analysis.curves import curves_figure
from minilab.training.metrics import write_run_curves
from minilab.plot import main as plot_main

needs_matplotlib = pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None,
                                      reason="matplotlib is not installed (the optional 'plot' extra)")


def rows(top1_end, epochs=4):
    return [{"epoch": e, "train_loss": 2.0 / e, "val_loss": 2.2 / e, "val_top1": top1_end * e / epochs,
             "val_top5": min(1.0, 2 * top1_end * e / epochs), "step": 10 * e} for e in range(1, epochs + 1)]


def write_run(folder, top1_end, epochs=4):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows(top1_end, epochs)))
    return folder


def assert_matplotlib_png(path, size=None):
    image = Image.open(path)
    assert image.format == "PNG" and image.info["Software"].startswith("Matplotlib")
    if size is not None:
        assert image.size == size
    return image


def figure_calls(tmp_path):
    """(name, callable writing one PNG, its expected pixel size or None) for every shared figure function."""
    rng = np.random.default_rng(0)
    maps = rng.standard_normal((4, 6, 6))
    binary = np.where(maps > 0, 1.0, -1.0)
    px = lambda size: (round(size[0] * plotting.DPI), round(size[1] * plotting.DPI))   # noqa: E731
    return [
        ("curves", lambda p: curves_figure({"lab": rows(0.7), "sign": rows(0.5)}, p), px(plotting.SIZES["wide"])),
        ("bar_chart", lambda p: plotting.bar_chart({"a": 1.0, "b": 2.0}, p, "t", "x"), None),
        ("grouped bars", lambda p: plotting.bar_chart(None, p, "t", "x", series={"s": {"a": 1}, "l": {"a": 2}}),
         None),
        ("breakdown", lambda p: plotting.breakdown_figure({"binary conv": 2.0, "LAB depthwise": 1.0, "other": 0.0},
                                                          p, "title"), None),
        ("confusion", lambda p: plotting.confusion_figure(np.array([[3, 1], [0, 4]]), ["tench", "church"], p, "t"),
         None),
        ("feature rows", lambda p: feature_figure([("lab", maps, binary), ("sign", maps[::-1], binary)], p), None),
        ("binarizer table", lambda p: feature_figure([("sign", maps, binary), ("lab", maps, -binary)], p, 3), None),
        ("draw", lambda p: plotting.draw(p, lambda fig: fig.add_subplot().plot([0, 1], [1, 0])),
         px(plotting.SIZES["single"])),
    ]


@needs_matplotlib
def test_every_figure_function_writes_a_matplotlib_png_of_the_promised_size(tmp_path):
    for name, call, size in figure_calls(tmp_path):
        path = tmp_path / f"{name.replace(' ', '_')}.png"
        assert call(str(path)) == str(path), name
        image = assert_matplotlib_png(path, size)
        assert image.size[0] >= 400 and image.size[1] >= 300, name


@needs_matplotlib
def test_pictures_differ_exactly_when_the_data_differ(tmp_path):
    a, b, c = (str(tmp_path / f"{k}.png") for k in "abc")
    curves_figure({"lab": rows(0.7)}, a)
    curves_figure({"lab": rows(0.7)}, b)
    curves_figure({"lab": rows(0.6)}, c)
    pixels = [np.asarray(Image.open(p)) for p in (a, b, c)]
    assert np.array_equal(pixels[0], pixels[1]) and not np.array_equal(pixels[0], pixels[2])


def test_a_constant_plus_one_map_is_white_and_a_constant_minus_one_map_black():
    assert (to_gray(np.ones((3, 3))) == 255).all() and (to_gray(-np.ones((3, 3))) == 0).all()
    assert to_gray(np.array([[0.0, 2.0]])).tolist() == [[0, 255]]


def test_jumps_lift_the_pen():
    x = np.linspace(-1, 1, 5)
    bx, by = plotting.break_at_jumps(x, np.where(x >= 0, 1.0, -1.0))
    assert len(bx) == 6 and np.isnan(by[2]) and by[3] == 1.0 and by[1] == -1.0


@needs_matplotlib
def test_plot_cli_draws_two_runs_and_prints_their_numbers(tmp_path, capsys):
    lab, sign = write_run(tmp_path / "lab", 0.7), write_run(tmp_path / "sign", 0.5, epochs=6)
    out = tmp_path / "both.png"
    assert plot_main([str(lab), str(sign / "metrics.jsonl"), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "lab" in text and "sign" in text and "70.00" in text and f"wrote {out}" in text
    assert_matplotlib_png(out, (1500, 600))
    assert plot_main([str(tmp_path / "nowhere")]) == 2
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "metrics.jsonl").write_text("{not json\n")
    assert plot_main([str(tmp_path / "bad")]) == 2
    assert "line 1" in capsys.readouterr().err


@needs_matplotlib
def test_training_writes_the_runs_own_curves_every_epoch(tmp_path):
    from minilab.train import main as train

    out = tmp_path / "run"
    assert train(["--arch", "labbnn", "--data", "synthetic", "--image-size", "32", "--width", "0.25", "--epochs",
                  "1", "--synthetic-size", "32", "16", "--out", str(out), "--no-progress"]) == 0
    first = np.asarray(Image.open(out / "curves.png"))
    assert_matplotlib_png(out / "curves.png")
    assert train(["--resume", "--epochs", "2", "--out", str(out), "--no-progress"]) == 0
    assert not np.array_equal(first, np.asarray(Image.open(out / "curves.png")))   # redrawn with epoch 2
    assert write_run_curves(str(tmp_path / "empty")) is None


@pytest.fixture
def no_matplotlib(monkeypatch):
    """Make `import matplotlib` fail as it does where the optional extra is not installed."""
    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setattr(metrics, "_missing_said", False)      # restored afterwards: later tests draw again


def test_without_matplotlib_figures_are_skipped_with_one_line_and_the_numbers_still_print(tmp_path, capsys,
                                                                                          no_matplotlib):
    for name, call, _ in figure_calls(tmp_path):
        path = tmp_path / "x.png"
        assert call(str(path)) is None and not path.exists(), name
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and 'pip install -e ".[plot]"' in err and str(path) in err, name
    lab = write_run(tmp_path / "lab", 0.7)
    assert plot_main([str(lab), "--out", str(tmp_path / "c.png")]) == 1
    captured = capsys.readouterr()
    assert "70.00" in captured.out and 'pip install -e ".[plot]"' in captured.err
    assert write_run_curves(str(lab)) is None


def test_without_matplotlib_training_and_evaluate_still_run(tmp_path, capsys, no_matplotlib):
    from minilab.evaluate import main as evaluate
    from minilab.train import main as train

    out = tmp_path / "run"
    assert train(["--arch", "labbnn", "--data", "synthetic", "--image-size", "32", "--width", "0.25", "--epochs",
                  "1", "--synthetic-size", "32", "16", "--out", str(out), "--no-progress"]) == 0
    assert (out / "checkpoint.npz").exists() and not (out / "curves.png").exists()
    assert evaluate(["--checkpoint", str(out / "checkpoint.npz"), "--confusion", str(tmp_path / "c.png")]) == 0
    captured = capsys.readouterr()
    assert "per-class top-1 accuracy" in captured.out and "texture0" in captured.out
    assert not (tmp_path / "c.png").exists() and "matplotlib" in captured.err


@needs_matplotlib
def test_bench_model_draws_its_breakdown_with_matplotlib_and_saves_the_class_names(tmp_path, capsys):
    from minilab import config
    from minilab.bench import main
    from minilab.training.checkpoint import save_checkpoint
    from minilab.data.classnames import class_record
    from minilab.engine.storage import load_npz, packed_record
    from minilab.models import create_model

    if config.kernels() is None:
        pytest.skip(f"bench model times the packed engine, which needs the compiled extension ({config.reason()})")
    model_config = dict(arch="labbnn", num_classes=2, image_size=32, width=0.25, binarizer="lab",
                        lab_blocks="1111")
    save_checkpoint(tmp_path / "c.npz", create_model(**model_config), None, {"model": model_config,
                                                                       **class_record(["n01440764", "cats"])})
    assert main(["model", "--checkpoint", str(tmp_path / "c.npz"), "--runs", "2", "--float-runs", "1", "--plot",
                 str(tmp_path / "f.png"), "--save", str(tmp_path / "m.npz")]) == 0
    assert f"wrote {tmp_path / 'f.png'}" in capsys.readouterr().out
    assert_matplotlib_png(tmp_path / "f.png")
    record = packed_record(load_npz(tmp_path / "m.npz"), "m.npz")
    assert record["classes"] == ["n01440764", "cats"] and record["class_names"] == ["tench", "cats"]
