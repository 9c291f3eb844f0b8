"""What minilab's documentation build adds to Sphinx.

- ``mathml``: a maths renderer that turns every ``:math:`` role and ``.. math::`` block into MathML while the
  site is built (docutils' own LaTeX → MathML converter), so the maths shows in any current browser with no
  JavaScript and no network: the pages read the same from a laptop on a train as from a web server.
- ``.. automodules:: PATTERN ...``: one section per minilab module whose dotted name matches a pattern, each
  with its docstring and members (autodoc); at the end of the build every public module must have appeared on
  some page, so a new module cannot go undocumented.
- ``TutorialFigures``: the sphinx-gallery image scraper for the tutorials, which write their figures as PNG
  files (minilab.plotting) rather than leaving matplotlib figures open: every PNG a block writes is shown
  under that block.
- A line on every executed tutorial page saying which CPU ran it, when, and at which size (smoke or full).
- ``.. command-help:: minilab.train``: a command's ``--help`` (and its sub-commands'), from its ``build_parser()``.
- Plain-text docstrings shown as written: aligned Unicode maths becomes a literal block, and the characters that
  mean something else in reStructuredText (|x|, a trailing _, *args) are escaped.
- The index's "More" list: every top-level page of docs/ that no other list of the index names.
"""
import datetime
import fnmatch
import json
import os
import pkgutil
import platform
import re
import shutil

from docutils import nodes
from docutils.parsers.rst import Directive
from docutils.statemachine import StringList
from docutils.utils.math import MathError
from docutils.utils.math.latex2mathml import tex2mathml
from sphinx.util import logging
from sphinx.util.nodes import nested_parse_with_titles

from minilab.core.machine import cpu_name   # the name every figure of minilab reports, core count included
from notebooks import pngs     # tools/notebooks.py: the notebooks attach figures the same way

logger = logging.getLogger(__name__)

# ----------------------------------------------------------------------------------------------------- maths

def _mathml(latex, block, where):
    try:
        return tex2mathml(latex.strip(), as_block=block)
    except MathError as error:
        logger.warning(f"maths that does not convert to MathML ({error}): {latex!r}", location=where)
        return f'<code class="math-error">{latex}</code>'


def visit_math(self, node):
    self.body.append(f'<span class="math">{_mathml(node.astext(), False, node)}</span>')
    raise nodes.SkipNode


def visit_displaymath(self, node):
    # A `.. math::` block may hold several equations separated by blank lines: one display each.
    latex = node.astext()
    parts = [p for p in re.split(r"\n\s*\n", latex) if p.strip()]
    if node.get("nowrap"):
        parts = [latex]
    self.body.append(self.starttag(node, "div", CLASS="math"))
    if node.get("number"):
        self.body.append(f'<span class="eqno">({node["number"]})</span>')
    for part in parts:
        self.body.append(_mathml(part, True, node))
    self.body.append("</div>\n")
    raise nodes.SkipNode


# ------------------------------------------------------------------------------------------------ docstrings

_EXEMPT = re.compile(r"^(\.\. |:|[-*+] |\d+[.)] |>>>|\|)")
_INLINE_LITERAL = re.compile(r"(``.*?``|:\w+:`[^`]*`|`[^`]*`_?)")


def _escape(line):
    """| and a word's trailing _ mean substitution and hyperlink in reStructuredText; in minilab's docstrings
    they are maths (|x|) and names (MALLOC_TRIM_THRESHOLD_): escape them outside inline literals."""
    parts = _INLINE_LITERAL.split(line)
    for k in range(2, len(parts), 2):
        if re.match(r"\w", parts[k]):                    # `Function`s: a literal glued to a plural s
            parts[k] = "\\ " + parts[k]
    for k in range(0, len(parts), 2):
        parts[k] = re.sub(r"(?<=/)\*", r"\\*", parts[k])        # a glob such as train/<wnid>/*.JPEG
        parts[k] = re.sub(r"(?<!\\)\|", r"\\|", parts[k])
        parts[k] = re.sub(r"(\w)_(?=\W|$)", r"\1\\_", parts[k])
        parts[k] = re.sub(r"(?<=[(\s,])(\*\*?)(?=\w+[,)])", r"\\\1", parts[k])   # *args, **options
    return "".join(parts)


def plain_docstring_to_rst(app, what, name, obj, options, lines):
    """minilab's docstrings are written to be read as plain text (Unicode maths in aligned blocks).  Keep them so
    and let Sphinx show them as written: a paragraph laid out with hanging indentation, or an indented block
    after a line ending in ':', is shown as a literal block; | and trailing _ are escaped elsewhere."""
    out, i, literal_above = [], 0, None
    while i < len(lines):
        if not lines[i].strip():
            out.append(lines[i])
            i += 1
            continue
        j = i
        while j < len(lines) and lines[j].strip():
            j += 1
        para = lines[i:j]
        base = len(para[0]) - len(para[0].lstrip())
        if literal_above is not None and base > literal_above:
            out += para                                     # inside a literal block or a directive's body
            i = j
            continue
        literal_above = None
        first = para[0].strip()
        if _EXEMPT.match(first):
            out += para if first.startswith(".. ") else [_escape(line) for line in para]
            if first.startswith(".. "):
                literal_above = base
            i = j
            continue
        if any(len(line) - len(line.lstrip()) > base for line in para[1:]):
            low = min(len(line) - len(line.lstrip()) for line in para)
            out += [" " * low + "::", ""] + ["    " + line for line in para]    # hanging layout: as written
            i = j
            continue
        para = [_escape(line) for line in para]
        k = j
        while k < len(lines) and not lines[k].strip():
            k += 1
        indented_next = k < len(lines) and len(lines[k]) - len(lines[k].lstrip()) > base
        if para[-1].rstrip().endswith("::"):
            literal_above = base
        elif indented_next and para[-1].rstrip().endswith(":"):
            para[-1] = para[-1].rstrip() + ":"                # "…as follows:" + an indented block: literal
            literal_above = base
        out += para
        i = j
    lines[:] = out


# --------------------------------------------------------------------------------------- module reference

# the local tests a student's workspace runs: they import the student's own `exercises` package, not minilab's
NOT_API = ("minilab.course.visible",)


def public_modules():
    """Every importable minilab module whose name has no part starting with '_' (the compiled kernels' module
    and private helpers are not API), less NOT_API."""
    import minilab

    names = ["minilab"]
    for info in pkgutil.walk_packages(minilab.__path__, "minilab."):
        if not any(part.startswith("_") for part in info.name.split(".")) and not info.name.startswith(NOT_API):
            names.append(info.name)
    return sorted(names)


class AutoModules(Directive):
    """``.. automodules:: minilab.ops.* minilab.autograd`` — one section per matching module."""
    required_arguments = 1
    final_argument_whitespace = True
    option_spec = {}

    def run(self):
        env = self.state.document.settings.env
        patterns = self.arguments[0].split()
        modules = [m for m in public_modules() if any(fnmatch.fnmatchcase(m, p) for p in patterns)]
        if not modules:
            logger.warning(f"automodules: no minilab module matches {' '.join(patterns)}",
                           location=(env.docname, self.lineno))
            return []
        lines = []
        for name in modules:
            lines += [f".. _module-{name}:", "", f"``{name}``", "~" * (len(name) + 4), "",
                      f".. automodule:: {name}", "   :members:", "   :undoc-members:", "   :show-inheritance:",
                      "   :ignore-module-all:",
                      "   :member-order: bysource", ""]
        node = nodes.section()
        node.document = self.state.document
        nested_parse_with_titles(self.state, StringList(lines, source="automodules"), node)
        return node.children


def check_every_module_documented(app, env):
    """Every public module on some page: read from the sources, so an incremental build checks the same."""
    documented, patterns = set(), []
    for docname in env.found_docs:
        path = env.doc2path(docname)
        if os.path.exists(path):
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
            documented.update(re.findall(r"^\s*\.\. automodule:: (\S+)", text, re.M))
            for args in re.findall(r"^\s*\.\. automodules:: (.+)$", text, re.M):
                patterns += args.split()
    missing = [m for m in public_modules()
               if m not in documented and not any(fnmatch.fnmatchcase(m, p) for p in patterns)]
    if missing:
        logger.warning("modules on no API page (add them to a docs/api/*.rst page): " + ", ".join(missing))


# ------------------------------------------------------------------------------------------ command lines

class CommandHelp(Directive):
    """``.. command-help:: minilab.train`` — the command's ``--help``, and each sub-command's, exactly as the
    terminal prints them: made by calling the module's ``build_parser()``, so the page cannot disagree with it."""
    required_arguments = 1

    def run(self):
        import argparse
        import importlib

        module = importlib.import_module(self.arguments[0])
        parser = module.build_parser()
        previous = os.environ.get("COLUMNS")
        os.environ["COLUMNS"] = "90"                    # argparse wraps help at the terminal's width: the page's
        try:
            sections = [(None, parser.format_help())]
            for action in parser._actions:
                if isinstance(action, argparse._SubParsersAction):
                    for name, sub in action.choices.items():
                        sections.append((f"{parser.prog} {name}", sub.format_help()))
        finally:
            if previous is None:
                del os.environ["COLUMNS"]
            else:
                os.environ["COLUMNS"] = previous
        result = []
        for title, text in sections:
            block = nodes.literal_block(text, text, classes=["command-help"])
            block["language"] = "text"
            if title is None:
                result.append(block)
            else:
                section = nodes.section(ids=[nodes.make_id(title)])
                section += nodes.title(title, "", nodes.literal(title, title))
                section += block
                result.append(section)
        return result


# ------------------------------------------------------------------------------------------ tutorial figures

class TutorialFigures:
    """sphinx-gallery scraper: the PNGs the tutorial wrote (or rewrote) since the previous block.

    The tutorials save their figures under ``MINILAB_TUTORIAL_OUT`` (minilab.plotting.draw); this scraper,
    the only one (conf.py), compares the folder's PNGs and their modification times
    with what it saw after the previous block (or, for the first block, before the tutorial started).
    """

    def __init__(self, folder):
        self.folder = folder
        self.seen = {}

    def snapshot(self):
        return pngs(self.folder)

    def reset(self, gallery_conf, fname, when=None):
        """sphinx-gallery's reset_modules hook: runs before each tutorial is executed (not when an unchanged
        tutorial's earlier run is reused), so it also records where and how this run happens."""
        self.seen = self.snapshot()
        if fname is None or when not in (None, "before"):
            return
        smoke = os.environ.get("MINILAB_TUTORIAL_SMOKE", "").strip().lower() not in ("", "0", "false", "off", "no")
        record = {"cpu": cpu_name(), "system": f"{platform.system()} {platform.machine()}",
                  "date": datetime.date.today().isoformat(), "smoke": smoke}
        stem = os.path.splitext(os.path.basename(fname))[0]
        for folder in ([gallery_conf["gallery_dirs"]] if isinstance(gallery_conf["gallery_dirs"], str)
                       else gallery_conf["gallery_dirs"]):
            target = os.path.join(gallery_conf["src_dir"], folder)
            os.makedirs(target, exist_ok=True)
            with open(os.path.join(target, stem + ".ran.json"), "w", encoding="utf-8") as fh:
                json.dump(record, fh)

    def __call__(self, block, block_vars, gallery_conf):
        from sphinx_gallery.scrapers import figure_rst

        now = self.snapshot()
        new = sorted((p for p, t in now.items() if self.seen.get(p) != t), key=lambda p: (now[p], p))
        self.seen = now
        images = []
        for path, target in zip(new, block_vars["image_path_iterator"]):
            shutil.copyfile(path, target)
            images.append(target)
        return figure_rst(images, gallery_conf["src_dir"])

    def __repr__(self):                         # sphinx-gallery keys its cache on the configuration's repr
        return "TutorialFigures()"


# ------------------------------------------------------------------------------ where a tutorial page ran

def stamp_tutorial_pages(app, docname, source):
    """Name the CPU, the date and the size a gallery page ran at, beside sphinx-gallery's running time (from the
    record TutorialFigures.reset wrote when the tutorial was executed)."""
    marker = "**Total running time of the script:**"
    if not docname.startswith("tutorials/") or marker not in source[0]:
        return
    path = os.path.join(app.srcdir, docname + ".ran.json")
    if not os.path.exists(path):
        return
    with open(path, encoding="utf-8") as fh:
        ran = json.load(fh)
    size = ("smoke mode (MINILAB_TUTORIAL_SMOKE=1: data, epochs and sizes shrunk so the page builds in seconds)"
            if ran["smoke"] else "full size")
    line = f"**Ran on:** {ran['cpu']}, {ran['system']}, {ran['date']}, {size}.\n\n"
    source[0] = source[0].replace(marker, line + marker, 1)


def list_other_pages(app, docname, source):
    """The index's last toctree, "More": every top-level page of docs/ that no other toctree of the index names,
    so a page added to docs/ is on the site without editing the index."""
    if docname != "index" or "%%OTHER_PAGES%%" not in source[0]:
        return
    named = set(re.findall(r"^([\w./-]+)\s*$", source[0].split("%%OTHER_PAGES%%")[0], re.M))
    others = sorted(os.path.splitext(name)[0] for name in os.listdir(app.srcdir)
                    if name.endswith((".md", ".rst")) and os.path.splitext(name)[0] not in named | {"index"})
    source[0] = source[0].replace("%%OTHER_PAGES%%", "\n".join(others))


def setup(app):
    app.add_html_math_renderer("mathml", (visit_math, None), (visit_displaymath, None))
    app.add_directive("automodules", AutoModules)
    app.add_directive("command-help", CommandHelp)
    app.connect("autodoc-process-docstring", plain_docstring_to_rst, priority=600)   # after napoleon
    app.connect("env-check-consistency", check_every_module_documented)
    app.connect("source-read", stamp_tutorial_pages)
    app.connect("source-read", list_other_pages)
    return {"parallel_read_safe": False, "parallel_write_safe": True}
