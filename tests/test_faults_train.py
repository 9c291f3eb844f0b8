"""The training and evaluation CLIs under faults and bad input: run folders are never destroyed, options are
checked before any work, --resume is explicit about options, dead workers and signals end a run after saving,
environmental errors are one line, malformed files are named."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from minilab import evaluate, train
from minilab.training.checkpoint import read_checkpoint
from minilab.nn.module import load_npz, save_npz_atomic

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--arch", "labbnn", "--data", "synthetic", "--synthetic-size", "64", "16", "--image-size", "24",
        "--width", "0.25", "--batch-size", "16", "--epochs", "1", "--threads", "1", "--no-progress"]


@pytest.fixture(autouse=True)
def no_imagenette(monkeypatch, tmp_path):
    """Caches go to this test's folder, for this process and for the CLIs it starts."""
    from minilab.core import config

    monkeypatch.setenv("MINILAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(config, "cache_dir", str(tmp_path / "cache"))


def cli(args, capsys):
    """(exit code, stdout, stderr) of `python -m minilab.train args`, run in this process."""
    try:
        code = train.main(args)
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def folder_data(root, classes=("cat", "dog"), per_class=(9, 3)):
    rng = np.random.default_rng(1)
    for split, n in zip(("train", "val"), per_class):
        for c in classes:
            os.makedirs(root / split / c, exist_ok=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 255, (28, 28, 3), dtype=np.uint8)).save(root / split / c / f"{i}.png")
    return root


# ---- item 1: a new run never destroys the previous one -----------------------------------------------------------
def test_second_run_in_the_same_folder_is_refused_and_changes_nothing(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert cli(TINY + ["--out", out], capsys)[0] == 0
    before = {name: open(os.path.join(out, name), "rb").read() for name in ("checkpoint.npz", "metrics.jsonl")}
    code, _, err = cli(TINY + ["--out", out, "--seed", "3"], capsys)
    assert code == 2 and "already holds a run" in err and f"--resume --out {out}" in err and "--out" in err
    after = {name: open(os.path.join(out, name), "rb").read() for name in before}
    assert after == before


def test_a_run_that_stopped_before_its_first_checkpoint_does_not_block_the_folder(tmp_path, capsys):
    out = str(tmp_path / "r")
    code, _, err = cli(TINY + ["--lr", "1e38", "--optimizer", "sgd", "--out", out], capsys)   # NaN at step 1
    assert code == 3 and not os.path.exists(os.path.join(out, "checkpoint.npz"))
    assert cli(TINY + ["--out", out], capsys)[0] == 0


def test_out_that_is_a_file_is_one_clear_line(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    code, _, err = cli(TINY + ["--out", str(tmp_path / "f")], capsys)
    assert code == 2 and "is a file, not a folder" in err and "Traceback" not in err


def test_two_trainings_in_one_folder_at_once_are_refused(tmp_path, capsys):
    from minilab.training.run_dir import open_run_dir

    lock = open_run_dir(str(tmp_path / "run"), resume=False)   # as a running training holds it
    try:
        code, _, err = cli(TINY + ["--out", str(tmp_path / "run")], capsys)
        assert code == 2 and "another training is running" in err
    finally:
        lock.close()


# ---- item 3: a training set of 1 (mod batch size) ----------------------------------------------------------------
def test_last_batch_of_one_image_is_left_out_not_a_crash(tmp_path, capsys):
    args = TINY + ["--synthetic-size", "33", "8", "--out", str(tmp_path / "r")]   # 2 × 16 + 1
    code, out, err = cli(args, capsys)
    assert code == 0, err
    assert "1 epochs × 2 steps" in out
    assert read_checkpoint(str(tmp_path / "r" / "checkpoint.npz"))[2]["step"] == 2


# ---- item 7: every option checked at parse time ------------------------------------------------------------------
@pytest.mark.parametrize("option, value, message", [
    ("--epochs", "0", "--epochs must be at least 1"),
    ("--width", "0", "--width must be a positive"),
    ("--width", "-1", "--width must be a positive"),
    ("--lr", "-1", "--lr must be a positive"),
    ("--lr", "nan", "--lr must be a positive"),
    ("--threads", "999", "--threads must be between 1 and"),
    ("--max-steps", "0", "--max-steps must be at least 1"),
    ("--checkpoint-every", "-1", "--checkpoint-every must be 0"),
    ("--batch-size", "1", "--batch-size must be at least 2"),
    ("--workers", "-1", "--workers must be between 0"),
])
def test_bad_numbers_are_refused_at_parse_time(tmp_path, capsys, option, value, message):
    code, _, err = cli(TINY + [option, value, "--out", str(tmp_path / "r")], capsys)
    assert code == 2 and message in err
    assert not (tmp_path / "r").exists()   # refused before anything was created


def test_single_validation_synthetic_size_zero_is_refused(tmp_path, capsys):
    code, _, err = cli(TINY + ["--synthetic-size", "64", "0", "--out", str(tmp_path / "r")], capsys)
    assert code == 2 and "--synthetic-size needs at least" in err


@pytest.mark.parametrize("size", [33, 50, 100, 112])
def test_image_sizes_the_model_cannot_take_are_refused_before_caching(tmp_path, capsys, size):
    data = folder_data(tmp_path / "d")
    code, _, err = cli(TINY + ["--data", str(data), "--image-size", str(size), "--out", str(tmp_path / "r")], capsys)
    assert code == 2 and f"--image-size {size} does not fit labbnn" in err and "nearest sizes that work" in err
    assert not (tmp_path / "cache" / "preprocessed").exists()


def test_image_size_check_names_a_size_that_works():
    from minilab.models.image_sizes import check_image_size, image_size_problem

    with pytest.raises(ValueError) as error:
        check_image_size("labbnn", 100)
    sizes = [int(s) for s in str(error.value).split("nearest sizes that work are ")[1].split(" px")[0].split(" and ")]
    assert sizes and all(image_size_problem("labbnn", s) is None for s in sizes)
    check_image_size("labbnn", 64)
    with pytest.raises(ValueError, match="between 16 and 512"):
        check_image_size("labbnn", 8)


# ---- item 5: --resume is explicit about options ------------------------------------------------------------------
def test_resume_refuses_a_different_run_defining_option(tmp_path, capsys):
    out = str(tmp_path / "r")
    assert cli(TINY + ["--out", out, "--max-steps", "2"], capsys)[0] == 0
    code, _, err = cli(["--resume", "--out", out, "--width", "0.5", "--no-progress"], capsys)
    assert code == 2 and "--width 0.5 (the run has 0.25)" in err
    code, _, err = cli(["--resume", "--out", out, "--width", "0.25", "--arch", "labbnn", "--no-progress"], capsys)
    assert code == 0, err   # repeating the run's own values is fine


def test_resume_honours_and_prints_changeable_options(tmp_path, capsys):
    out = str(tmp_path / "r")
    assert cli(TINY + ["--out", out, "--max-steps", "1"], capsys)[0] == 0
    code, stdout, err = cli(["--resume", "--out", out, "--checkpoint-every", "2", "--epochs", "2", "--max-steps",
                             "3", "--no-progress"], capsys)
    assert code == 0, err
    assert "--checkpoint-every 2 (was 0)" in stdout and "--epochs 2 (was 1)" in stdout
    assert read_checkpoint(os.path.join(out, "checkpoint.npz"))[2]["args"]["checkpoint_every"] == 2


def test_resume_keeps_sync_bn_unless_changed(tmp_path, capsys):
    """--sync-bn is the run's own on resume unless given; a change is printed."""
    def saved():
        return read_checkpoint(os.path.join(out, "checkpoint.npz"))[2]["args"]["sync_bn"]

    out = str(tmp_path / "r")
    more = ["--epochs", "3", "--no-progress"]
    assert cli(TINY + ["--out", out, "--max-steps", "1", "--sync-bn"], capsys)[0] == 0
    code, stdout, err = cli(["--resume", "--out", out, "--max-steps", "2"] + more, capsys)
    assert code == 0 and saved() is True and "sync-bn" not in stdout, err
    code, stdout, err = cli(["--resume", "--out", out, "--max-steps", "3", "--no-sync-bn"] + more, capsys)
    assert code == 0 and saved() is False and "--sync-bn False (was True)" in stdout, err


def test_resume_after_the_data_moved_and_from_another_directory(tmp_path, capsys, monkeypatch):
    folder_data(tmp_path / "d")
    monkeypatch.chdir(tmp_path)
    out = str(tmp_path / "r")
    args = ["--data", "d", "--image-size", "24", "--width", "0.25", "--batch-size", "4", "--epochs", "2",
            "--threads", "1", "--no-progress", "--out", out, "--max-steps", "2"]
    assert cli(args, capsys)[0] == 0
    assert read_checkpoint(os.path.join(out, "checkpoint.npz"))[2]["args"]["data"] == str(tmp_path / "d")
    os.rename(tmp_path / "d", tmp_path / "moved")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    code, stdout, err = cli(["--resume", "--out", out, "--data", "../moved", "--no-progress"], capsys)
    assert code == 0, err
    assert f"--data {tmp_path / 'moved'}" in stdout and "done:" in stdout


def test_resume_with_other_data_is_refused(tmp_path, capsys):
    folder_data(tmp_path / "d")
    folder_data(tmp_path / "other", classes=("cat", "cow"))
    out = str(tmp_path / "r")
    args = ["--data", str(tmp_path / "d"), "--image-size", "24", "--width", "0.25", "--batch-size", "4",
            "--threads", "1", "--no-progress", "--out", out, "--max-steps", "1"]
    assert cli(args, capsys)[0] == 0
    code, _, err = cli(["--resume", "--out", out, "--data", str(tmp_path / "other"), "--no-progress"], capsys)
    assert code == 2 and "is not the data this run was trained on" in err


# ---- item 2: dead workers and signals end the run after saving ---------------------------------------------------
def _children(pid):
    """The loader workers of process `pid`: its children but multiprocessing's resource tracker (a helper of every
    process that starts workers as fresh interpreters)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            children = [int(p) for p in f.read().split()]
    except OSError:
        return []
    workers = []
    for child in children:
        try:
            with open(f"/proc/{child}/cmdline", "rb") as f:
                if b"resource_tracker" not in f.read():
                    workers.append(child)
        except OSError:
            pass
    return workers


def _start(args, tmp_path):
    env = dict(os.environ, MINILAB_CACHE=str(tmp_path / "cache"))
    return subprocess.Popen([sys.executable, "-m", "minilab.train", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(condition, seconds=120):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


LONG = TINY + ["--synthetic-size", "4000", "16", "--checkpoint-every", "2", "--workers", "2"]


def test_killed_loader_worker_ends_the_run_with_a_message_and_a_checkpoint(tmp_path):
    out = tmp_path / "r"
    proc = _start(LONG + ["--out", str(out)], tmp_path)
    try:
        assert _wait_for(lambda: (out / "checkpoint.npz").exists() and _children(proc.pid))
        os.kill(_children(proc.pid)[0], signal.SIGKILL)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 3, err
    assert "worker process died" in err and "Progress was saved" in err and "Traceback" not in err


def test_sigterm_ends_a_run_whose_workers_are_stuck(tmp_path):
    out = tmp_path / "r"
    proc = _start(LONG + ["--out", str(out)], tmp_path)
    try:
        assert _wait_for(lambda: (out / "checkpoint.npz").exists() and len(_children(proc.pid)) >= 2)
        workers = _children(proc.pid)
        for pid in workers:
            os.kill(pid, signal.SIGSTOP)   # the trainer now waits on workers that never answer
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        stdout, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted: saved" in stdout


# ---- item 8: environmental errors ---------------------------------------------------------------------------------
DISK_FULL = """
import resource, signal, sys
from minilab import train
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))   # checkpoints no longer fit: a full disk
sys.exit(train.main(sys.argv[1:]))
"""


def test_full_disk_while_checkpointing_is_one_clear_line(tmp_path):
    env = dict(os.environ, MINILAB_CACHE=str(tmp_path / "cache"))
    done = subprocess.run([sys.executable, "-c", DISK_FULL, *TINY, "--out", str(tmp_path / "r")], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert "could not write" in done.stderr and "checkpoint.npz" in done.stderr
    assert "no checkpoint of this run exists yet" in done.stderr and "Traceback" not in done.stderr
    assert not [f for f in os.listdir(tmp_path / "r") if f.endswith(".tmp.npz")]


# ---- item 12: smaller --------------------------------------------------------------------------------------------
def test_nan_stop_says_truthfully_that_no_checkpoint_exists(tmp_path, capsys):
    code, _, err = cli(TINY + ["--lr", "1e38", "--optimizer", "sgd", "--out", str(tmp_path / "r")], capsys)
    assert code == 3 and "the loss became" in err
    assert "No checkpoint had been saved yet" in err and "was kept" not in err


def _rewrite_record(path, change):
    arrays = load_npz(path)
    record = json.loads(arrays["record"].tobytes().decode())
    raw = change(record)
    arrays["record"] = np.frombuffer(raw if isinstance(raw, bytes) else json.dumps(raw).encode(), dtype=np.uint8)
    save_npz_atomic(path, arrays)


@pytest.mark.parametrize("change, message", [
    (lambda r: {k: v for k, v in r.items() if k != "args"}, "no valid 'args'"),
    (lambda r: {**r, "epoch": "three"}, "no valid 'epoch'"),
    (lambda r: b"{broken json", "not valid JSON"),
])
def test_malformed_checkpoint_record_is_a_clear_error(tmp_path, capsys, change, message):
    out = str(tmp_path / "r")
    assert cli(TINY + ["--out", out, "--max-steps", "1"], capsys)[0] == 0
    _rewrite_record(os.path.join(out, "checkpoint.npz"), change)
    code, _, err = cli(["--resume", "--out", out, "--no-progress"], capsys)
    assert code == 2 and message in err and "checkpoint.npz" in err and "Traceback" not in err


def test_checkpoint_with_missing_arrays_is_a_clear_error(tmp_path, capsys):
    out = str(tmp_path / "r")
    assert cli(TINY + ["--out", out, "--max-steps", "1"], capsys)[0] == 0
    path = os.path.join(out, "checkpoint.npz")
    arrays = load_npz(path)
    del arrays["optim/steps"], arrays[next(k for k in arrays if k.startswith("model/"))]
    save_npz_atomic(path, arrays)
    code, _, err = cli(["--resume", "--out", out, "--no-progress"], capsys)
    assert code == 2 and "checkpoint.npz: entry 'model/" in err and "is missing" in err and "Traceback" not in err


def test_corrupt_metrics_line_names_the_file(tmp_path, capsys):
    out = str(tmp_path / "r")
    assert cli(TINY + ["--out", out, "--max-steps", "1"], capsys)[0] == 0
    with open(os.path.join(out, "metrics.jsonl"), "a") as f:
        f.write('{"epoch": 1, "val_top1": \n')
    code, _, err = cli(["--resume", "--out", out, "--no-progress"], capsys)
    assert code == 2 and "metrics.jsonl, line 1" in err


def test_stale_temporary_checkpoints_are_removed(tmp_path, capsys):
    out = tmp_path / "r"
    assert cli(TINY + ["--out", str(out), "--max-steps", "1"], capsys)[0] == 0
    (out / "tmpab12cd.tmp.npz").write_bytes(b"half a checkpoint")   # what a SIGKILL mid-write leaves
    (out / "metrics.jsonl.tmp").write_text("{")
    assert cli(["--resume", "--out", str(out), "--no-progress"], capsys)[0] == 0
    assert not list(out.glob("*.tmp*"))


# ---- item 11: evaluate on data with other classes ----------------------------------------------------------------
def test_evaluate_on_data_with_other_classes_is_an_error(tmp_path, capsys):
    folder_data(tmp_path / "d")
    folder_data(tmp_path / "other", classes=("car", "bus"))
    out = str(tmp_path / "r")
    assert cli(["--data", str(tmp_path / "d"), "--image-size", "24", "--width", "0.25", "--batch-size", "4",
                "--threads", "1", "--no-progress", "--out", out, "--max-steps", "1"], capsys)[0] == 0
    code = evaluate.main(["--checkpoint", os.path.join(out, "checkpoint.npz"), "--data", str(tmp_path / "other")])
    err = capsys.readouterr().err
    assert code == 2 and "other classes than the checkpoint was trained on" in err
    assert evaluate.main(["--checkpoint", os.path.join(out, "checkpoint.npz"), "--data", str(tmp_path / "d")]) == 0
