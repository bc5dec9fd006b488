import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pcbench.tasks import last_boxed


@pytest.mark.parametrize(
    "text, expected",
    [
        ("so \\boxed{42}.", "42"),
        ("\\boxed{1} then \\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
        ("\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}", "\\left( 3, \\frac{\\pi}{2} \\right)"),
        ("\\boxed{3} and an unclosed \\boxed{4", "3"),
        ("\\boxed 5$.", "5"),
        ("\\fbox{x+1}", "x+1"),
        ("\\boxedx{2}", None),
        ("no answer here", None),
        ("\\boxed{", None),
        ("", None),
    ],
)
def test_last_boxed(text, expected):
    assert last_boxed(text) == expected


def test_deep_nesting_and_long_text_are_judged_right():
    deep = "\\boxed{" + "{" * 10_000 + "}" * 10_000 + "}"
    assert last_boxed(deep) == "{" * 10_000 + "}" * 10_000
    assert last_boxed("x" * 200_000 + "\\boxed{7}") == "7"
    assert last_boxed("\\boxed{" * 2000) is None
    assert last_boxed("\\boxed 5 " + "\\boxed $ " * 1000) == "5"


HOSTILE = {
    "deep nesting": lambda n: "\\boxed{" + "{" * n + "}" * n + "}",
    "unclosed boxes": lambda n: "\\boxed{" * n,
    "empty brace-less boxes": lambda n: "\\boxed $ " * n,  # each falls back to the one before
    "long text": lambda n: "x" * (20 * n) + "\\boxed{7}",
}


@pytest.mark.parametrize("family", sorted(HOSTILE))
def test_hostile_inputs_scale_linearly(family):
    """8x the input may take ~8x the time, never ~64x (quadratic). A growth ratio, not a speed
    target: best of 3 on each size, with a wide margin for a busy machine."""

    def best_time(n):
        text = HOSTILE[family](n)
        times = []
        for _ in range(3):
            start = time.perf_counter()
            last_boxed(text)
            times.append(time.perf_counter() - start)
        return min(times)

    small, large = best_time(20_000), best_time(160_000)
    assert large / small < 30, f"{family}: 8x input took {large / small:.0f}x the time"


@given(st.text(alphabet=st.sampled_from(list("\\boxed{}fx1 $")), max_size=200))
def test_never_raises_and_returns_a_substring(text):
    result = last_boxed(text)
    assert result is None or result in text
