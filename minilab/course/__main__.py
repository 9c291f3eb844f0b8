"""python -m minilab.course start DIR [--with-solutions] | check DIR [--task N] [--json results.json]"""
import argparse
import importlib.util
import os
import sys

from .tasks import BY_NUMBER, TASKS

DESCRIPTION = """A course on binary neural networks: six graded tasks (sign and STE, ApproxSign, the XNOR-popcount
binary conv, LAB, PReLU, a Bi-Real block trained with the student's ops), graded by property-based tests.

  start DIR               write a student workspace into DIR (exercises/, tests/, README.md)
  start DIR --with-solutions   the teacher's version, with every solution written in
  check DIR               grade a workspace: points per task; for a failure the check, hypothesis's shrunk
                          counterexample, the expected and actual values and a hint
  check DIR --json r.json also write Gradescope's results.json (the autograder runs exactly this)
  gradescope OUT.zip      the autograder zip to upload to Gradescope (setup.sh, run_autograder, minilab)

The teacher's guide is docs/course.md."""


def build_parser():
    """The command line of `python -m minilab.course` (the docs render their page from it)."""
    parser = argparse.ArgumentParser(prog="python -m minilab.course", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="write a student workspace")
    start.add_argument("dir", help="a new (or empty) folder")
    start.add_argument("--with-solutions", action="store_true", help="write the solutions in (the teacher's copy)")
    check = sub.add_parser("check", help="grade a workspace")
    check.add_argument("dir", help="the workspace (the folder that holds exercises/)")
    check.add_argument("--task", type=int, action="append", metavar="N",
                       help=f"grade only task N (1–{len(TASKS)}; repeat for several)")
    check.add_argument("--json", metavar="PATH", help="write Gradescope's results.json to PATH")
    check.add_argument("--examples", type=int, default=50, metavar="K",
                       help="hypothesis examples per check (default 50; more is slower and more thorough)")
    check.add_argument("--timeout", type=float, default=120.0, metavar="S",
                       help="time limit per task in seconds (default 120)")
    zip_parser = sub.add_parser("gradescope", help="write the Gradescope autograder zip")
    zip_parser.add_argument("zip", help="the .zip file to write")
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)

    if args.command == "gradescope":
        from .autograder import build_zip
        if not args.zip.endswith(".zip"):
            parser.exit(2, f"minilab.course gradescope: {args.zip}: the output name must end in .zip\n")
        try:
            count = build_zip(args.zip)
        except OSError as exc:
            parser.exit(2, f"minilab.course gradescope: cannot write {args.zip}: {exc}\n")
        print(f"wrote {args.zip} ({count} files): upload it as the autograder of a Gradescope programming "
              "assignment (base image Ubuntu 24.04)")
        return 0

    if args.command == "start":
        from .workspace import start as write
        try:
            write(args.dir, args.with_solutions)
        except (OSError, ValueError) as exc:
            parser.exit(2, f"minilab.course start: {exc}\n")
        kind = "the teacher's workspace (with solutions)" if args.with_solutions else "a student workspace"
        print(f"wrote {kind} to {args.dir}: see {os.path.join(args.dir, 'README.md')}; grade it with "
              f"python -m minilab.course check {args.dir}")
        return 0

    if importlib.util.find_spec("hypothesis") is None:
        parser.exit(2, "minilab.course check: grading needs hypothesis: pip install \"minilab[course]\"\n")
    if not os.path.isfile(os.path.join(args.dir, "exercises", "__init__.py")):
        parser.exit(2, f"minilab.course check: {args.dir} is not a course workspace (no exercises/__init__.py); "
                       "write one with: python -m minilab.course start DIR\n")
    for n in args.task or ():
        if n not in BY_NUMBER:
            parser.exit(2, f"minilab.course check: --task {n}: tasks are numbered 1 to {len(TASKS)}\n")
    if args.examples < 1 or args.timeout <= 0:
        parser.exit(2, "minilab.course check: --examples must be at least 1 and --timeout positive\n")
    if args.json:   # before the grading, not after it
        from ..core.validate import Refused, check_output_file
        try:
            check_output_file(args.json, "--json")
        except Refused as exc:
            parser.exit(2, f"minilab.course check: {exc}\n")
    from .grade import grade, write_results
    results = grade(args.dir, args.task, args.examples, args.timeout)
    if args.json:
        try:
            write_results(results, args.json)
        except OSError as exc:
            parser.exit(2, f"minilab.course check: cannot write --json {args.json}: {exc}\n")
    return 0 if all(t["score"] == t["max_score"] for t in results["tests"]) else 1


if __name__ == "__main__":
    sys.exit(main())
