import hashlib
import random

import polars as pl
import pytest

from pcbench.schema import PROMPTS
from pcbench.tasks import ARITH_TEMPLATE, LEVELS, generate_problems, last_boxed, write_splits
from pcbench.tasks.arith import (
    evaluate_expression,
    random_problem,
    reduce_once,
    render,
    worked_solution,
)

from conftest import ARITH


def python_value(text: str) -> int:
    # The rendered text only ever holds digits, + - * and parentheses (asserted first).
    assert set(text) <= set("0123456789+-*()")
    return eval(text)  # noqa: S307


@pytest.mark.parametrize("difficulty", sorted(LEVELS))
def test_rendering_parses_back_to_the_same_value(difficulty):
    rng = random.Random(difficulty)
    for _ in range(300):
        e = random_problem(rng, difficulty)
        assert python_value(render(e)) == evaluate_expression(e)


def test_worked_solution_steps_are_each_correct():
    rng = random.Random(7)
    for difficulty in LEVELS:
        for _ in range(100):
            e = random_problem(rng, difficulty)
            solution = worked_solution(e)
            chain = solution.replace("\\boxed{", "").removesuffix("}").strip()
            steps = [render(e)] + chain.split(" = ")
            assert len(steps) == LEVELS[difficulty].n_ops + 1
            assert {python_value(s) for s in steps} == {evaluate_expression(e)}
            assert last_boxed(solution) == str(evaluate_expression(e))


def test_hand_checked_examples():
    e = ("+", 3, ("*", 4, 5))
    assert render(e) == "3+4*5"
    assert reduce_once(e) == ("+", 3, 20)
    assert worked_solution(e) == " 3+20 = \\boxed{23}"
    assert worked_solution(("-", 9, 4)) == " \\boxed{5}"
    assert render(("-", 9, ("+", 4, 2))) == "9-(4+2)"
    assert render(("*", ("-", 9, 4), 2)) == "(9-4)*2"


@pytest.mark.parametrize("difficulty", sorted(LEVELS))
def test_every_intermediate_value_is_in_range(difficulty):
    rng = random.Random(3)
    level = LEVELS[difficulty]
    for _ in range(300):
        e = random_problem(rng, difficulty)
        while isinstance(e, tuple):
            assert "--" not in render(e) and not render(e).startswith("-")
            assert 0 <= evaluate_expression(e) <= level.max_value
            e = reduce_once(e)
        assert 0 <= e <= level.max_value


def test_generate_is_a_valid_prompts_frame_with_graded_difficulty():
    frame = generate_problems(2000, seed=1, split="train")
    PROMPTS.check(frame)
    assert frame["prompt_id"].n_unique() == 2000
    # Long problems are almost all distinct; one-operation facts recur by design.
    long = frame.filter(pl.col("difficulty") >= 4)
    assert long["prompt"].n_unique() >= 0.9 * len(long)
    assert set(frame["difficulty"].unique()) == set(LEVELS)
    first = frame.row(0, named=True)
    problem = first["prompt"].rsplit("\n", 1)[1].removesuffix(" =")
    assert first["prompt"] == ARITH_TEMPLATE.render(problem)
    assert python_value(problem) == int(first["answer"])
    # Harder levels need longer worked solutions.
    lengths = (
        frame.group_by("difficulty")
        .agg(pl.col("solution").str.len_chars().mean())
        .sort("difficulty")["solution"]
        .to_list()
    )
    assert lengths == sorted(lengths)


def test_weights_select_levels_and_unknown_levels_fail():
    frame = generate_problems(50, seed=0, split="x", weights={1: 1.0})
    assert frame["difficulty"].unique().to_list() == [1]
    with pytest.raises(ValueError, match="unknown difficulty levels \\[9\\]"):
        generate_problems(5, seed=0, split="x", weights={9: 1.0})


def test_same_seed_gives_byte_identical_files(tmp_path):
    digests = []
    for run in ("a", "b"):
        paths = write_splits(tmp_path / run, seed=5, n_train=3000, n_test=300)
        digests.append({k: hashlib.sha256(p.read_bytes()).hexdigest() for k, p in paths.items()})
    assert digests[0] == digests[1]
    other = write_splits(tmp_path / "c", seed=6, n_train=3000, n_test=300)
    assert hashlib.sha256(other["train"].read_bytes()).hexdigest() != digests[0]["train"]


def test_shipped_splits_are_what_the_generator_makes(tmp_path):
    train, test = (pl.read_parquet(ARITH / f"{s}.parquet") for s in ("train", "test"))
    assert len(train) >= 20_000 and len(test) >= 1_000
    PROMPTS.check(train)
    PROMPTS.check(test)
    regenerated = write_splits(tmp_path, seed=0, n_train=len(train), n_test=len(test))
    assert pl.read_parquet(regenerated["train"]).equals(train)
    assert pl.read_parquet(regenerated["test"]).equals(test)
    assert not set(test["prompt_id"]) & set(train["prompt_id"])


def test_a_noisy_teacher_slips_at_its_rate_and_leaves_problems_and_answers_alone():
    import re

    from pcbench.tasks.arith import generate_problems

    clean = generate_problems(3000, 7, split="t")
    noisy = generate_problems(3000, 7, split="t", slip={3: 0.2, 4: 0.2, 5: 0.2})
    final = generate_problems(3000, 7, split="t", slip={4: 0.5}, slip_final_only=True)
    for frame in (noisy, final):  # same problems, same (true) answers: only solutions differ
        assert frame["prompt"].equals(clean["prompt"]) and frame["answer"].equals(clean["answer"])

    def boxed(solution):
        return re.search(r"\\boxed\{(-?\d+)\}", solution).group(1)

    def wrong(frame, level):
        rows = frame.filter(pl.col("difficulty") == level)
        return (
            sum(boxed(s) != a for s, a in zip(rows["solution"], rows["answer"], strict=True))
            / rows.height
        )

    assert wrong(noisy, 1) == wrong(noisy, 2) == 0  # levels without slips
    # Level 3 has 2 steps: a slip at either (one off, so never cancelled by itself) -> ~0.36;
    # later slips can land back on the right value, so allow a margin below.
    assert 0.28 < wrong(noisy, 3) < 0.42
    assert 0.42 < wrong(final, 4) < 0.58 and wrong(final, 3) == 0  # final step only, level 4
    # final_only: every value before the box is the clean solution's
    rows = final.filter(pl.col("difficulty") == 4)
    ref = clean.filter(pl.col("difficulty") == 4)
    for s, c in zip(rows["solution"], ref["solution"], strict=True):
        assert s.rsplit("\\boxed", 1)[0] == c.rsplit("\\boxed", 1)[0]
