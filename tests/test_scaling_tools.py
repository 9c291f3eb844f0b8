"""tools/summarize_scaling.py: the tables tools/measure_scaling.sh writes, from raw outputs made up here."""
import importlib.util
import json
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def summarize():
    spec = importlib.util.spec_from_file_location("summarize_scaling",
                                                  os.path.join(ROOT, "tools", "summarize_scaling.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def engine_record(ms, threads, batch):
    return {"threads": threads, "batch_size": batch, "packed": {"median_ms": ms, "runs": 40},
            "breakdown_ms": {"binary conv": ms / 2, "pooling": 0.0, "other": ms / 2}, "profiled_total_ms": ms}


def train_record(ranks, threads, images_per_s):
    return {"ranks": ranks, "threads": threads, "images_per_s": images_per_s, "step_s": 128 / images_per_s,
            "compute_s": 0.1, "wait_s": 0.01, "update_s": 0.005, "allreduce_s": 0.02, "hidden": 0.5,
            "parameters": 11.7e6, "gradient_bytes": 46.8e6}


def write_outdir(tmp_path, runs):
    """runs: (name, kind, binarizer, batch, ranks, threads, round, rc, record or None, text before the record)."""
    lines = ["name\tkind\tbinarizer\tbatch\tranks\tthreads\tround\trc\tseconds"]
    for name, kind, binarizer, batch, ranks, threads, rnd, rc, record, prefix in runs:
        lines.append(f"{name}\t{kind}\t{binarizer}\t{batch}\t{ranks}\t{threads}\t{rnd}\t{rc}\t3")
        if record is not None:
            (tmp_path / f"{name}.json").write_text(prefix + json.dumps(record, indent=1 if kind == "engine" else None))
    (tmp_path / "runs.tsv").write_text("\n".join(lines) + "\n")
    (tmp_path / "cpu.txt").write_text("Test CPU, 2 cores\n")
    (tmp_path / "problems.txt").write_text("4 ranks × 1 threads left out: too small a batch\n")


def test_speedups_are_ratios_within_a_round_and_failures_are_listed(tmp_path, summarize, capsys):
    runs = []
    for rnd, (one, two) in enumerate([(4.0, 2.0), (4.4, 2.0)], start=1):
        for binarizer, scale in (("lab", 1.0), ("sign", 0.5)):
            runs.append((f"engine-{binarizer}-b1-t1-r{rnd}", "engine", binarizer, 1, 1, 1, rnd, 0,
                         engine_record(one * scale, 1, 1), "a warning printed first\n"))
            runs.append((f"engine-{binarizer}-b1-t2-r{rnd}", "engine", binarizer, 1, 1, 2, rnd, 0,
                         engine_record(two * scale, 2, 1), ""))
        runs.append((f"train-plain-1x1-r{rnd}", "train", "-", 128, 1, 1, rnd, 0,
                     {"rows": [train_record(1, 1, 100.0 * rnd)], "ratios": []}, ""))
        runs.append((f"train-mpi-2x1-r{rnd}", "train", "-", 128, 2, 1, rnd, 0, train_record(2, 1, 150.0 * rnd), ""))
    runs.append(("train-mpi-1x2-r1", "train", "-", 128, 1, 2, 1, 124, None, ""))
    runs.append(("train-mpi-1x2-r2", "train", "-", 128, 1, 2, 2, "skipped", None, ""))
    write_outdir(tmp_path, runs)

    assert summarize.main(str(tmp_path)) == 0
    text = capsys.readouterr().out
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in text.splitlines() if line.startswith("| ")}
    # engine, 2 threads: LAB 2.00 ms in both rounds, speed-ups 4.0/2.0 and 4.4/2.0; sign is half of LAB
    assert rows["2"][:5] == ["2.00", "1.00", "2.00", "2.00×–2.20×", "2.00×–2.20×"]
    assert rows["2"][5] == "100%–110%"
    assert rows["1"][0] == "4.00–4.40"
    # training: 150/100 and 300/200 within each round, not 300/100 across rounds
    assert rows["2 × 1"][-2:] == ["1.50×", "75%"]
    assert rows["1 × 1 (plain process)"][-2] == "1.00×"
    assert "pooling" not in rows                       # an operator that took no time in any run is left out
    assert "- train-mpi-1x2-r1: timed out after 3 s" in text
    assert "- train-mpi-1x2-r2: skipped (time budget)" in text
    assert "- 4 ranks × 1 threads left out: too small a batch" in text
    assert "1 × 2" not in rows                         # no table row for a configuration with no result


def test_an_unreadable_output_counts_as_a_failed_run(tmp_path, summarize, capsys):
    write_outdir(tmp_path, [("train-plain-1x1-r1", "train", "-", 128, 1, 1, 1, 0, None, "")])
    (tmp_path / "train-plain-1x1-r1.json").write_text("Traceback (most recent call last):\n")
    assert summarize.main(str(tmp_path)) == 0
    text = capsys.readouterr().out
    assert "## Training" not in text
    assert "- train-plain-1x1-r1: exit status 0 after 3 s" in text
