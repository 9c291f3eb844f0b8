"""Grade one task of a workspace, in its own process: `python -m minilab.course.worker DIR N EXAMPLES OUT.json`.

The parent (`grade.py`) gives this process a time limit, so an infinite loop or a crash in the student's code
costs that task only.  Hypothesis runs derandomized (its examples follow from each test alone), with no example
database and no deadline: the same submission gets the same result every time."""
import importlib
import json
import os
import sys
import textwrap
import traceback

import numpy as np
from hypothesis import HealthCheck, Phase, settings
from hypothesis.reporting import with_reporter

from .tasks import BY_NUMBER


class Workspace:
    """The student's modules as attributes: ws.task1 … ws.task6 (imported on first use)."""

    def __init__(self, root):
        self.root = root

    def __getattr__(self, name):
        if name.startswith("task") and name[4:].isdigit() and int(name[4:]) in BY_NUMBER:
            module = importlib.import_module(f"exercises.{BY_NUMBER[int(name[4:])].module}")
            setattr(self, name, module)
            return module
        raise AttributeError(name)

    def __repr__(self):
        return "<your workspace>"


def grading_settings(examples):
    return settings(max_examples=examples, derandomize=True, database=None, deadline=None, print_blob=False,
                    report_multiple_bugs=False, suppress_health_check=list(HealthCheck),
                    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink])   # no Phase.explain:
    # its notes name the grader's own lines, which tell a student nothing


def student_frame(exc, root):
    """'exercises/task3_binary_conv.py, line 52, in binary_conv2d: <code>' for the innermost frame in the
    student's files, or ''."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if os.path.isfile(f.filename) and os.path.abspath(f.filename).startswith(root + os.sep)]
    if not frames:
        return ""
    f = frames[-1]
    return f"{os.path.relpath(f.filename, root)}, line {f.lineno}, in {f.name}: {f.line}"


def counterexample(exc, reports):
    """Hypothesis's shrunk failing case as `name=value` lines: without the test's name, the workspace argument
    and hypothesis's own comments."""
    parts = []
    for note in list(getattr(exc, "__notes__", [])) + reports:
        lines = []
        for line in str(note).splitlines():
            stripped = line.strip()
            if "<your workspace>" in line or stripped.startswith(("ws=", "#", "Failing test case", "Falsifying")) \
                    or stripped in (")", "", "data=data(...),"):
                continue
            lines.append(line.split("  # ")[0].rstrip())
        parts.append(textwrap.dedent("\n".join(lines)).strip())
    return "\n".join(part for part in parts if part)


def run_check(test, args, examples, root):
    """{'status': 'passed' | 'failed' | 'not implemented', 'message', 'example', 'where'}."""
    reports = []
    try:
        with with_reporter(reports.append):
            grading_settings(examples)(test)(*args)
        return {"status": "passed"}
    except NotImplementedError as exc:
        return {"status": "not implemented", "message": str(exc) or "NotImplementedError",
                "where": student_frame(exc, root)}
    except AssertionError as exc:
        return {"status": "failed", "message": str(exc).strip(), "example": counterexample(exc, reports),
                "where": student_frame(exc, root)}
    except Exception as exc:   # the student's code crashed: that is a failure of this check, with its message
        return {"status": "failed", "message": f"your code raised {type(exc).__name__}: {exc}",
                "example": counterexample(exc, reports), "where": student_frame(exc, root)}


def visible_tests(task):
    """The workspace's local tests for this task (the package's copy, whatever the student did to theirs)."""
    module = importlib.import_module(f"minilab.course.visible.test_task{task.number}")
    return [(name, getattr(module, name)) for name in sorted(vars(module)) if name.startswith("test_")]


def grade_task(root, number, examples):
    task = BY_NUMBER[number]
    ws = Workspace(root)
    results = []
    for number in (task.number,) + task.needs:   # a module that does not import fails every check alike
        try:
            getattr(ws, f"task{number}")
        except Exception as exc:
            module = BY_NUMBER[number].module
            return {"task": task.number, "planned": 1, "checks": [{
                "name": f"exercises/{module}.py imports", "status": "failed",
                "message": f"importing exercises/{module}.py raised {type(exc).__name__}: {exc}",
                "where": student_frame(exc, root),
                "hint": "fix this first: a module that does not import cannot be graded (python -c "
                        f"'import exercises.{module}' in the workspace shows the whole error)"}]}
    checks = importlib.import_module(task.checks).CHECKS
    plan = [(c.name, c.hint, c.test, (ws,), min(examples, c.most or examples)) for c in checks]
    try:
        local = visible_tests(task)
    except Exception as exc:   # the local tests import every module they use: name the one that failed
        return {"task": task.number, "planned": 1, "checks": [{
            "name": f"tests/test_task{task.number}.py imports", "status": "failed",
            "message": f"importing the local tests raised {type(exc).__name__}: {exc}",
            "where": student_frame(exc, root), "hint": "fix this first: every exercise module must import"}]}
    plan += [(f"local test {name}", "run `python -m pytest tests` in your workspace: this local test fails",
              test, (), examples) for name, test in local]
    for name, hint, test, args, count in plan:
        outcome = run_check(test, args, count, root)
        outcome.update(name=name, hint=hint)
        results.append(outcome)
        if outcome["status"] != "passed":
            break
    return {"task": number, "checks": results, "planned": len(plan)}


def main(argv):
    root, number, examples, out = os.path.abspath(argv[0]), int(argv[1]), int(argv[2]), argv[3]
    sys.path.insert(0, root)
    np.set_printoptions(precision=4, threshold=40, edgeitems=3, linewidth=100, suppress=True)
    result = grade_task(root, number, examples)
    with open(out, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main(sys.argv[1:])
