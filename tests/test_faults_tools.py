"""The newer tools (predict, plot, evaluate, bench, analyze, packed model files) at the edges: bounded searches and
decodes, files read back checked entry by entry, strict JSON, output paths and option ranges checked before any
work, and the training CLI's smaller faults (resume at --max-steps, the lock file, file modes, loader start)."""
import gc
import json
import os
import shutil
import stat
import subprocess
import sys
import warnings

import numpy as np
import pytest
from PIL import Image

from minilab import config, evaluate, plot, predict, train
from minilab.training.checkpoint import read_checkpoint, save_checkpoint
from minilab.models import create_model
from minilab.nn.module import load_npz, save_npz_atomic

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--arch", "labbnn", "--data", "synthetic", "--synthetic-size", "64", "16", "--image-size", "24",
        "--width", "0.25", "--batch-size", "16", "--epochs", "1", "--threads", "1", "--no-progress"]
MODEL = dict(arch="labbnn", num_classes=3, image_size=32, width=0.25, binarizer="lab")


def strict_loads(text):
    """json.loads that refuses NaN / Infinity, as strict parsers (and other languages) do."""
    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")
    return json.loads(text, parse_constant=refuse)


def run_main(main, argv, capsys):
    """(exit code, stdout, stderr) of a command's main run in this process; argparse's exit counts as a code."""
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(autouse=True)
def private_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("MINILAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(config, "cache_dir", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A TINY run of 3 steps: its folder (tests copy it before changing anything)."""
    out = tmp_path_factory.mktemp("tiny") / "run"
    assert train.main(TINY + ["--out", str(out), "--max-steps", "3"]) == 0
    return out


@pytest.fixture
def checkpoint(tmp_path):
    path = tmp_path / "model.npz"
    save_checkpoint(path, create_model(**MODEL), None, {"model": MODEL, "classes": ["a", "b", "c"]})
    return path


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(path)
    return path


# ---- 1: a symlink loop under a searched folder ---------------------------------------------------------------------
SEARCH = "import sys; from minilab.predict import find_images; print(sorted(find_images(sys.argv[1:])[0]))"


def test_a_symlink_loop_does_not_make_the_image_search_endless(tmp_path):
    for folder in ("a", "b"):
        (tmp_path / "photos" / folder).mkdir(parents=True)
        os.symlink("..", tmp_path / "photos" / folder / "loop")   # two loops: 2⁴⁰ paths for a search that follows
    Image.new("RGB", (8, 8)).save(tmp_path / "photos" / "a" / "x.png")
    Image.new("RGB", (8, 8)).save(tmp_path / "photos" / "b" / "y.jpg")
    photos = str(tmp_path / "photos")
    done = subprocess.run([sys.executable, "-c", SEARCH, photos, f"{photos}/**/*.png", f"{photos}/**"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    x, y = f"{photos}/a/x.png", f"{photos}/b/y.jpg"
    assert eval(done.stdout) == sorted([x, y, x, x, y])   # the folder, the pattern, everything: each file once


# ---- 2: a long thin image is refused from its header, before it is resized ----------------------------------------
LIMITED = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))   # a bug here is a MemoryError, not a swapping machine
from minilab.predict import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_one_pixel_high_strip_is_refused_before_it_is_resized(tmp_path, checkpoint, photo):
    strip = tmp_path / "strip.png"
    Image.new("RGB", (1_000_000, 1), (200, 10, 10)).save(strip)   # a few KB of PNG
    assert strip.stat().st_size < 50_000
    done = subprocess.run([sys.executable, "-c", LIMITED, str(checkpoint), str(strip), str(photo), "--float",
                           "--no-progress"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr                       # the photo is still labelled
    assert f"skipped {strip}: too large" in done.stderr and "1000000×1 pixels" in done.stderr
    assert "MemoryError" not in done.stderr and "Traceback" not in done.stderr


def test_images_over_the_pixel_limit_are_refused_from_the_header(tmp_path):
    from minilab.data.cache import read_image
    from minilab.core.validate import MAX_IMAGE_PIXELS

    big = tmp_path / "big.png"
    Image.new("1", (10_000, MAX_IMAGE_PIXELS // 10_000 + 1)).save(big)   # 1-bit: a small file
    image, why = read_image(str(big), 32)
    assert image is None and why.startswith("too large")


# ---- 3: a packed model file with an array removed ------------------------------------------------------------------
@pytest.fixture
def packed_file(tmp_path):
    if config.kernels() is None:
        pytest.skip(f"packed model files need the compiled extension ({config.reason()})")
    from minilab.engine import convert
    from minilab.engine.storage import save_packed

    path = tmp_path / "packed.npz"
    save_packed(convert(create_model(**MODEL), MODEL), str(path), ["a", "b", "c"])
    return path


@pytest.mark.parametrize("entry", ["alpha", "mean", "lab_bias", "float/"])
def test_a_packed_model_missing_an_array_is_refused_naming_it(packed_file, photo, capsys, entry):
    arrays = load_npz(str(packed_file))
    name = next(k for k in sorted(arrays) if k.endswith(entry) or k.startswith(entry))
    del arrays[name]
    save_npz_atomic(str(packed_file), arrays)
    code, out, err = run_main(predict.main, [str(packed_file), str(photo), "--no-progress"], capsys)
    assert code == 2 and f"{packed_file}: entry {name!r} is missing" in err and "Traceback" not in err
    assert out == ""


def test_a_packed_model_with_a_reshaped_or_extra_array_is_refused(packed_file, photo, capsys):
    arrays = load_npz(str(packed_file))
    name = next(k for k in sorted(arrays) if k.endswith("/alpha"))
    arrays[name] = arrays[name][:-1]
    save_npz_atomic(str(packed_file), arrays)
    code, _, err = run_main(predict.main, [str(packed_file), str(photo)], capsys)
    assert code == 2 and f"entry {name!r} is <f4" in err
    arrays[name] = load_npz(str(packed_file))[name]
    arrays["packed/extra"] = np.zeros(3, np.float32)
    save_npz_atomic(str(packed_file), arrays)
    code, _, err = run_main(predict.main, [str(packed_file), str(photo)], capsys)
    assert code == 2 and "entry 'packed/extra' is not one the file was written with" in err


def test_a_checkpoint_missing_one_optimizer_array_is_refused_on_resume(tiny_run, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(tiny_run, out)
    arrays = load_npz(str(out / "checkpoint.npz"))
    name = next(k for k in sorted(arrays) if k.startswith("optim/") and k.endswith(".m"))
    del arrays[name]                      # Adam would take zeros for it: a silently different run
    save_npz_atomic(str(out / "checkpoint.npz"), arrays)
    code, _, err = run_main(train.main, ["--resume", "--out", str(out), "--no-progress"], capsys)
    assert code == 2 and f"entry {name!r} is missing" in err and "Traceback" not in err


# ---- 4: output paths checked before the work -----------------------------------------------------------------------
def test_plot_out_that_cannot_be_written_is_refused_before_drawing(tiny_run, tmp_path, capsys):
    (tmp_path / "a_folder").mkdir()
    for bad, message in [(tmp_path / "a_folder", "is a folder"), (tmp_path / "missing" / "c.png", "does not exist"),
                         (tmp_path / "tiny_file" / "c.png", "is not a folder")]:
        (tmp_path / "tiny_file").write_text("x")
        code, out, err = run_main(plot.main, [str(tiny_run), "--out", str(bad)], capsys)
        assert code == 2 and f"--out {bad}" in err and message in err and "Traceback" not in err
        assert out == ""                  # refused before the summary, not after it


def test_evaluate_confusion_path_is_checked_before_evaluating(tiny_run, tmp_path, capsys):
    bad = tmp_path / "missing" / "confusion.png"
    code, out, err = run_main(evaluate.main, ["--checkpoint", str(tiny_run / "checkpoint.npz"), "--confusion",
                                              str(bad)], capsys)
    assert code == 2 and f"--confusion {bad}" in err and "does not exist" in err and "top-1" not in out


def test_bench_model_save_path_is_checked_before_measuring(tmp_path, capsys):
    from minilab.bench import main as bench_main

    (tmp_path / "x").mkdir()
    code, out, err = run_main(bench_main, ["model", "--image-size", "32", "--width", "0.25", "--save",
                                           str(tmp_path / "x")], capsys)
    assert code == 2 and "--save" in err and "is a folder" in err and out == ""


def test_analyze_out_that_is_a_file_is_refused_before_analysing(tmp_path, checkpoint, capsys):
    from minilab.analyze import main as analyze_main

    (tmp_path / "report").write_text("not a folder")
    code, _, err = run_main(analyze_main, ["--checkpoint", str(checkpoint), "--images", str(tmp_path),
                                           "--out", str(tmp_path / "report")], capsys)
    assert code == 2 and "is a file, not a folder" in err and "Traceback" not in err


# ---- 5: plot checks every metrics line ----------------------------------------------------------------------------
@pytest.mark.parametrize("line, message", [
    ('[1, 2]', "not a metrics record"),
    ('{"epoch": 1, "train_loss": "low", "val_loss": 1, "val_top1": 0.5, "val_top5": 1}', "'train_loss' must be"),
    ('{"epoch": 1, "train_loss": 1, "val_loss": 1, "val_top1": 50, "val_top5": 1}', "'val_top1' must be a fraction"),
    ('{"epoch": "one", "train_loss": 1, "val_loss": 1, "val_top1": 0.5, "val_top5": 1}', "'epoch' must be"),
    ('{"epoch": 1, "train_loss": 1, "val_loss": 1, "val_top1": 0.5}', "no 'val_top5' entry"),
    ('{"epoch": 1, "train_loss": NaN, "val_loss": 1, "val_top1": 0.5, "val_top5": 1}', "not a JSON record"),
    ('{"epoch": 1, "train_lo', "not a JSON record"),
])
def test_plot_refuses_a_hand_edited_metrics_line_naming_it(tmp_path, capsys, line, message):
    pytest.importorskip("matplotlib")
    good = '{"epoch": 1, "train_loss": 2.0, "val_loss": 2.1, "val_top1": 0.25, "val_top5": 0.75}'
    (tmp_path / "metrics.jsonl").write_text(good + "\n" + line + "\n")
    code, _, err = run_main(plot.main, [str(tmp_path / "metrics.jsonl"), "--out", str(tmp_path / "c.png")], capsys)
    assert code == 2 and "metrics.jsonl, line 2" in err and message in err and "Traceback" not in err


def test_plot_draws_a_run_whose_non_finite_values_were_written_as_null(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    rows = ['{"epoch": 1, "train_loss": null, "val_loss": 2.1, "val_top1": 0.25, "val_top5": 0.75, '
            '"non_finite": ["train_loss"]}',
            '{"epoch": 2, "train_loss": 1.5, "val_loss": null, "val_top1": 0.5, "val_top5": 0.75}']
    (tmp_path / "metrics.jsonl").write_text("\n".join(rows) + "\n")
    code, out, _ = run_main(plot.main, [str(tmp_path / "metrics.jsonl"), "--out", str(tmp_path / "c.png")], capsys)
    assert code == 0 and (tmp_path / "c.png").stat().st_size > 0 and "—" in out


# ---- 6: strict JSON from predict (and the other --json outputs) ----------------------------------------------------
def test_predict_json_writes_null_and_a_flag_for_non_finite_outputs(tmp_path, photo, capsys):
    model = create_model(**MODEL)
    for p in model.parameters():
        p.data[...] = np.nan
    path = tmp_path / "nan.npz"
    save_checkpoint(path, model, None, {"model": MODEL, "classes": ["a", "b", "c"]})
    code, out, _ = run_main(predict.main, [str(path), str(photo), "--float", "--json", "--top", "2"], capsys)
    document = strict_loads(out)
    assert code == 0
    assert [t["probability"] for t in document["predictions"][0]["top"]] == [None, None]
    assert document["non_finite"] == ["predictions[0].top[0].probability", "predictions[0].top[1].probability"]


def test_predict_json_of_a_sound_model_is_strict_json_without_the_flag(checkpoint, photo, capsys):
    code, out, _ = run_main(predict.main, [str(checkpoint), str(photo), "--float", "--json"], capsys)
    document = strict_loads(out)
    assert code == 0 and "non_finite" not in document
    assert abs(sum(t["probability"] for t in document["predictions"][0]["top"]) - 1) < 1e-9   # float64 softmax


def test_the_training_metrics_are_strict_json_lines(tiny_run):
    text = (tiny_run / "metrics.jsonl").read_text()
    assert all(isinstance(strict_loads(line), dict) for line in text.splitlines() if line.strip())


def test_strict_json_replaces_every_non_finite_number():
    from minilab.core.validate import loads_strict, strict_json

    record = {"a": float("nan"), "b": [1.0, float("inf"), {"c": np.float32("-inf")}], "d": np.float64(2.5)}
    document = loads_strict(strict_json(record))
    assert document == {"a": None, "b": [1.0, None, {"c": None}], "d": 2.5, "non_finite": ["a", "b[1]", "b[2].c"]}
    with pytest.raises(ValueError, match="NaN is not a JSON number"):
        loads_strict('{"a": NaN}')


# ---- 7: a labels CSV with a byte-order mark ------------------------------------------------------------------------
def test_a_labels_csv_saved_with_a_byte_order_mark_is_read(tmp_path):
    from minilab.data.imagenet import scan_imagenet, write_sample_tree

    root = write_sample_tree(str(tmp_path / "data"), per_class=1, val_per_class=2, size=(40, 30), val_layout="csv")
    csv = os.path.join(root, "LOC_val_solution.csv")
    with open(csv, encoding="utf-8") as f:
        text = f.read()
    with open(csv, "w", encoding="utf-8-sig", newline="") as f:     # what a spreadsheet writes
        f.write(text.replace("\n", "\r\n"))
    _, _, val_paths, val_labels, classes = scan_imagenet(root)
    assert len(val_paths) == 4 and sorted(val_labels) == [0, 0, 1, 1]


def test_a_labels_csv_that_is_not_utf8_is_one_clear_error(tmp_path):
    from minilab.data import DataError
    from minilab.data.imagenet import read_labels_file

    csv = tmp_path / "LOC_val_solution.csv"
    csv.write_bytes("ImageId,PredictionString\nILSVRC2012_val_1,n01440764 caf\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8 text"):
        read_labels_file(str(csv))


# ---- 8: --resume --max-steps K on a run past step K ----------------------------------------------------------------
def test_resume_with_max_steps_already_reached_trains_nothing(tiny_run, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(tiny_run, out)
    before = (out / "checkpoint.npz").read_bytes()
    code, stdout, _ = run_main(train.main, ["--resume", "--out", str(out), "--max-steps", "2", "--no-progress"],
                               capsys)
    assert code == 0 and "stopped at step 3 (--max-steps 2): nothing more to train" in stdout
    assert read_checkpoint(str(out / "checkpoint.npz"))[2]["step"] == 3
    assert (out / "checkpoint.npz").read_bytes() == before


def test_max_steps_at_the_end_of_an_epoch_stops_there(tmp_path, capsys):
    out = tmp_path / "run"      # 64 images in batches of 16: an epoch is 4 steps
    code, _, _ = run_main(train.main, TINY + ["--epochs", "2", "--max-steps", "4", "--out", str(out)], capsys)
    assert code == 0 and read_checkpoint(str(out / "checkpoint.npz"))[2]["step"] == 4


# ---- 9: loader and cache workers are not forked from a threaded process --------------------------------------------
def test_workers_start_without_forking_this_threaded_process(tmp_path, monkeypatch):
    from minilab.data.cache import build_cache
    from minilab.data.loader import ArrayDataset, Loader

    def no_fork():
        raise AssertionError("os.fork() in a process that runs threads (BLAS, OpenMP, tqdm) may deadlock the child")

    monkeypatch.setattr(os, "fork", no_fork)
    images = np.random.default_rng(0).integers(0, 255, (32, 8, 8, 3), dtype=np.uint8)
    loader = Loader(ArrayDataset(images, np.arange(32) % 2, ["a", "b"]), 8, workers=2)
    try:
        assert sum(len(y) for _, y in loader.batches(0)) == 32
    finally:
        loader.close()
    for c in "ab":
        (tmp_path / "d" / "train" / c).mkdir(parents=True)
        Image.new("RGB", (12, 12)).save(tmp_path / "d" / "train" / c / "0.png")
    build_cache(str(tmp_path / "d"), "train", 8, str(tmp_path / "c"), progress=False, workers=2)


UNGUARDED_SCRIPT = """
import numpy as np
from minilab.data.loader import ArrayDataset, Loader
print("top level ran", flush=True)
loader = Loader(ArrayDataset(np.zeros((8, 4, 4, 3), np.uint8), np.arange(8) % 2, ["a", "b"]), 4, workers=2)
print("images:", sum(len(y) for _, y in loader.batches(0)), flush=True)
loader.close()
"""


def test_a_script_without_a_main_guard_is_not_run_again_by_its_workers(tmp_path):
    (tmp_path / "script.py").write_text(UNGUARDED_SCRIPT)      # like a tutorial: no `if __name__ == "__main__"`
    done = subprocess.run([sys.executable, str(tmp_path / "script.py")], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": ROOT})
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("top level ran") == 1 and "images: 8" in done.stdout


def test_a_memory_mapped_cache_travels_to_workers_as_its_file_name(tmp_path):
    import pickle

    from minilab.data.loader import ArrayDataset

    np.save(tmp_path / "images.npy", np.arange(4 * 8 * 8 * 3, dtype=np.uint8).reshape(4, 8, 8, 3))
    data = ArrayDataset(np.load(tmp_path / "images.npy", mmap_mode="r"), [0, 1, 0, 1], ["a", "b"])
    sent = pickle.dumps(data)
    assert len(sent) < 1000                                    # not the pixels
    copy = pickle.loads(sent)
    assert isinstance(copy.images, np.memmap) and np.array_equal(copy.images, data.images)


# ---- 10: the run folder's lock file is closed -----------------------------------------------------------------------
@pytest.mark.parametrize("fails", [False, True])
def test_the_run_lock_file_is_closed(tmp_path, capsys, fails):
    argv = TINY + ["--out", str(tmp_path / "run"), "--max-steps", "1"] + (["--data", str(tmp_path / "none")]
                                                                          if fails else [])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        code, _, _ = run_main(train.main, argv, capsys)
        gc.collect()
    assert code == (2 if fails else 0)
    assert not [w for w in caught if issubclass(w.category, ResourceWarning) and ".lock" in str(w.message)]


# ---- 11: checkpoints and model files follow the umask --------------------------------------------------------------
@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_checkpoints_and_packed_models_follow_the_umask(tmp_path, capsys, umask_022):
    out = tmp_path / "run"
    assert run_main(train.main, TINY + ["--out", str(out), "--max-steps", "1"], capsys)[0] == 0
    for name in ("checkpoint.npz", "metrics.jsonl"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o644, name
    model = tmp_path / "m.npz"
    save_npz_atomic(str(model), {"w": np.zeros(2)})
    assert stat.S_IMODE(model.stat().st_mode) == 0o644


# ---- 12: evaluate a synthetic run on its own validation set --------------------------------------------------------
def test_evaluate_uses_the_runs_own_synthetic_validation_set(tiny_run, capsys):
    code, out, err = run_main(evaluate.main, ["--checkpoint", str(tiny_run / "checkpoint.npz")], capsys)
    assert code == 0, err
    assert "(16 images)" in out                          # --synthetic-size 64 16, not the default 2000 500


# ---- 13: absurd option values: one line naming the option and its range --------------------------------------------
def _bench(argv):
    from minilab.bench import main
    return main(argv)


def _analyze(argv):
    from minilab.analyze import main
    return main(argv)


@pytest.mark.parametrize("main, argv, message", [
    (train.main, TINY + ["--width", "1e6"], "--width must be a positive number, at most 4.0"),
    (train.main, TINY + ["--image-size", "100000"], "--image-size must be between 16 and 512"),
    (train.main, TINY + ["--batch-size", "0"], "--batch-size must be at least 2"),
    (train.main, TINY + ["--batch-size", "100000"], "at most 4096"),
    (train.main, TINY + ["--lr", "-0.1"], "--lr must be a positive number"),
    (train.main, TINY + ["--synthetic-size", "1000000000", "10"], "--synthetic-size: 1,000,000,010 generated"),
    (predict.main, ["m.npz", "x.png", "--batch-size", "0"], "argument --batch-size: must be between 1 and 1024"),
    (predict.main, ["m.npz", "x.png", "--top", "-1"], "argument --top: must be between 1 and 1000"),
    (evaluate.main, ["--checkpoint", "c.npz", "--batch-size", "0"], "argument --batch-size: must be between 1"),
    (_bench, ["train", "--width", "1e6"], "argument --width: must be a number between 0 (exclusive) and 4.0"),
    (_bench, ["train", "--batch-size", "0"], "argument --batch-size: must be between 2 and 4096"),
    (_bench, ["model", "--image-size", "100000"], "argument --image-size: must be between 16 and 512"),
    (_bench, ["model", "--width", "nan"], "argument --width: must be a number"),
    (_bench, ["scaling", "--ranks", "0"], "argument --ranks: must be between 1"),
    (_bench, ["decode", "--seconds", "-1"], "argument --seconds: must be a number"),
    (_bench, ["kernels", "--repeat", "ten"], "argument --repeat: expected a whole number"),
    (_analyze, ["--checkpoint", "c.npz", "--images", ".", "--layers", "0"], "argument --layers: must be between 1"),
])
def test_absurd_option_values_are_one_line_naming_the_option(tmp_path, capsys, main, argv, message):
    out = tmp_path / "run"
    if main is train.main:
        argv = argv + ["--out", str(out)]
    code, _, err = run_main(main, argv, capsys)
    assert code == 2 and message in err and "Traceback" not in err and "MemoryError" not in err
    assert not out.exists()                              # before anything was created
