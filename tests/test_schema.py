import polars as pl
import pytest

from pcbench.schema import PROMPTS, ROLLOUTS, SCORES, SchemaError


def rollout_row(**overrides):
    row = dict(
        step=0,
        round=1,
        phase="pilot",
        prompt_id="p",
        sample=0,
        policy_version=0,
        completion="x",
        token_ids=[5, 6],
        logprobs=[-0.1, -0.2],
        n_tokens=2,
        finish="stop",
    )
    return row | overrides


def test_frame_builds_and_checks():
    frame = ROLLOUTS.frame([rollout_row(), rollout_row(sample=1, phase="commit")])
    assert frame.schema["token_ids"] == pl.List(pl.Int64)
    assert ROLLOUTS.check(frame) is frame


def test_missing_column_is_named():
    frame = ROLLOUTS.frame([rollout_row()]).drop("finish")
    with pytest.raises(SchemaError, match=r"ROLLOUTS frame: missing columns \['finish'\]"):
        ROLLOUTS.check(frame)


def test_wrong_dtype_is_named():
    frame = ROLLOUTS.frame([rollout_row()]).with_columns(pl.col("step").cast(pl.Int32))
    with pytest.raises(SchemaError, match="'step' has dtype Int32, expected Int64"):
        ROLLOUTS.check(frame)


def test_enum_values_and_nulls():
    # a phase is any strategy's name for its rollouts (the ledger pays for each), never free text
    assert ROLLOUTS.frame([rollout_row(phase="warmup")]).height == 1
    with pytest.raises(SchemaError, match="'phase' has values \\['warm up'\\], not names"):
        ROLLOUTS.frame([rollout_row(phase="warm up")])
    with pytest.raises(SchemaError, match="'finish' has values \\['paused'\\]"):
        ROLLOUTS.frame([rollout_row(finish="paused")])
    scores = SCORES.frame(
        [
            dict(
                step=0,
                prompt_id="p",
                n=4,
                n_correct=2,
                mean=0.5,
                var=0.25,
                std=0.5,
                verdict="keep",
                evict=False,
            )
        ]
    )
    assert len(scores) == 1
    with pytest.raises(SchemaError, match="'prompt_id' has 1 nulls"):
        PROMPTS.frame([dict(prompt_id=None, prompt="q", answer="1", source="s", difficulty=None)])


def test_optional_columns_are_typed_when_present():
    frame = PROMPTS.frame(
        [dict(prompt_id="a", prompt="q", answer="1", source="s", difficulty=1, solution="s")]
    )
    assert frame.columns == ["prompt_id", "prompt", "answer", "source", "difficulty", "solution"]
    with pytest.raises(SchemaError, match="expected a polars DataFrame"):
        PROMPTS.check({"prompt_id": ["a"]})
