"""`check`: grade a workspace task by task, each in its own process with a time limit, and report the points —
as text for the student, and as Gradescope's results.json for the autograder."""
import json
import os
import subprocess
import sys
import tempfile
import textwrap

from .tasks import BY_NUMBER, TASKS

MINILAB_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_task(root, task, examples, timeout):
    """The worker's result for one task, or a failure that says why it gave none (time limit, crash)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "result.json")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [MINILAB_ROOT, os.environ.get("PYTHONPATH")])),
                   PYTHONDONTWRITEBYTECODE="1",
                   HYPOTHESIS_STORAGE_DIRECTORY=os.path.join(tmp, "hypothesis"))   # nothing left in the workspace
        command = [sys.executable, "-m", "minilab.course.worker", root, str(task.number), str(examples), out]
        try:
            proc = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return stopped(task, f"stopped after the {timeout:g} s time limit: an endless loop, or code far too "
                                 "slow (a Python loop over every pixel?)")
        if os.path.exists(out):
            with open(out) as f:
                return json.load(f)
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-6:])
        return stopped(task, f"your code ended the grading process (exit status {proc.returncode}):\n{tail}")


def stopped(task, message):
    return {"task": task.number, "planned": 1,
            "checks": [{"name": "the task runs to its end", "status": "failed", "message": message,
                        "hint": "run the local tests (python -m pytest tests) to see where it stops"}]}


def verdict(result):
    checks = result["checks"]
    if all(c["status"] == "passed" for c in checks) and len(checks) == result["planned"]:
        return "passed"
    return "not implemented" if checks[-1]["status"] == "not implemented" else "failed"


def explain(task, result):
    """The text a student reads for one task."""
    checks = result["checks"]
    status = verdict(result)
    if status == "passed":
        return f"all {len(checks)} checks passed"
    last = checks[-1]
    if status == "not implemented":
        message = last["message"]
        if message.startswith("task ") and not message.startswith(f"task {task.number}:"):
            return f"  not implemented: {message} — task {task.number} runs that code: write it first"
        return f"  not implemented: {message} (exercises/{task.module}.py)"
    lines = [f"{len(checks) - 1} of {result['planned']} checks passed; this one did not:", f"  check: {last['name']}"]
    lines.append(textwrap.indent(last["message"], "  "))
    if last.get("where"):
        lines.append(f"  in {last['where']}")
    if last.get("example"):
        lines.append("  counterexample (shrunk by hypothesis):")
        lines.append(textwrap.indent(last["example"], "    "))
    lines.append(textwrap.fill(f"hint: {last['hint']}", width=110, initial_indent="  ", subsequent_indent="        "))
    return "\n".join(lines)


def grade(root, tasks=None, examples=50, timeout=120.0, out=sys.stdout):
    """Grade the workspace at `root` (all tasks, or the numbers in `tasks`); print the report to `out` and return
    Gradescope's results dict."""
    root = os.path.abspath(root)
    chosen = [BY_NUMBER[n] for n in tasks] if tasks else TASKS
    tests, score = [], 0
    for task in chosen:
        result = run_task(root, task, examples, timeout)
        status = verdict(result)
        points = task.points if status == "passed" else 0
        score += points
        text = explain(task, result)
        header = f"Task {task.number} · {task.title}"
        print(f"{header} {'.' * max(3, 72 - len(header))} {points:>3}/{task.points}  {status.upper()}", file=out)
        if status != "passed":
            print(text + "\n", file=out)
        out.flush()
        tests.append({"name": f"Task {task.number}: {task.title}", "score": points, "max_score": task.points,
                      "status": "passed" if status == "passed" else "failed", "output": text,
                      "visibility": "visible"})
    total = sum(task.points for task in chosen)
    print(f"Score: {score}/{total}", file=out)
    return {"score": score, "tests": tests}


def write_results(results, path):
    """Gradescope's results.json: score, and tests with name, score, max_score, output, visibility."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    with open(path, "w") as f:
        json.dump(results, f, indent=2, ensure_ascii=False, allow_nan=False)   # strict JSON: scores are finite
