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


def test_deep_nesting_and_long_text_are_linear():
    deep = "\\boxed{" + "{" * 10_000 + "}" * 10_000 + "}"
    assert last_boxed(deep) == "{" * 10_000 + "}" * 10_000
    assert last_boxed("x" * 200_000 + "\\boxed{7}") == "7"
    assert last_boxed("\\boxed{" * 2000) is None


@given(st.text(alphabet=st.sampled_from(list("\\boxed{}fx1 $")), max_size=200))
def test_never_raises_and_returns_a_substring(text):
    result = last_boxed(text)
    assert result is None or result in text
