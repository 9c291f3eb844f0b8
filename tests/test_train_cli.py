"""The training CLI end to end, in subprocesses: a run that is SIGKILLed mid-epoch and resumed ends with exactly the
weights of an uninterrupted run; Ctrl-C saves; NaN stops cleanly; bad input never prints a traceback."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np

from minilab.training.checkpoint import read_checkpoint

TINY = ["--arch", "labbnn", "--data", "synthetic", "--synthetic-size", "384", "64", "--image-size", "24",
        "--width", "0.25", "--batch-size", "16", "--epochs", "2", "--threads", "1", "--no-progress",
        "--checkpoint-every", "4"]


def run_cli(args, env_extra=None, **kw):
    env = dict(os.environ, MINILAB_CACHE=kw.pop("cache", "/nonexistent-cache"), **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "minilab.train", *args], capture_output=True, text=True, env=env,
                          timeout=600, **kw)


def weights(out):
    state, _, record = read_checkpoint(os.path.join(out, "checkpoint.npz"))
    return state, record


def test_sigkill_mid_epoch_then_resume_gives_identical_weights(tmp_path):
    ref = str(tmp_path / "ref")
    done = run_cli(TINY + ["--out", ref])
    assert done.returncode == 0, done.stderr
    assert "done:" in done.stdout

    out = str(tmp_path / "killed")
    env = dict(os.environ, MINILAB_CACHE="/nonexistent-cache")
    proc = subprocess.Popen([sys.executable, "-m", "minilab.train", *TINY, "--out", out], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ckpt = os.path.join(out, "checkpoint.npz")
    deadline = time.time() + 300
    killed_at = None
    while time.time() < deadline and proc.poll() is None:
        if os.path.exists(ckpt):
            try:
                _, _, record = read_checkpoint(ckpt)
            except ValueError:
                record = None
            if record and record["epoch"] == 1 and record["batch"] > 0:   # mid-way through the second epoch
                proc.send_signal(signal.SIGKILL)
                killed_at = record
                break
        time.sleep(0.01)
    proc.wait()
    assert killed_at is not None, "the run finished before it could be killed mid-epoch"
    assert proc.returncode == -signal.SIGKILL

    resumed = run_cli(["--resume", "--out", out, "--no-progress"])
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stdout
    a, rec_a = weights(ref)
    b, rec_b = weights(out)
    assert rec_a["step"] == rec_b["step"] == 48
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    metrics = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
    assert [m["epoch"] for m in metrics] == [1, 2]


def test_ctrl_c_saves_and_resume_continues(tmp_path):
    out = str(tmp_path / "run")
    env = dict(os.environ, MINILAB_CACHE="/nonexistent-cache")
    args = TINY + ["--epochs", "3", "--out", out]            # the last --epochs wins; 3 × 24 steps
    proc = subprocess.Popen([sys.executable, "-m", "minilab.train", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if os.path.exists(os.path.join(out, "checkpoint.npz")):   # first written after 4 of 72 steps
            proc.send_signal(signal.SIGINT)
            break
        time.sleep(0.01)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 130, stdout + stderr
    assert "interrupted: saved" in stdout and "Traceback" not in stderr
    _, record = weights(out)
    assert record["epoch"] < 3
    resumed = run_cli(["--resume", "--out", out, "--no-progress"])
    assert resumed.returncode == 0, resumed.stderr
    assert weights(out)[1]["epoch"] == 3


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    out = str(tmp_path / "nan")
    result = run_cli(TINY[:-2] + ["--lr", "1e38", "--optimizer", "sgd", "--out", out])
    assert result.returncode == 3, result.stdout + result.stderr
    assert "the loss became" in result.stderr and "Traceback" not in result.stderr


def test_bad_inputs_give_clear_errors(tmp_path):
    no_data = run_cli(["--out", str(tmp_path / "x")], cache=str(tmp_path / "empty-cache"))
    assert no_data.returncode == 2 and "--data synthetic" in no_data.stderr and "Traceback" not in no_data.stderr
    missing = run_cli(["--data", str(tmp_path / "missing"), "--out", str(tmp_path / "y")])
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    resume = run_cli(["--resume", "--out", str(tmp_path / "never")])
    assert resume.returncode == 2 and "no checkpoint" in resume.stderr
    bad_arch = run_cli(["--arch", "vgg"])
    assert bad_arch.returncode == 2 and "invalid choice" in bad_arch.stderr


def test_evaluate_cli_and_truncated_checkpoint(tmp_path):
    out = str(tmp_path / "run")
    assert run_cli(TINY[:-2] + ["--epochs", "1", "--out", out]).returncode == 0
    env = dict(os.environ, MINILAB_CACHE="/nonexistent-cache")
    ok = subprocess.run([sys.executable, "-m", "minilab.evaluate", "--checkpoint", f"{out}/checkpoint.npz"],
                        capture_output=True, text=True, env=env)
    assert ok.returncode == 0 and "top-1" in ok.stdout
    data = open(f"{out}/checkpoint.npz", "rb").read()
    open(tmp_path / "trunc.npz", "wb").write(data[: len(data) // 2])
    bad = subprocess.run([sys.executable, "-m", "minilab.evaluate", "--checkpoint", str(tmp_path / "trunc.npz")],
                         capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "truncated or corrupt" in bad.stderr and "Traceback" not in bad.stderr


def test_help_explains_the_options():
    result = run_cli(["--help"])
    assert result.returncode == 0
    for option in ("--lab-blocks", "--binarizer", "--resume", "--data", "--threads", "synthetic"):
        assert option in result.stdout
