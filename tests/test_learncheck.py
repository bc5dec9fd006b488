"""The learning check's measurement and verdict (over hand-written run directories), and the
tiny policy's card, which records both training stages and keeps the learning check."""

import json

import polars as pl
import pytest

from pcbench.config import RunConfig
from pcbench.run import Run
from pcbench.tiny.learncheck import Criteria, card_text, last_evals_gain, verdict


def _grpo_run(root, per_eval: dict[int, list[float]], steps: int) -> Run:
    """A finished GRPO run whose evaluations give these per-prompt mean@k values."""
    run = Run.create(RunConfig(name="lc", strategy="grpo", steps=steps), root)
    for step, values in per_eval.items():
        run.write("evals", step, pl.DataFrame({
            "step": [step] * len(values), "benchmark": ["arith"] * len(values),
            "prompt_id": [f"p{i}" for i in range(len(values))], "k": [4] * len(values),
            "mean@k": values, "pass@k": [1.0] * len(values),
        }))  # fmt: skip
    return run


def test_gain_is_paired_over_the_last_two_evaluations(tmp_path):
    start = [0.0, 0.25, 0.5, 0.75]
    run = _grpo_run(tmp_path, {0: start, 10: [0.25, 0.5, 0.5, 1.0],
                               20: [0.25, 0.25, 0.75, 1.0], 30: [0.25, 0.5, 0.75, 1.0]}, 30)  # fmt: skip
    row = last_evals_gain(run)
    assert row["evaluated"] == [20, 30] and row["prompts"] == 4
    # per prompt: mean of steps 20 and 30 minus step 0 = 0.25, 0.125, 0.25, 0.25
    assert row["gain"] == pytest.approx(0.21875)
    assert row["se"] == pytest.approx(pl.Series([0.25, 0.125, 0.25, 0.25]).std() / 2)
    assert row["peak_step"] == 30 and row["curve"][0] == pytest.approx(0.375)


def test_verdict_names_every_criterion_it_fails():
    good = {"gain": 0.12, "se": 0.009, "peak_step": 90, "steps": 120}
    assert verdict(good) == []
    assert verdict(good | {"gain": 0.09}) == ["gain +0.0900 < 0.1"]
    assert verdict(good | {"se": 0.011}) == ["SE 0.0110 > 0.01"]
    assert verdict(good | {"gain": 0.104, "se": 0.0099, "peak_step": 30}) == [
        "peak at step 30 of 120"  # the gain stopped coming within the first quarter
    ]
    assert verdict(good | {"gain": 0.04}, Criteria(min_gain=0.03)) == ["gain < 5 SE"]
    assert verdict(good | {"peak_step": 0, "gain": 0.0}) == ["gain +0.0000 < 0.1", "gain < 5 SE"]


def test_card_section_states_each_seed_and_the_verdict():
    rows = [
        {"seed": s, "steps": 120, "prompts": 1000, "start": 0.47, "end": 0.58, "gain": g,
         "se": 0.009, "peak_step": 120, "curve": [0.47, 0.58], "fails": f}
        for s, g, f in ((0, 0.11, []), (1, 0.09, ["gain +0.0900 < 0.1"]))
    ]  # fmt: skip
    text = card_text(rows, "pcbench tiny learncheck --seeds 0 1")
    assert "| 0 | 120 | 1000 | 0.470 | 0.580 | +0.1100 ± 0.0090 | 120 | — | qualifies |" in text
    assert "gain +0.0900 < 0.1" in text and "Model organism: **no**" in text
    assert "`pcbench tiny learncheck --seeds 0 1`" in text
    assert "Model organism: **yes**" in card_text(rows[:1], "c")


def test_card_records_both_stages_and_keeps_the_learning_check(tmp_path):
    from pcbench.tiny.card import write_card
    from pcbench.tiny.learncheck import write_card_section
    from pcbench.tiny.profile import Profile

    base = {"parameters": 1000, "examples_seen": 48, "train_examples": 200, "final_loss": 0.5,
            "wall_seconds": 3.0, "torch": "x", "data": {"split": "train.parquet"},
            "config": {"hidden_size": 64, "layers": 2, "intermediate_size": 128, "steps": 6,
                       "batch_size": 8, "lr": 0.002, "warmup_steps": 2, "min_lr_ratio": 0.1,
                       "weight_decay": 0.01, "seed": 0, "threads": 2}}  # fmt: skip
    tuned = base | {
        "final_loss": 0.2, "init": base,
        "data": {"split": "sft.parquet", "prompts": 500, "seed": 2,
                 "slip": [0, 0, 0.7, 0.7, 0.7], "slip_final_only": True},
        "config": base["config"] | {"steps": 4, "lr": 0.001, "hidden_size": 999},
    }  # fmt: skip
    (tmp_path / "train_stats.json").write_text(json.dumps(tuned))
    per_prompt = pl.DataFrame({"prompt_id": ["a", "b", "c"], "difficulty": [1, 3, 5],
                               "n": [4] * 3, "n_correct": [4, 2, 0], "n_boxed": [4] * 3,
                               "pass_rate": [1.0, 0.5, 0.0]})  # fmt: skip
    profile = Profile(per_prompt, 4, 1.0, 0, 1.0, "data/arith/train.parquet")
    write_card_section(tmp_path, [], "first")  # a learning check written before the profile
    text = write_card(tmp_path, profile, "pcbench tiny profile --card").read_text()
    assert "Stage 1 — Base SFT" in text and "Stage 2 — Noisy-teacher fine-tune" in text
    assert "`data/arith/train.parquet` (200 arithmetic prompts" in text
    assert "500 fresh arithmetic prompts (seed 2" in text
    assert "at the boxed (last) step only) with probability level 3 0.7" in text
    assert "hidden\n64" in text  # the architecture is the base stage's
    assert "first 3 prompts of `data/arith/train.parquet`" in text
    assert text.count("<!-- begin learncheck -->") == 1 and "`first`" in text


@pytest.mark.slow
def test_grpo_learns_on_the_shipped_policy(tmp_path, tiny_engine):
    """The learning check at reduced size (CARD.md has the full one): the default GRPO config
    on the shipped policy, 30 steps, 500 held-out prompts x 8. The default must be a curve that
    moves, by a margin the evaluation can see, or no rollouts-to-target number means anything."""
    from pcbench.tiny.learncheck import learning_check

    from conftest import ROOT, TINY_POLICY

    sets = ["steps=30", "eval.every=15", "eval.max_prompts=500"]
    (row,) = learning_check(str(TINY_POLICY), ROOT / "configs" / "tiny-grpo.toml", [0],
                            tmp_path, sets)  # fmt: skip
    assert row["prompts"] == 500 and row["evaluated"] == [15, 30]
    assert row["gain"] >= 0.04 and row["gain"] >= 4 * row["se"], row
