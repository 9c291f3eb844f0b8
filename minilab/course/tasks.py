"""The graded tasks, in the order they build on each other.  To change a task's points, edit `points` here;
to add a task, add a line, its exercise module (exercises/) and its checks module (checks/)."""
from dataclasses import dataclass


@dataclass(frozen=True)
class Task:
    number: int
    module: str        # exercises/<module>.py: the student's file
    title: str
    points: int
    needs: tuple = ()  # earlier tasks whose code this one runs

    @property
    def checks(self):
        return f"minilab.course.checks.task{self.number}"


TASKS = [
    Task(1, "task1_sign", "sign and its straight-through gradient", 15),
    Task(2, "task2_approxsign", "ApproxSign's piecewise-polynomial surrogate", 15, needs=(1,)),
    Task(3, "task3_binary_conv", "binary conv by XNOR-popcount, with 0- or +1-padding", 20),
    Task(4, "task4_lab", "LAB: ArgMax forward, Soft-ArgMax backward (to r and β)", 20),
    Task(5, "task5_prelu", "PReLU and the gradient of its slope", 15),
    Task(6, "task6_bireal", "a Bi-Real block trained with your ops", 15, needs=(1, 2, 3, 4, 5)),
]

BY_NUMBER = {task.number: task for task in TASKS}
