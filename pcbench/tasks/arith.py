"""Embedded arithmetic task: a seeded generator of graded problems with worked solutions.

Each problem is an integer expression over + - * built as a random binary tree. The worked
solution rewrites the expression one operation at a time (the leftmost operation whose operands
are both numbers), so a model can learn the procedure and its errors compound with length:
that is what spreads per-prompt pass rates over (0, 1). Subtraction swaps its operands when
needed so that every intermediate value is non-negative (no ambiguous "3*-4" renderings).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from pcbench.schema import PROMPTS
from pcbench.tasks.templates import ARITH_TEMPLATE, TextTemplate

PRECEDENCE = {"+": 1, "-": 1, "*": 2}


@dataclass(frozen=True)
class Level:
    """How hard one difficulty level is."""

    n_ops: int  # operations in the expression (= steps of the worked solution)
    max_add: int  # largest operand of + and -
    max_mul: int  # largest operand of *
    ops: str  # operators drawn from


# Graded from one small addition to three mixed operations with two-digit products.
LEVELS: dict[int, Level] = {
    1: Level(n_ops=1, max_add=99, max_mul=9, ops="+-"),
    2: Level(n_ops=1, max_add=999, max_mul=12, ops="+-*"),
    3: Level(n_ops=2, max_add=99, max_mul=12, ops="+-*"),
    4: Level(n_ops=3, max_add=99, max_mul=19, ops="+-*"),
    5: Level(n_ops=4, max_add=999, max_mul=99, ops="+-*"),
}


# An expression is an int (a leaf) or a tuple (op, left, right).
Expr = int | tuple


def evaluate(e: Expr) -> int:
    if isinstance(e, int):
        return e
    op, a, b = e
    x, y = evaluate(a), evaluate(b)
    return x + y if op == "+" else x - y if op == "-" else x * y


def render(e: Expr) -> str:
    """Infix text with only the parentheses needed to parse back to the same tree."""
    if isinstance(e, int):
        return str(e)
    op, a, b = e
    left, right = render(a), render(b)
    if isinstance(a, tuple) and PRECEDENCE[a[0]] < PRECEDENCE[op]:
        left = f"({left})"
    # A right operand of equal precedence needs brackets too: 9-(4+2) is not 9-4+2.
    if isinstance(b, tuple) and PRECEDENCE[b[0]] <= PRECEDENCE[op]:
        right = f"({right})"
    return f"{left}{op}{right}"


def reduce_once(e: Expr) -> Expr:
    """Evaluate the leftmost operation whose operands are both numbers."""
    op, a, b = e
    if isinstance(a, int) and isinstance(b, int):
        return evaluate(e)
    if isinstance(a, tuple):
        return (op, reduce_once(a), b)
    return (op, a, reduce_once(b))


def worked_solution(e: Expr) -> str:
    """' 3+20 = 23. \\boxed{23}' for 3+4*5: one rewrite per operation, then the boxed answer.

    The prompt ends with "3+4*5 =", so the solution continues that chain of equalities.
    """
    chain = []
    while isinstance(e, tuple):
        e = reduce_once(e)
        chain.append(render(e))
    return " " + " = ".join(chain) + ". \\boxed{" + chain[-1] + "}"


def _random_expr(rng: random.Random, level: Level, n_ops: int) -> Expr:
    if n_ops == 0:
        return rng.randint(0, level.max_add)
    n_left = rng.randint(0, n_ops - 1)
    op = rng.choice(level.ops)
    if op == "*":
        # Products keep operands small so that values stay readable: one factor is a leaf.
        factor = rng.randint(2, level.max_mul)
        other = _random_expr(rng, level, n_ops - 1) if n_ops > 1 else rng.randint(2, level.max_mul)
        a, b = (factor, other) if rng.random() < 0.5 else (other, factor)
    else:
        a = _random_expr(rng, level, n_left)
        b = _random_expr(rng, level, n_ops - 1 - n_left)
        if op == "-" and evaluate(a) < evaluate(b):
            a, b = b, a
    return (op, a, b)


def random_problem(rng: random.Random, difficulty: int) -> Expr:
    level = LEVELS[difficulty]
    return _random_expr(rng, level, level.n_ops)


def generate(
    n: int,
    seed: int,
    *,
    split: str,
    weights: dict[int, float] | None = None,
    exclude: frozenset[str] = frozenset(),
    template: TextTemplate = ARITH_TEMPLATE,
) -> pl.DataFrame:
    """n distinct problems as a PROMPTS frame (plus `solution`), drawn with difficulty weights."""
    weights = weights or {d: 1.0 for d in LEVELS}
    if unknown := set(weights) - set(LEVELS):
        raise ValueError(
            f"unknown difficulty levels {sorted(unknown)}; use some of {sorted(LEVELS)}"
        )
    rng = random.Random(seed)
    levels, w = list(weights), list(weights.values())
    seen, rows = set(exclude), []
    attempts = 0
    while len(rows) < n:
        attempts += 1
        if attempts > 50 * n + 1000:
            raise RuntimeError(f"could not draw {n} distinct problems; lower n or widen LEVELS")
        difficulty = rng.choices(levels, w)[0]
        e = random_problem(rng, difficulty)
        text = render(e)
        if text in seen:
            continue
        seen.add(text)
        rows.append(
            {
                "prompt_id": f"arith/{split}/{len(rows):05d}",
                "prompt": template.render(text),
                "answer": str(evaluate(e)),
                "source": "arith",
                "difficulty": difficulty,
                "solution": worked_solution(e),
            }
        )
    return PROMPTS.frame(rows)


def problem_text(prompt_frame: pl.DataFrame) -> list[str]:
    """The expression of each arithmetic prompt (its last line, without the trailing ' =')."""
    return [p.rsplit("\n", 1)[-1].removesuffix(" =") for p in prompt_frame["prompt"]]


def write_splits(
    out_dir: str | Path, *, seed: int = 0, n_train: int = 20_000, n_test: int = 1_000
) -> dict[str, Path]:
    """Write train.parquet and test.parquet; test problems never appear in train."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train = generate(n_train, seed, split="train")
    test = generate(n_test, seed + 1, split="test", exclude=frozenset(problem_text(train)))
    paths = {"train": out / "train.parquet", "test": out / "test.parquet"}
    for name, frame in (("train", train), ("test", test)):
        # Fixed writer settings so the same seed gives byte-identical files.
        frame.write_parquet(paths[name], compression="zstd", compression_level=9, statistics=False)
    return paths
