"""Embedded arithmetic task: a seeded generator of graded problems with worked solutions.

Each problem is an integer expression over + - * of single-digit operands, built as a random
binary tree whose every intermediate value stays in [0, max_value]. The worked solution
continues the prompt's "... =" by rewriting the expression one operation at a time (the
leftmost operation whose operands are both numbers), then boxes the result.

Why small numbers: a policy small enough to train on two CPU cores in minutes can memorise the
few hundred facts such expressions use (7+8, 3*6, 15-9, ...) but not multi-digit algorithms.
Difficulty then comes from the number of operations: each step is another chance to err, so
pass rates at temperature 1 fall with length and spread over (0, 1) -- what allocation needs.
One-operation problems come from a space of a few hundred, so they recur within and across the
splits (like the facts they are); longer ones are almost all distinct.
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
    ops: str  # operators drawn from
    max_leaf: int = 9  # largest operand
    max_value: int = 20  # largest value any sub-expression may take


LEVELS: dict[int, Level] = {
    1: Level(n_ops=1, ops="+-"),
    2: Level(n_ops=1, ops="*"),
    3: Level(n_ops=2, ops="+-*"),
    4: Level(n_ops=3, ops="+-*"),
    5: Level(n_ops=4, ops="+-*"),
}


# An expression is an int (a leaf) or a tuple (op, left, right).
Expr = int | tuple


def evaluate_expression(e: Expr) -> int:
    if isinstance(e, int):
        return e
    op, a, b = e
    x, y = evaluate_expression(a), evaluate_expression(b)
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


def reduce_once(e: Expr, slip=None) -> Expr:
    """Evaluate the leftmost operation whose operands are both numbers (`slip` may change the
    value it writes: a noisy teacher's error)."""
    op, a, b = e
    if isinstance(a, int) and isinstance(b, int):
        value = evaluate_expression(e)
        return slip(value) if slip else value
    if isinstance(a, tuple):
        return (op, reduce_once(a, slip), b)
    return (op, a, reduce_once(b, slip))


def off_by_one(rng: random.Random, p: float):
    """A slip: with probability p a written value is one off (up or down; never below 0)."""

    def slip(value: int) -> int:
        if rng.random() >= p:
            return value
        return value + 1 if value == 0 or rng.random() < 0.5 else value - 1

    return slip


def worked_solution(e: Expr, slip=None, final_only: bool = False) -> str:
    """' 3+20 = \\boxed{23}' for 3+4*5: one rewrite per operation, the last one boxed.

    The prompt ends with "3+4*5 =", so the solution continues that chain of equalities. The
    result is written once, inside the box: copying it a second time would only add a step
    at which a sampled policy can slip. With `slip` (a noisy teacher, `off_by_one`), a step
    may write a wrong value and the chain goes on from it, so the boxed answer is wrong too:
    a policy fitted to such solutions errs at a known rate per step, an error mode RL can
    remove (the pass@k - pass@1 gap of real models).
    """
    chain = []
    while isinstance(e, tuple):
        last = isinstance(e[1], int) and isinstance(e[2], int)  # the boxed step
        e = reduce_once(e, slip if last or not final_only else None)
        chain.append(render(e))
    return " " + " = ".join(chain[:-1] + ["\\boxed{" + chain[-1] + "}"])


def _random_expr(rng: random.Random, level: Level, n_ops: int) -> Expr:
    if n_ops == 0:
        return rng.randint(0, level.max_leaf)
    n_left = rng.randint(0, n_ops - 1)
    a = _random_expr(rng, level, n_left)
    b = _random_expr(rng, level, n_ops - 1 - n_left)
    op = rng.choice(level.ops)
    if op == "-" and evaluate_expression(a) < evaluate_expression(b):
        a, b = b, a  # keep every intermediate value non-negative
    return (op, a, b)


def _values(e: Expr):
    yield evaluate_expression(e)
    if isinstance(e, tuple):
        yield from _values(e[1])
        yield from _values(e[2])


def random_problem(rng: random.Random, difficulty: int) -> Expr:
    """A random expression of the level, redrawn until every sub-expression is in range."""
    level = LEVELS[difficulty]
    while True:
        e = _random_expr(rng, level, level.n_ops)
        if max(_values(e)) <= level.max_value:
            return e


def generate_problems(
    n: int,
    seed: int,
    *,
    split: str,
    weights: dict[int, float] | None = None,
    template: TextTemplate = ARITH_TEMPLATE,
    slip: dict[int, float] | None = None,
    slip_final_only: bool = False,
) -> pl.DataFrame:
    """n problems drawn i.i.d. with difficulty weights, as a PROMPTS frame (plus `solution`).

    `slip` (per difficulty level): a noisy teacher's probability that a step of the worked
    solution writes a value one off. Slips draw from their own seeded generator, so the problems
    are the same with and without them; `answer` is always the true value."""
    weights = weights or {d: 1.0 for d in LEVELS}
    if unknown := set(weights) - set(LEVELS):
        raise ValueError(
            f"unknown difficulty levels {sorted(unknown)}; use some of {sorted(LEVELS)}"
        )
    rng, slip_rng = random.Random(seed), random.Random(f"{seed}-slip")
    levels, w = list(weights), list(weights.values())
    rows = []
    for i in range(n):
        difficulty = rng.choices(levels, w)[0]
        e = random_problem(rng, difficulty)
        rows.append(
            {
                "prompt_id": f"arith/{split}/{i:05d}",
                "prompt": template.render(render(e)),
                "answer": str(evaluate_expression(e)),
                "source": "arith",
                "difficulty": difficulty,
                "solution": worked_solution(
                    e,
                    off_by_one(slip_rng, slip.get(difficulty, 0.0)) if slip else None,
                    slip_final_only,
                ),
            }
        )
    return PROMPTS.frame(rows)


def write_splits(
    out_dir: str | Path, *, seed: int = 0, n_train: int = 20_000, n_test: int = 1_000
) -> dict[str, Path]:
    """Write train.parquet (seed) and test.parquet (seed + 1)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    splits = {
        "train": generate_problems(n_train, seed, split="train"),
        "test": generate_problems(n_test, seed + 1, split="test"),
    }
    paths = {}
    for name, frame in splits.items():
        paths[name] = out / f"{name}.parquet"
        # Fixed writer settings so the same seed gives byte-identical files.
        frame.write_parquet(paths[name], compression="zstd", compression_level=9, statistics=False)
    return paths
