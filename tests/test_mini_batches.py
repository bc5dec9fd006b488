"""Optimizer steps per training step: verl's mini-batches (`update.mini_batch_prompts`) and the
official Pilot-Commit normalisation, counted by hand (pure). The learning rate each optimizer
step sees on the real policy: tests/test_steps.py."""

import polars as pl
import pytest

from pcbench.config import UpdateConfig, from_dict
from pcbench.steps.update import mini_batch_parts


def batch(prompts: int, phases: dict[str, int]) -> pl.DataFrame:
    """A training batch's prompt ids and phases: `phases` rollouts of each phase per prompt,
    groups contiguous (as pcbench and verl order them)."""
    rows = [(f"p{i}", phase) for i in range(prompts) for phase, k in phases.items()
            for _ in range(k)]  # fmt: skip
    return pl.DataFrame(rows, schema=["prompt_id", "phase"], orient="row")


def steps(frame: pl.DataFrame, **update) -> list[tuple[int, float]]:
    """(rows, loss weight) of each optimizer step."""
    return [(len(rows), w) for rows, w in mini_batch_parts(frame, UpdateConfig(**update))]


# The embedded default's B = 8, n = 16 (PC: 4 pilot + 12 commit); 2 prompts a mini-batch.
GRPO, DAPO = batch(8, {"grpo": 16}), batch(8, {"dapo": 16})
PC = batch(8, {"pilot": 4, "commit": 12})


def test_one_mini_batch_by_default_and_equal_parts_with_mini_batches():
    assert steps(GRPO) == steps(PC) == [(128, 1.0)]
    assert steps(PC, mini_batches=3) == [(43, 1.0), (43, 1.0), (42, 1.0)]


def test_verl_mini_batches_count_prompts_x_group_size_for_every_strategy():
    # 128 rows / (2 prompts x 16) = 4 steps of 32 rows each, for GRPO, DAPO and PC alike
    for frame in (GRPO, DAPO, PC):
        assert steps(frame, mini_batch_prompts=2) == [(32, 1.0)] * 4
    assert steps(GRPO, mini_batch_prompts=3) == [(48, 1.0), (48, 1.0), (32, 2 / 3)]


def test_the_official_pc_normalisation_makes_more_smaller_steps():
    # rollout.n = n_commit = 12: 2 x 12 = 24 rows a step, 128 = 5 x 24 + 8 (weight 8/24)
    got = steps(PC, mini_batch_prompts=2, official_pc_normalisation=True)
    assert got == [(24, 1.0)] * 5 + [(8, pytest.approx(1 / 3))]
    # the paper's 1.5B preset: B 128 x (32 pilot + 96 commit), ppo_mini_batch_size 32: GRPO
    # makes 4 steps of 4,096 rows, PC 5 of 3,072 and one of 1,024 at 1/3 (5 1/3 steps' worth)
    paper_pc, paper_grpo = batch(128, {"pilot": 32, "commit": 96}), batch(128, {"grpo": 128})
    assert steps(paper_grpo, mini_batch_prompts=32) == [(4096, 1.0)] * 4
    got = steps(paper_pc, mini_batch_prompts=32, official_pc_normalisation=True)
    assert got == [(3072, 1.0)] * 5 + [(1024, pytest.approx(1 / 3))]
    with pytest.raises(ValueError, match="no commit rollouts"):
        steps(GRPO, mini_batch_prompts=2, official_pc_normalisation=True)


def test_mini_batch_settings_are_validated():
    with pytest.raises(ValueError, match="both size the mini-batches"):
        UpdateConfig(mini_batches=2, mini_batch_prompts=4)
    with pytest.raises(ValueError, match="set mini_batch_prompts too"):
        UpdateConfig(official_pc_normalisation=True)
    with pytest.raises(ValueError, match="use None or a count > 0"):
        UpdateConfig(mini_batch_prompts=0)
    official = {"mini_batch_prompts": 2, "official_pc_normalisation": True}
    with pytest.raises(ValueError, match="no commit rollouts to size"):
        from_dict({"strategy": "grpo", "update": official})
    assert (
        from_dict({"strategy": "pilot_commit", "update": official}).update.mini_batch_prompts == 2
    )
