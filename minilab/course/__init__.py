"""A course in a box: graded exercises on binary neural networks, tested by properties.

    python -m minilab.course start DIR [--with-solutions]        the student's (or the teacher's) workspace
    python -m minilab.course check DIR [--task N] [--json r.json] grade it; --json writes Gradescope's format

The pieces, one concern each:
    tasks.py       the tasks, their points and files
    exercises/     each task's module: the student's template and the solution in one text (marked blocks)
    checks/        each task's hidden checks: hypothesis properties, each with the hint for its usual mistake
    visible/       the local tests a workspace gets (the grader runs these copies too)
    workspace.py   `start`;  grade.py: `check`;  worker.py: one task in its own process
    swap.py        runs a model with the student's ops, through minilab.core.dispatch.replaced
    refs.py        the minilab internals the course compares with
    gradescope/    setup.sh and run_autograder, the Gradescope wrapper"""
