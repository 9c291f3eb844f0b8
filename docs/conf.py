"""Sphinx configuration of minilab's documentation site.

Build:  python -m sphinx -b html docs docs/_build/html      (then open docs/_build/html/index.html)
With MINILAB_TUTORIAL_SMOKE=1 the tutorials run shrunk (a few minutes in all on 2 cores); without it they run
at full size, on the real Imagenette data where it is found.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(HERE, "_ext"))
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.path.insert(0, ROOT)
# The tutorials start commands (python -m minilab.train, mpiexec …): they run this checkout's minilab too.
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)

from minilab import __version__, config  # noqa: E402
from minilab_sphinx import TutorialFigures  # noqa: E402
from notebooks import SETUP_CELL  # noqa: E402  (tools/notebooks.py)

project = "minilab"
author = "the minilab authors"
copyright = "minilab authors"
release = version = __version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinx_gallery.gen_gallery",
    "myst_parser",
    "matplotlib.sphinxext.plot_directive",
    "minilab_sphinx",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "_ext"]
# `single quotes` in minilab's docstrings mean code, as in Markdown.
default_role = "literal"
# A literal block without a language is text (the docstrings' Unicode maths); code blocks name their language.
highlight_language = "text"

# Maths: MathML made at build time (docs/_ext/minilab_sphinx.py): no JavaScript, no network.
html_math_renderer = "mathml"

# --- API reference (autodoc + napoleon)
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
autodoc_inherit_docstrings = False
napoleon_google_docstring = True
napoleon_numpy_docstring = True

# --- Markdown pages
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]

# --- figures drawn by the build (`.. plot::` on the API pages)
plot_include_source = False
plot_html_show_source_link = False
plot_html_show_formats = False
plot_formats = [("png", 110)]
plot_rcparams = {"figure.dpi": 110, "savefig.bbox": "tight"}

# --- the tutorials: sphinx-gallery runs tutorials/NN_*.py and shows prose, code, output and figures in order
TUTORIAL_OUT = config.tutorial_out or os.path.join(ROOT, "tutorials", "output")
tutorial_figures = TutorialFigures(TUTORIAL_OUT)

sphinx_gallery_conf = {
    "examples_dirs": os.path.join(ROOT, "tutorials"),
    "gallery_dirs": "tutorials",
    "filename_pattern": r"/\d\d_[^/]*\.py$",          # every numbered tutorial is executed
    "ignore_pattern": r"(^|/)(common|__init__)\.py$",
    "within_subsection_order": "FileNameSortKey",
    # the PNGs as the tutorials wrote them; shows() also opens each as a pyplot figure (for the notebooks), which
    # matplotlib's scraper would put on the page a second time
    "image_scrapers": (tutorial_figures,),
    "reset_modules": ("matplotlib", tutorial_figures.reset),
    "abort_on_example_error": True,
    "min_reported_time": 0,
    "show_memory": False,
    "remove_config_comments": True,
    "download_all_examples": False,
    "thumbnail_size": (320, 224),
    # a script prints what it wants shown; a block's last expression is not echoed (as `python script.py`)
    "capture_repr": (),
    "first_notebook_cell": SETUP_CELL,       # the same setup cell as tools/notebooks.py writes
}

# --- HTML
html_theme = "furo"
html_title = f"minilab {release}"
html_static_path = ["_static"]
html_css_files = ["minilab.css"]
html_show_sourcelink = False
html_theme_options = {"navigation_with_keys": True}
