"""Where LAB goes (Table 9 on Imagenette): run names, the Pareto front, the table and the figure, from kept
metrics files and a latency record written the way tools/table9.sh and tools/table9_latency.py write them."""
import json
import os

import pytest

from minilab.analysis import placement


def rows(top1s, top5=0.9):
    return [{"epoch": e + 1, "val_top1": t, "val_top5": top5, "train_loss": 1.0, "val_loss": 1.0}
            for e, t in enumerate(top1s)]


def test_run_names():
    assert placement.run_key("lab-0111-s1") == ("0111", 1)
    assert placement.run_key("lab-1000-s0.jsonl") == ("1000", 0)
    for bad in ("lab-012-s0", "lab-0111", "sign-0111-s0", "lab-0111-s", "lab-01111-s0"):
        assert placement.run_key(bad) is None, bad


def test_pareto_front_keeps_exactly_the_points_nothing_beats():
    points = [(1.0, 50.0), (2.0, 60.0), (3.0, 55.0), (0.5, 40.0), (2.0, 58.0), (4.0, 61.0)]
    front = placement.pareto_front(points)
    assert front == [3, 0, 1, 5]            # by latency; (3, 55) and (2, 58) are beaten by (2, 60)
    for i, (t, a) in enumerate(points):
        beaten = any(t2 <= t and a2 >= a and (t2, a2) != (t, a) for t2, a2 in points)
        assert (i in front) == (not beaten)


def test_summary_averages_seeds_and_marks_unfinished_runs():
    runs = {"0000": {0: rows([0.5, 0.6]), 1: rows([0.5, 0.64])}, "1111": {0: rows([0.7])}}
    record = {"cpu": "test CPU", "date": "2026-01-01", "command": "x",
              "results": [{"mask": "0000", "image_size": 224, "threads": 1, "median_ms": 3.0, "size_mb": 0.5}]}
    table = {r["mask"]: r for r in placement.summarize(runs, record, epochs=2)}
    assert table["0000"]["top1"] == {0: pytest.approx(60.0), 1: pytest.approx(64.0)}
    assert table["0000"]["top1_mean"] == pytest.approx(62.0)
    assert table["0000"]["finished"] and not table["1111"]["finished"]
    assert table["0000"]["ms_224_1"] == 3.0 and table["0000"]["ms_224_2"] is None
    assert table["0000"]["paper"] == placement.PAPER["0000"]
    text = placement.markdown_table(list(table.values()), record)
    assert "| `1111` | 70.00 |" in text and "(running)" in text and "test CPU" in text
    assert "53.2" in text and "83.7" in text                      # the paper's 0000 top-1 and 1111 latency


def test_figure_from_kept_metrics(tmp_path):
    pytest.importorskip("matplotlib")
    folder = tmp_path / "table9"
    folder.mkdir()
    for mask, top1 in (("0000", 0.6), ("0111", 0.7), ("1111", 0.72)):
        with open(folder / f"lab-{mask}-s0.jsonl", "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows([top1]))
    results = [{"mask": m, "image_size": s, "threads": t, "median_ms": ms, "size_mb": 0.7}
               for m, ms in (("0000", 2.0), ("0111", 2.4), ("1111", 3.0)) for s in (224, 64) for t in (1, 2)]
    with open(folder / placement.LATENCY_FILE, "w") as f:
        json.dump({"cpu": "c", "date": "d", "command": "x", "results": results}, f)
    from minilab.plot import main

    out = tmp_path / "where_lab_goes.png"
    assert main(["--placement", str(folder), "--out", str(out)]) == 0
    assert os.path.getsize(out) > 10_000


def test_the_docs_page_shows_the_table_of_the_kept_metrics():
    """docs/where-lab-goes.md carries the table that `plot --placement docs/table9` prints from the metrics kept in
    the repository: a new run's metrics without the page updated (or the reverse) fails here."""
    from minilab.plot import read_placement

    root = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs")
    page = open(os.path.join(root, "where-lab-goes.md")).read()
    start = page.index("<!-- table9:")
    shown = page[page.index("\n", start) + 1:page.index("<!-- table9 end -->")].strip()
    rows, record = read_placement(os.path.join(root, "table9"))
    assert shown == placement.markdown_table(rows, record).strip()
