"""The shape of the code: the import contracts of pyproject.toml ([tool.importlinter], checked by import-linter),
no import cycles, the world seam (only minilab/distributed asks how many ranks there are), and functions short
enough to read (docs/architecture.md)."""
import ast
import os
import re
import shutil
import subprocess
import sys

import pytest

importlinter = pytest.importorskip("importlinter", reason="the `test` extra installs import-linter")
grimp = pytest.importorskip("grimp")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "minilab")
LONGEST_FUNCTION = 70


def lint_imports(cwd):
    """(exit code, output) of `lint-imports` over the contracts of cwd/pyproject.toml."""
    done = subprocess.run([sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
                           "sys.exit(lint_imports_command())", "--config", "pyproject.toml", "--no-cache"],
                          cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": cwd})
    return done.returncode, done.stdout + done.stderr


def test_the_import_contracts_hold():
    code, output = lint_imports(ROOT)
    assert code == 0, output
    assert "0 broken" in output


def copy_sources(target):
    """minilab's Python sources and pyproject.toml (the contracts) under `target`."""
    shutil.copytree(PACKAGE, os.path.join(target, "minilab"), ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    shutil.copy(os.path.join(ROOT, "pyproject.toml"), target)


@pytest.mark.parametrize("module, line, contract", [
    ("ops/norm.py", "from ..fast.norm import BatchNormKernel", "reference ops never import the compiled path"),
    ("engine/convert.py", "from ..training.loop import train_step", "inference never imports the training loop"),
], ids=["reference op imports a twin", "engine imports the training loop"])
def test_an_import_against_the_contracts_breaks_them(tmp_path, module, line, contract):
    copy_sources(tmp_path)
    path = tmp_path / "minilab" / module
    path.write_text(path.read_text() + f"\n{line}  # noqa: E402,F401\n")
    code, output = lint_imports(str(tmp_path))
    assert code != 0
    assert f"{contract} BROKEN" in " ".join(output.split())
    importer = "minilab." + module[:-3].replace("/", ".")
    assert importer in output


def import_cycles(graph):
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index, low, on_stack, stack, cycles, counter = {}, {}, set(), [], [], [0]
    for start in sorted(graph.modules):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.find_modules_directly_imported_by(start))))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))
    return cycles


def test_no_module_imports_itself_through_others():
    graph = grimp.build_graph("minilab")   # every import, those inside functions included
    assert import_cycles(graph) == []


class Graph:
    """The two calls `import_cycles` makes of a grimp graph, over a given {module: imported modules}."""

    def __init__(self, imports):
        self.imports = imports
        self.modules = set(imports)

    def find_modules_directly_imported_by(self, module):
        return self.imports[module]


def test_the_cycle_finder_finds_the_cycles_it_should():
    # the circle the compiled twins' registration once made, a two-module loop, and a chain without a loop
    graph = Graph({"core.autograd": {"core.dispatch"}, "core.dispatch": {"core.config"}, "core.config": {"fast"},
                   "fast": {"ops"}, "ops": {"core.autograd"}, "engine.convert": {"engine.fused_block"},
                   "engine.fused_block": {"engine.convert"}, "nn": {"ops"}, "models": {"nn", "ops"}})
    assert sorted(import_cycles(graph)) == [["core.autograd", "core.config", "core.dispatch", "fast", "ops"],
                                            ["engine.convert", "engine.fused_block"]]
    assert import_cycles(Graph({"models": {"nn"}, "nn": {"ops"}, "ops": set()})) == []


def python_files():
    for folder, _, files in os.walk(PACKAGE):
        for name in sorted(files):
            if name.endswith(".py"):
                yield os.path.join(folder, name)


def test_only_the_distributed_package_asks_how_many_ranks_there_are():
    """The training loop calls the world's methods; `world.size` is read inside minilab/distributed alone."""
    readers = [os.path.relpath(path, ROOT) for path in python_files()
               if not path.startswith(os.path.join(PACKAGE, "distributed"))
               and re.search(r"\bworld\.size\b", open(path).read())]
    assert readers == []


def long_functions(path, limit=LONGEST_FUNCTION):
    """(name, lines) of each function longer than `limit` lines that has no comment line saying why."""
    source = open(path).read()
    lines = source.splitlines()
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            says_why = any("long because" in line for line in lines[max(0, node.lineno - 3):node.lineno + 2])
            if length > limit and not says_why:
                found.append((node.name, length))
    return found


def test_functions_stay_short_enough_to_read():
    too_long = {os.path.relpath(path, ROOT): found for path in python_files() if (found := long_functions(path))}
    assert too_long == {}


def test_a_long_function_is_found(tmp_path):
    body = "".join(f"    x{i} = {i}\n" for i in range(LONGEST_FUNCTION))
    (tmp_path / "long.py").write_text("def long():\n" + body)
    (tmp_path / "said.py").write_text("# long because: one declarative table\ndef long():\n" + body)
    assert long_functions(str(tmp_path / "long.py")) == [("long", LONGEST_FUNCTION + 1)]
    assert long_functions(str(tmp_path / "said.py")) == []


def test_both_worlds_answer_the_same_calls():
    """The training loop calls a world's methods without asking which world it is: one process and MPI ranks
    offer the same ones."""
    from minilab.distributed.world import MPIWorld, SingleProcess

    def calls(cls):
        return {name for name in dir(cls) if not name.startswith("_")}
    assert calls(SingleProcess) == calls(MPIWorld) | {"rank", "size", "is_root"}
