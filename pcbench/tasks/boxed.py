"""Find the content of the last \\boxed{...} (or \\fbox{...}) in a text, braces balanced."""

from __future__ import annotations

import re

BOX = re.compile(r"\\(?:boxed|fbox)(?=[{ ])")
WORD = re.compile(r"\s*(\S*)")  # "\boxed 5": the next word, matched in place (no slicing)


def last_boxed(text: str) -> str | None:
    """Content of the last complete \\boxed{...}; None when there is none.

    An unclosed last box falls back to the one before it. `\\boxed 5` (no braces, as some
    models write) yields "5". One pass matches every brace, so hostile inputs such as
    thousands of unclosed boxes stay linear in len(text).
    """
    starts = [m.end() for m in BOX.finditer(text)]
    if not starts:
        return None
    closing = _matching_braces(text)
    for i in reversed(starts):
        if text[i] == " ":  # "\boxed 5": the argument is the next word
            # Matched at i, not split from a slice: a slice per box made "\boxed $ " * n
            # quadratic (each empty word falls back to the box before it).
            word = WORD.match(text, i).group(1).rstrip("$.")
            if word:
                return word
        elif i in closing:
            return text[i + 1 : closing[i]]
    return None


def _matching_braces(text: str) -> dict[int, int]:
    """Position of each '{' that is closed -> position of its '}'."""
    closing, open_at = {}, []
    for m in re.finditer(r"[{}]", text):
        if m.group() == "{":
            open_at.append(m.start())
        elif open_at:
            closing[open_at.pop()] = m.start()
    return closing
