"""minilab.course: a fresh workspace scores 0 ("not implemented"), the solutions full marks, every seeded bug fails
its task with its hint, an endless loop costs one task, grading is deterministic, and wrong LABs written
independently of the seeded bugs are caught with a readable counterexample."""
import io
import json
import os
import shutil
import subprocess
import stat
import sys
import zipfile

import numpy as np
import pytest

import minilab
from minilab.core import dispatch
from minilab.course.grade import grade, write_results
from minilab.course.tasks import TASKS
from minilab.course.workspace import start, strip_solutions

from course_bugs import BUGS

EXAMPLES = 15   # enough for every seeded bug; the default (50) is for real grading


@pytest.fixture(scope="module")
def solved(tmp_path_factory):
    root = tmp_path_factory.mktemp("course") / "teacher"
    start(str(root), with_solutions=True)
    return root


def variant(solved, tmp_path, task, old, new):
    """A copy of the teacher's workspace with one replacement in one task's module."""
    root = tmp_path / "student"
    shutil.copytree(solved, root)
    path = root / "exercises" / f"{next(t.module for t in TASKS if t.number == task)}.py"
    text = path.read_text()
    assert old in text, f"the seeded bug no longer applies to {path.name}: {old!r}"
    path.write_text(text.replace(old, new, 1))
    return root


def run_check(root, tasks=None, **options):
    out = io.StringIO()
    results = grade(str(root), tasks, examples=options.pop("examples", EXAMPLES), out=out, **options)
    return results, out.getvalue()


def test_fresh_workspace_scores_zero_and_says_not_implemented(tmp_path):
    root = tmp_path / "w"
    subprocess.run([sys.executable, "-m", "minilab.course", "start", str(root)], check=True, capture_output=True)
    for task in TASKS:
        text = (root / "exercises" / f"{task.module}.py").read_text()
        assert f'raise NotImplementedError("task {task.number}:' in text and "SOLUTION" not in text
    assert (root / "tests" / "test_task4.py").exists() and (root / "README.md").exists()
    proc = subprocess.run([sys.executable, "-m", "minilab.course", "check", str(root), "--json",
                           str(tmp_path / "r.json"), "--examples", "5"], capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert proc.stdout.count("NOT IMPLEMENTED") == len(TASKS) and "Score: 0/100" in proc.stdout
    results = json.loads((tmp_path / "r.json").read_text())
    assert results["score"] == 0 and len(results["tests"]) == len(TASKS)
    for test, task in zip(results["tests"], TASKS):
        assert set(test) >= {"name", "score", "max_score", "output", "visibility"}
        assert test["score"] == 0 and test["max_score"] == task.points
        assert f"not implemented: task {task.number}:" in test["output"]


def test_solutions_get_full_marks(solved, tmp_path):
    results, text = run_check(solved)
    write_results(results, tmp_path / "results.json")
    saved = json.loads((tmp_path / "results.json").read_text())
    assert len(saved["tests"]) >= 6
    assert saved["score"] == sum(t.points for t in TASKS) == 100, text
    assert all(t["score"] == t["max_score"] for t in saved["tests"])


@pytest.mark.parametrize("bug", BUGS, ids=[f"task{b.task}: {b.name}" for b in BUGS])
def test_seeded_bug_fails_its_task_with_its_hint(solved, tmp_path, bug):
    results, text = run_check(variant(solved, tmp_path, bug.task, bug.old, bug.new), [bug.task])
    (test,) = results["tests"]
    assert test["score"] == 0, text
    assert bug.hint in " ".join(test["output"].split()), text


def test_an_endless_loop_costs_its_task_only(solved, tmp_path):
    root = variant(solved, tmp_path, 5, "positive = x > 0", "while True:\n            pass")
    results, text = run_check(root, [5, 1], timeout=4)
    loop, other = results["tests"]
    assert loop["score"] == 0 and "time limit" in loop["output"]
    assert other["score"] == other["max_score"], text


def test_a_crash_costs_its_task_only(solved, tmp_path):
    root = variant(solved, tmp_path, 2, "(x,) = ctx.saved", "import os; os._exit(3)")
    results, text = run_check(root, [2, 1])
    crash, other = results["tests"]
    assert crash["score"] == 0 and "exit status 3" in crash["output"]
    assert other["score"] == other["max_score"], text


def test_a_module_that_does_not_import_fails_its_task_in_one_line(solved, tmp_path):
    root = variant(solved, tmp_path, 5, "def prelu(x, a):", "def prelu(x, a:")
    results, text = run_check(root, [5])
    assert results["score"] == 0
    assert "importing exercises/task5_prelu.py raised SyntaxError" in text and "Traceback" not in text


def test_the_same_submission_gets_the_same_report(solved, tmp_path):
    root = variant(solved, tmp_path, 4, "s = np.tanh(beta * diff / 2)", "s = np.tanh(beta * diff / 2.5)")
    first, second = run_check(root, [4]), run_check(root, [4])
    assert first == second
    assert first[0]["tests"][0]["score"] == 0


# Wrong LABs written as another student would, unlike the seeded bugs: the whole class rewritten.
FORGOT_THE_HALF = '''
class LabArgMax(Function):
    @staticmethod
    def forward(ctx, r, beta):
        n, c2, h, w = r.shape
        pairs = r.reshape(n, c2 // 2, 2, h, w)
        ctx.save(pairs, beta)
        return np.where(beta * (pairs[:, :, 1] - pairs[:, :, 0]) > 0, 1.0, -1.0).astype(r.dtype)

    @staticmethod
    def backward(ctx, grad):
        pairs, beta = ctx.saved
        d = pairs[:, :, 1] - pairs[:, :, 0]
        s = np.tanh(beta * d)                     # the Soft-ArgMax, without the 1/2
        ds = (1 - s ** 2) / 2
        gr = np.stack([-beta * ds * grad, beta * ds * grad], axis=2).reshape(pairs.shape[0], -1, *d.shape[2:])
        return gr, np.array((grad * d * ds).sum()).reshape(beta.shape)
'''

SIGN_TIES_TO_PLUS = '''
class LabArgMax(Function):
    @staticmethod
    def forward(ctx, r, beta):
        d = r[:, 1::2] - r[:, 0::2]
        ctx.save(d, beta)
        return np.sign(d) + (d == 0)              # sign(r1 − r0), with a tie going to +1

    @staticmethod
    def backward(ctx, grad):
        d, beta = ctx.saved
        s = np.tanh(beta * d / 2)
        g = grad * beta * (1 - s * s) / 2
        gr = np.zeros((d.shape[0], 2 * d.shape[1]) + d.shape[2:])
        gr[:, 0::2], gr[:, 1::2] = -g, g
        return gr, np.array((grad * d * (1 - s * s) / 2).sum()).reshape(beta.shape)
'''


@pytest.mark.parametrize("wrong, words", [(FORGOT_THE_HALF, ["central differences of tanh(β·(r1 − r0)/2) give",
                                                             "yours gives", "the /2 inside tanh"]),
                                          (SIGN_TIES_TO_PLUS, ["expected -1, yours gives 1", "r1 = r0 gives −1"])],
                         ids=["tanh without the 1/2", "sign(r1 - r0), ties to +1"])
def test_an_independent_wrong_lab_is_caught_with_a_readable_counterexample(solved, tmp_path, wrong, words):
    source = (solved / "exercises" / "task4_lab.py").read_text()
    head, tail = source.split("class LabArgMax(Function):")
    root = variant(solved, tmp_path, 4, source, head + wrong.lstrip() + "\n\ndef lab" + tail.split("\ndef lab", 1)[1])
    results, text = run_check(root, [4])
    output = results["tests"][0]["output"]
    assert results["score"] == 0
    assert "counterexample (shrunk by hypothesis):" in output and "r=array(" in output, text
    for word in words:
        assert word in " ".join(output.split()), text


def test_gradescope_zip_grades_an_upload_of_loose_files(solved, tmp_path):
    archive = tmp_path / "autograder.zip"
    subprocess.run([sys.executable, "-m", "minilab.course", "gradescope", str(archive)], check=True,
                   capture_output=True)
    with zipfile.ZipFile(archive) as zf:
        names = zf.namelist()
        assert {"setup.sh", "run_autograder", "minilab/course/tasks.py"} <= set(names)
        assert not [n for n in names if n.endswith((".so", ".pyc"))]
        assert all(zf.getinfo(n).external_attr >> 16 & stat.S_IXUSR for n in ("setup.sh", "run_autograder"))
        zf.extractall(tmp_path / "source")
    (tmp_path / "submission" / "upload").mkdir(parents=True)
    shutil.copy(solved / "exercises" / "task1_sign.py", tmp_path / "submission" / "upload")
    env = dict(os.environ, AUTOGRADER_ROOT=str(tmp_path), PYTHON=sys.executable)
    proc = subprocess.run(["bash", str(tmp_path / "source" / "run_autograder"), "--task", "1", "--task", "2",
                           "--examples", "5"], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    results = json.loads((tmp_path / "results" / "results.json").read_text())
    assert [t["score"] for t in results["tests"]] == [15, 0] and results["score"] == 15, proc.stdout


def test_template_and_solution_come_from_one_text():
    source = "def f(x):\n    # BEGIN SOLUTION task 9: f\n    return x\n    # END SOLUTION\n"
    assert strip_solutions(source) == 'def f(x):\n    raise NotImplementedError("task 9: f")\n'
    with pytest.raises(ValueError, match="never closed"):
        strip_solutions("# BEGIN SOLUTION task 9: f\nx = 1\n")


def test_start_refuses_a_folder_in_use_and_check_a_folder_that_is_no_workspace(tmp_path):
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "notes.txt").write_text("mine")
    for args in (["start", str(tmp_path / "used")], ["check", str(tmp_path)]):
        proc = subprocess.run([sys.executable, "-m", "minilab.course", *args], capture_output=True, text=True)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and str(tmp_path) in proc.stderr


def test_dispatch_replaced_swaps_an_implementation_in_and_back():
    from minilab.ops.activation import Rectifier

    class Doubled:
        @staticmethod
        def forward(ctx, x):
            return 2 * x

        @staticmethod
        def backward(ctx, g):
            return 3 * g

    x = minilab.Tensor(np.array([-1.0, 2.0]), requires_grad=True)
    with dispatch.replaced(Rectifier, Doubled):
        y = minilab.F.relu(x)
    y.backward(np.ones(2))            # the backward of the implementation that ran, even after the block
    np.testing.assert_array_equal(y.data, [-2.0, 4.0])
    np.testing.assert_array_equal(x.grad, [3.0, 3.0])
    np.testing.assert_array_equal(minilab.F.relu(x).data, [0.0, 2.0])
    assert Rectifier not in dispatch.replacements
