"""Every tutorial runs, in smoke mode (tiny data, epochs and sizes), so that none can rot."""
import glob
import importlib.util
import os
import re
import subprocess
import sys

import pytest
from PIL import Image

from minilab import config

TUTORIALS = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "..", "tutorials", "0*.py")))


def test_there_are_eight_tutorials():
    assert len(TUTORIALS) == 8


@pytest.mark.parametrize("path", TUTORIALS, ids=[os.path.basename(p) for p in TUTORIALS])
def test_tutorial_runs_in_smoke_mode(path, tmp_path):
    with open(path) as f:
        source = f.read()
    if "minilab.engine" in source and not config.available():
        pytest.skip(f"this tutorial times the packed engine, which needs the compiled extension ({config.reason()})")
    env = dict(os.environ, MINILAB_TUTORIAL_SMOKE="1", MINILAB_TUTORIAL_OUT=str(tmp_path),
               MINILAB_CACHE=str(tmp_path / "cache"))
    result = subprocess.run([sys.executable, os.path.basename(path)], cwd=os.path.dirname(path), env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    # sphinx-gallery's layout: a docstring opening with the title underlined by '=', and an Exercises section
    assert re.match(r'r?"""\n.+\n=+\n', source) and re.search(r"^# Exercises\n# -+$", source, re.M)
    if "shows(" in source and importlib.util.find_spec("matplotlib") is not None:
        pngs = sorted(tmp_path.glob("*.png"))
        assert pngs, "the tutorial promised a figure but wrote none"
        for png in pngs:                 # every figure is drawn by matplotlib (its PNG metadata names it)
            assert Image.open(png).info.get("Software", "").startswith("Matplotlib"), png.name
    elif "shows(" in source:
        assert "pip install" in result.stderr and not list(tmp_path.glob("*.png"))
