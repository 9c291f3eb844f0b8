"""The course testing kit (`minilab.testing`) does what its docstring shows."""
import textwrap

import pytest

import minilab.testing
from minilab import F


def test_the_docstring_example_runs_and_catches_a_wrong_backward():
    lines = [line for line in minilab.testing.__doc__.splitlines() if line.startswith("    ")]
    code = textwrap.dedent("\n".join(lines))
    namespace = {"student_lab": F.lab}
    exec(code, namespace)
    namespace["test_student_lab"]()                      # the reference passes against itself

    def wrong_lab(x, weight, bias, beta, pairing="channel"):
        return F.lab(x, weight, bias, beta * 2.0, pairing)   # the same ±1 map (sign of 2β·d), other gradients
    namespace["student_lab"] = wrong_lab
    # Hypothesis reports several distinct failing examples together, as an ExceptionGroup of AssertionErrors
    with pytest.raises((AssertionError, ExceptionGroup)) as caught:
        namespace["test_student_lab"]()
    if isinstance(caught.value, ExceptionGroup):
        assert caught.value.subgroup(AssertionError) is not None, caught.value
