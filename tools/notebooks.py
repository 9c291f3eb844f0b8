"""Make tutorials/notebooks/NN_*.ipynb from the tutorial scripts, executed, with their outputs and figures.

    python tools/notebooks.py                 # every tutorial, at full size (the real Imagenette data where found)
    python tools/notebooks.py --smoke         # MINILAB_TUTORIAL_SMOKE=1: shrunk, a minute or two in all
    python tools/notebooks.py 04 05           # only the tutorials whose file names start with these numbers
    python tools/notebooks.py --no-execute    # the cells only (what the sync test compares)

The scripts `tutorials/NN_*.py` stay the one source: each becomes a notebook the way the documentation site's
download does it (sphinx-gallery's converter: the reStructuredText prose turned into Markdown cells, the code
blocks into code cells), after one setup cell that makes `tutorials/common.py` importable.  The notebook then
runs in a Jupyter kernel (nbclient) from `tutorials/`; every PNG a cell writes — the tutorials save their figures
with minilab.analysis.plotting rather than leaving them open — is attached to that cell as an image output, scaled to at
most MAX_WIDTH pixels and stored with a 256-colour palette so that the notebooks stay small in the repository.
`tests/test_docs.py` checks that the committed notebooks have the cells this tool makes and carry outputs.
"""
import argparse
import copy
import datetime
import glob
import io
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TUTORIALS = os.path.join(ROOT, "tutorials")
NOTEBOOKS = os.path.join(TUTORIALS, "notebooks")
MAX_WIDTH = 900            # pixels: wide enough to read a figure, small enough to keep a notebook light

# The first cell of every notebook (and of the site's notebook downloads, docs/conf.py).
SETUP_CELL = (
    "# Setup: the tutorials share a few helpers (tutorials/common.py). Run this notebook from tutorials/ or\n"
    "# tutorials/notebooks/ of a minilab checkout, with minilab installed (pip install -e \".[plot]\").\n"
    "import os, sys\n"
    "for _folder in ('.', '..', 'tutorials'):\n"
    "    if os.path.exists(os.path.join(_folder, 'common.py')):\n"
    "        sys.path.insert(0, os.path.abspath(_folder))\n"
    "        break")


def tutorial_sources(only=()):
    paths = sorted(glob.glob(os.path.join(TUTORIALS, "[0-9][0-9]_*.py")))
    if only:
        paths = [p for p in paths if any(os.path.basename(p).startswith(prefix) for prefix in only)]
    return paths


def notebook_path(source):
    return os.path.join(NOTEBOOKS, os.path.splitext(os.path.basename(source))[0] + ".ipynb")


def build_notebook(source):
    """The notebook of one tutorial script, unexecuted: sphinx-gallery's conversion, as on the site."""
    import nbformat
    from sphinx_gallery.gen_gallery import DEFAULT_GALLERY_CONF
    from sphinx_gallery.notebook import jupyter_notebook
    from sphinx_gallery.py_source_parser import split_code_and_text_blocks

    conf = copy.deepcopy(DEFAULT_GALLERY_CONF)
    conf["first_notebook_cell"] = SETUP_CELL
    conf["remove_config_comments"] = True
    _, blocks = split_code_and_text_blocks(source)
    nb = nbformat.from_dict(jupyter_notebook(blocks, conf, os.path.dirname(source)))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for cell in nb.cells:
        if isinstance(cell.source, list):  # the converter gives lines; nbformat keeps one string
            cell.source = "".join(cell.source)
        cell.pop("id", None)               # no random ids: regenerating an unchanged tutorial changes nothing
    nb.nbformat, nb.nbformat_minor = 4, 4
    return nb


def pngs(folder):
    found = {}
    for root, _, files in os.walk(folder):
        for name in files:
            if name.lower().endswith(".png"):
                path = os.path.join(root, name)
                found[path] = os.stat(path).st_mtime_ns
    return found


def png_output(path):
    """A display_data output holding the figure, scaled down and palette-encoded."""
    import base64

    import nbformat
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        if im.width > MAX_WIDTH:
            im = im.resize((MAX_WIDTH, round(im.height * MAX_WIDTH / im.width)), Image.Resampling.LANCZOS)
        im = im.quantize(256, method=Image.Quantize.MEDIANCUT)
        buffer = io.BytesIO()
        im.save(buffer, format="PNG", optimize=True)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return nbformat.v4.new_output("display_data", data={"image/png": data, "text/plain": f"<{os.path.basename(path)}>"})


def execute(nb, figures_folder, timeout):
    """Run the notebook cell by cell in a fresh kernel started in tutorials/, attaching the figures."""
    from nbclient import NotebookClient

    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False,
                            resources={"metadata": {"path": TUTORIALS}})
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            before = pngs(figures_folder)
            client.execute_cell(cell, index)
            after = pngs(figures_folder)
            new = sorted((p for p, t in after.items() if before.get(p) != t), key=lambda p: (after[p], p))
            shown = any("image/png" in out.get("data", {}) for out in cell.outputs)
            if new and not shown:
                # the figure replaces the path a figure helper returned (a file name on the machine that ran it)
                names = tuple(os.path.basename(path) for path in new)
                cell.outputs = [out for out in cell.outputs if not (
                    out.output_type == "execute_result"
                    and out.get("data", {}).get("text/plain", "").strip("'\"").endswith(names))]
                cell.outputs.extend(png_output(path) for path in new)
    return nb


def main(argv=None):
    p = argparse.ArgumentParser(prog="python tools/notebooks.py", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("only", nargs="*", help="tutorial numbers (e.g. 04); default: every tutorial")
    p.add_argument("--smoke", action="store_true", help="run with MINILAB_TUTORIAL_SMOKE=1 (shrunk, fast)")
    p.add_argument("--no-execute", action="store_true", help="write the cells without running them")
    p.add_argument("--timeout", type=int, default=3600, help="seconds one cell may run (default 3600)")
    args = p.parse_args(argv)
    sources = tutorial_sources(args.only)
    if not sources:
        print(f"error: no tutorial matches {' '.join(args.only)} in {os.path.relpath(TUTORIALS)}", file=sys.stderr)
        return 2
    try:
        import nbformat
        if not args.no_execute:
            import nbclient  # noqa: F401
    except ImportError as error:
        print(f"error: {error.name} is missing: pip install -e \".[docs]\"", file=sys.stderr)
        return 2
    os.environ["MINILAB_TUTORIAL_SMOKE"] = "1" if args.smoke else "0"
    # The kernel runs this checkout's minilab, and so do the commands the tutorials start.
    os.environ["PYTHONPATH"] = os.pathsep.join(x for x in (ROOT, os.environ.get("PYTHONPATH")) if x)
    sys.path.insert(0, ROOT)
    from minilab import config
    from minilab.core.machine import cpu_name
    figures = config.tutorial_out or os.path.join(TUTORIALS, "output")
    os.makedirs(NOTEBOOKS, exist_ok=True)
    if not args.only:                     # a tutorial renamed or removed takes its notebook with it
        for stale in sorted(set(glob.glob(os.path.join(NOTEBOOKS, "*.ipynb"))) - {notebook_path(s) for s in sources}):
            os.remove(stale)
            print(f"removed {os.path.relpath(stale)} (no tutorial of that name)")
    for source in sources:
        nb = build_notebook(source)
        start = time.perf_counter()
        if not args.no_execute:
            execute(nb, figures, args.timeout)
            nb.metadata["minilab"] = {"executed_on": cpu_name(),
                                      "date": datetime.date.today().isoformat(),
                                      "size": "smoke" if args.smoke else "full"}
        target = notebook_path(source)
        nbformat.write(nb, target)
        print(f"wrote {os.path.relpath(target)} ({os.path.getsize(target) // 1024} kB"
              + ("" if args.no_execute else f", ran {time.perf_counter() - start:.0f} s") + ")")
    return 0


if __name__ == "__main__":
    sys.exit(main())
