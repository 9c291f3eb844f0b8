"""`start`: write a student's workspace — the exercise modules with the solutions cut out, the local tests and a
README — or, with `with_solutions`, the teacher's version.

The solutions live in the package (`minilab/course/exercises/`), each between the lines

    # BEGIN SOLUTION task 3: binary_conv2d
    …
    # END SOLUTION

The student's copy has `raise NotImplementedError("task 3: binary_conv2d")` in their place, at their indent."""
import os
import re
import shutil
from importlib import resources

from .tasks import TASKS

BEGIN = re.compile(r"^(\s*)# BEGIN SOLUTION (task \d+: .+?)\s*$")
END = re.compile(r"^\s*# END SOLUTION\s*$")


def strip_solutions(source):
    """The exercise text a student gets: every marked solution replaced by a NotImplementedError."""
    out, inside = [], False
    for number, line in enumerate(source.splitlines(keepends=True), 1):
        begin = BEGIN.match(line)
        if begin:
            if inside:
                raise ValueError(f"line {number}: a solution block opens inside another")
            indent, label = begin.groups()
            out.append(f'{indent}raise NotImplementedError("{label}")\n')
            inside = True
        elif END.match(line):
            if not inside:
                raise ValueError(f"line {number}: END SOLUTION without BEGIN SOLUTION")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError("a solution block is never closed")
    return "".join(out)


def keep_solutions(source):
    """The teacher's text: the solutions, without the marker lines."""
    return "".join(line for line in source.splitlines(keepends=True) if not (BEGIN.match(line) or END.match(line)))


def package_text(*parts):
    return resources.files("minilab.course").joinpath(*parts).read_text(encoding="utf-8")


def start(directory, with_solutions=False):
    """Write the workspace into `directory` (new or empty).  Returns the list of files written."""
    if os.path.exists(directory) and (not os.path.isdir(directory) or os.listdir(directory)):
        raise FileExistsError(f"{directory} already exists and is not an empty folder; pick a new one")
    transform = keep_solutions if with_solutions else strip_solutions
    files = {"README.md": package_text("student", "README.md"), "conftest.py": package_text("student", "conftest.py"),
             "exercises/__init__.py": package_text("exercises", "__init__.py")}
    for task in TASKS:
        files[f"exercises/{task.module}.py"] = transform(package_text("exercises", f"{task.module}.py"))
        files[f"tests/test_task{task.number}.py"] = package_text("visible", f"test_task{task.number}.py")
    try:
        for name, text in files.items():
            path = os.path.join(directory, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
    except OSError:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    return sorted(files)
