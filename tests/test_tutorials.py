"""Every tutorial runs, in smoke mode (tiny data, epochs and sizes), so that none can rot; and every tutorial is a
sphinx-gallery page: an RST title, prose cells, exercises with worked answers, no measurement typed into prose."""
import glob
import importlib.util
import os
import re
import subprocess
import sys

import pytest
from PIL import Image

from minilab import config

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TUTORIALS = sorted(glob.glob(os.path.join(ROOT, "tutorials", "[0-9][0-9]_*.py")))
IDS = [os.path.basename(p) for p in TUTORIALS]


def test_there_are_ten_tutorials_numbered_in_order():
    assert [int(os.path.basename(p)[:2]) for p in TUTORIALS] == list(range(1, 11))


def prose(source):
    """The reStructuredText of a gallery script: its docstring and every `# `-comment line of a `# %%` cell."""
    docstring = source.split('"""')[1]
    cells = re.findall(r"^# %%\n((?:#.*\n)+)", source, flags=re.M)
    return docstring + "".join(line[2:] + "\n" for cell in cells for line in cell.splitlines())


@pytest.mark.parametrize("path", TUTORIALS, ids=IDS)
def test_tutorial_is_a_gallery_page_with_exercises_and_answers(path):
    with open(path) as f:
        source = f.read()
    lines = source.split("\n")
    number = os.path.basename(path)[:2]
    assert lines[0] == '"""' and lines[1].startswith(f"{number} — ") and set(lines[2]) == {"="}
    assert len(lines[2]) >= len(lines[1]), "the title's underline must be at least as long as the title"
    assert "# %% [markdown]" not in source and "**What you will learn:**" in source and "**What you need:**" in source
    text = prose(source)
    exercises = text[text.index("Exercises\n---------"):text.index("Answers\n-------")]
    assert 3 <= len(re.findall(r"^\d\. ", exercises, flags=re.M)) <= 5
    # measurements belong to the run's output, not to the prose
    assert not re.search(r"\d\s?(ms|img/s|seconds)\b|Measured by|measured by this script", text), \
        "a measurement is typed into the prose"


@pytest.mark.parametrize("path", TUTORIALS, ids=IDS)
def test_tutorial_runs_in_smoke_mode(path, tmp_path):
    with open(path) as f:
        source = f.read()
    if "minilab.engine" in source and not config.available():
        pytest.skip(f"this tutorial times the packed engine, which needs the compiled extension ({config.reason()})")
    env = dict(os.environ, MINILAB_TUTORIAL_SMOKE="1", MINILAB_TUTORIAL_OUT=str(tmp_path),
               MINILAB_CACHE=str(tmp_path / "cache"), MPLBACKEND="Agg",
               PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    result = subprocess.run([sys.executable, os.path.basename(path)], cwd=os.path.dirname(path), env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    if "shows(" in source and importlib.util.find_spec("matplotlib") is not None:
        pngs = sorted(tmp_path.glob("*.png"))
        assert pngs, "the tutorial promised a figure but wrote none"
        for png in pngs:                 # every figure is drawn by matplotlib (its PNG metadata names it)
            assert Image.open(png).info.get("Software", "").startswith("Matplotlib"), png.name
    elif "shows(" in source:
        assert "pip install" in result.stderr and not list(tmp_path.glob("*.png"))
