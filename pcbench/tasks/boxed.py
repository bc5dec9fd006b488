"""Find the content of the last \\boxed{...} (or \\fbox{...}) in a text, braces balanced."""

from __future__ import annotations

BOX_COMMANDS = ("\\boxed", "\\fbox")


def last_boxed(text: str) -> str | None:
    """Content of the last complete \\boxed{...}; None when there is none.

    An unclosed last box falls back to the one before it. `\\boxed 5` (no braces, as some
    models write) yields "5". Cost is linear in len(text) per box tried.
    """
    end = len(text)
    while (start := max(text.rfind(cmd, 0, end) for cmd in BOX_COMMANDS)) != -1:
        content = _box_content(text, start)
        if content is not None:
            return content
        end = start
    return None


def _box_content(text: str, start: int) -> str | None:
    cmd = next(c for c in BOX_COMMANDS if text.startswith(c, start))
    i = start + len(cmd)
    rest = text[i : i + 1]
    if rest == " ":  # "\boxed 5": the argument is the next word
        words = text[i:].split(maxsplit=1)
        return words[0].rstrip("$.") or None if words else None
    if rest != "{":
        return None  # e.g. "\boxedx": not a box command
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j]
    return None
