"""The documentation site and the executed notebooks.

- The site builds from docs/ with warnings treated as errors, the tutorials executed in smoke mode; in the
  built HTML no internal link points at a missing page or anchor, no image is missing, every maths element
  became MathML (none left as LaTeX source or as a conversion error), every tutorial page shows its figures,
  the CPU it ran on and its downloads, and the LAB entry of the API shows its gradients in maths.
- The notebooks in tutorials/notebooks/ are in sync with the tutorial scripts (the cells tools/notebooks.py makes
  from them) and carry their outputs, with figures where the tutorial draws them.

The site build takes a few minutes on 2 cores (one build for the whole module); it needs the `docs` extra.
"""
import glob
import html.parser
import os
import re
import subprocess
import sys
import urllib.parse

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TUTORIALS = sorted(glob.glob(os.path.join(ROOT, "tutorials", "[0-9][0-9]_*.py")))

for _module in ("sphinx", "sphinx_gallery", "furo", "myst_parser", "nbformat"):
    pytest.importorskip(_module, reason='the docs extra is not installed: pip install -e ".[docs]"')

sys.path.insert(0, os.path.join(ROOT, "tools"))
import notebooks  # noqa: E402  (tools/notebooks.py)


def draws_figures(source):
    """Whether a tutorial script writes figures (minilab.plotting.draw / the figure helpers, or savefig)."""
    with open(source, encoding="utf-8") as fh:
        text = fh.read()
    return bool(re.search(r"\bshows\(|\.draw\(|savefig\(|_figure\(", text))


# ------------------------------------------------------------------------------------------------ the site

@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    figures = tmp_path_factory.mktemp("figures")
    env = dict(os.environ, MINILAB_TUTORIAL_SMOKE="1", MINILAB_TUTORIAL_OUT=str(figures))
    result = subprocess.run([sys.executable, "-m", "sphinx", "-b", "html", "-W", "--keep-going", "-q",
                             "-d", str(out / "doctrees"), "-D", "sphinx_gallery_conf.run_stale_examples=1",
                             "docs", str(out / "html")],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, f"the site did not build cleanly:\n{result.stdout[-4000:]}\n{result.stderr[-8000:]}"
    return out / "html"


class Page(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.ids, self.links, self.images, self.maths, self.text = set(), [], [], 0, []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        if tag == "img" and attrs.get("src"):
            self.images.append(attrs["src"])
        if tag == "math":
            self.maths += 1

    def handle_data(self, data):
        self.text.append(data)


def parse(path):
    page = Page()
    with open(path, encoding="utf-8") as fh:
        raw = fh.read()
    page.feed(raw)
    page.raw = raw
    page.body = "".join(page.text)
    return page


@pytest.fixture(scope="module")
def pages(site):
    return {os.path.relpath(path, site): parse(path)
            for path in glob.glob(str(site / "**" / "*.html"), recursive=True)}


@pytest.mark.docs
def test_internal_links_and_images_resolve(site, pages):
    broken = []
    for name, page in pages.items():
        if name.startswith("_modules") or name in ("genindex.html", "search.html", "py-modindex.html"):
            continue
        for href in page.links + page.images:
            url = urllib.parse.urlsplit(href)
            if url.scheme or href.startswith(("//", "mailto:")):
                continue
            target = os.path.normpath(os.path.join(os.path.dirname(name), urllib.parse.unquote(url.path))) \
                if url.path else name
            if not (site / target).exists():
                broken.append(f"{name}: {href} (no {target})")
            elif url.fragment and target.endswith(".html"):
                ids = pages[target].ids if target in pages else parse(site / target).ids
                if url.fragment not in ids:
                    broken.append(f"{name}: {href} (no #{url.fragment} in {target})")
    assert not broken, "broken internal links or images:\n" + "\n".join(broken[:40])


@pytest.mark.docs
def test_maths_is_rendered(pages):
    leftovers = []
    for name, page in pages.items():
        if name.startswith("_modules"):
            continue
        if 'class="math-error"' in page.raw:
            leftovers.append(f"{name}: maths that did not convert")
        for raw in re.findall(r"(\\\(|\\\[|\$\$|:math:`)", page.body):
            leftovers.append(f"{name}: LaTeX left as text ({raw})")
    assert not leftovers, "\n".join(sorted(set(leftovers))[:40])
    lab = pages["api/ops.html"]
    assert lab.maths >= 20, "the ops page should show its ops' maths as MathML"
    section = lab.raw[lab.raw.index('id="minilab.ops.lab.LabArgMax"'):]
    section = section[:section.index('id="minilab.ops.lab.lab"')]
    mathml = "".join(re.findall(r"<math.*?</math>", section, re.S))
    assert "softmax" in mathml and "tanh" in mathml, "LabArgMax shows the Soft-ArgMax surrogate"
    assert mathml.count("<mfrac>") >= 3 and "β" in mathml, "…and its gradients with respect to r₀, r₁ and β"


@pytest.mark.docs
def test_tutorial_pages_show_outputs_figures_machine_and_downloads(site, pages):
    assert TUTORIALS, "no tutorials/NN_*.py found"
    for source in TUTORIALS:
        stem = os.path.splitext(os.path.basename(source))[0]
        page = pages[f"tutorials/{stem}.html"]
        assert "sphx-glr-script-out" in page.raw, f"{stem}: no printed output on its page"
        assert "Ran on:" in page.body and "smoke mode" in page.body, f"{stem}: the page does not say where it ran"
        assert "Total running time of the script" in page.body
        downloads = [href for href in page.links if href.endswith((f"{stem}.py", f"{stem}.ipynb"))]
        assert len({os.path.splitext(d)[1] for d in downloads}) == 2, f"{stem}: .py and .ipynb downloads"
        figures = [src for src in page.images if f"sphx_glr_{stem}_" in src and "thumb" not in src]
        if draws_figures(source):
            assert figures, f"{stem} draws figures but its page shows none"
        assert not repeated_figures(site, figures), f"{stem}: a figure is shown twice"


def repeated_figures(site, figures):
    """Pairs of a page's figures with the same pixels (to rounding): one figure collected twice, e.g. as the PNG
    the tutorial wrote and again as the pyplot figure shows() opens for the notebooks."""
    import numpy as np
    from PIL import Image

    folder = os.path.join(site, "tutorials")
    pixels = [np.asarray(Image.open(os.path.normpath(os.path.join(folder, src))).convert("L"), dtype=np.float32)
              for src in figures]
    return [(figures[i], figures[j]) for i in range(len(pixels)) for j in range(i + 1, len(pixels))
            if pixels[i].shape == pixels[j].shape and np.abs(pixels[i] - pixels[j]).mean() < 1.0]


@pytest.mark.docs
def test_every_cli_and_api_part_has_its_page(pages):
    for command in ("train", "evaluate", "predict", "plot", "bench", "analyze"):
        page = pages[f"cli/{command}.html"]
        assert f"usage: python -m minilab.{command}" in page.body, f"the {command} page shows its --help"
    for part in ("autograd", "ops", "nn", "models", "optim", "data", "train", "engine", "analysis", "testing"):
        assert f"api/{part}.html" in pages


# --------------------------------------------------------------------------------------------- notebooks

@pytest.mark.parametrize("source", TUTORIALS, ids=[os.path.basename(s)[:2] for s in TUTORIALS])
def test_notebook_in_sync_with_its_tutorial_and_executed(source):
    import nbformat

    path = notebooks.notebook_path(source)
    assert os.path.exists(path), f"{os.path.relpath(path, ROOT)} is missing: run python tools/notebooks.py"
    committed = nbformat.read(path, as_version=4)
    expected = notebooks.build_notebook(source)
    cells = [(c.cell_type, c.source) for c in committed.cells]
    assert cells == [(c.cell_type, c.source) for c in expected.cells], (
        f"{os.path.relpath(path, ROOT)} is out of date with its tutorial: run python tools/notebooks.py "
        f"{os.path.basename(source)[:2]}")
    code = [c for c in committed.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code), "every code cell was executed"
    outputs = [o for c in code for o in c.outputs]
    assert outputs, "the notebook carries its outputs"
    assert not [o for o in outputs if o.output_type == "error"], "no cell ended in an error"
    if draws_figures(source):
        assert any("image/png" in o.get("data", {}) for o in outputs), "the tutorial's figures are in the notebook"
    assert os.path.getsize(path) < 3_000_000, "a notebook stays small enough for the repository"


def test_no_notebook_without_its_tutorial():
    made = {notebooks.notebook_path(source) for source in TUTORIALS}
    stale = set(glob.glob(os.path.join(notebooks.NOTEBOOKS, "*.ipynb"))) - made
    assert not stale, f"notebooks whose tutorial is gone: {sorted(stale)}; run python tools/notebooks.py"
