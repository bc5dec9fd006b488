"""The shared generate-and-reward helper: request frame in, rewarded ROLLOUTS out.

Every phase (pilot, commit, grpo, dapo, eval) goes through `generate`, so all rollouts carry
the same columns and every one is verified. Pilot and commit of a round share one engine call
(DESIGN §4.3): `generate_round` builds both request sets and splits the result by phase.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from pcbench.config import SamplingConfig
from pcbench.schema import PROMPTS, ROLLOUTS

REQUEST_COLUMNS = {"prompt_id": pl.String, "n": pl.Int64, "phase": pl.String}


def call_seed(seed: int, step: int, round: int, salt: int = 0) -> int:
    """The sampling seed of one engine call, a function of (run seed, step, round) only."""
    return int(np.random.SeedSequence([seed, step, round, salt]).generate_state(1)[0])


def requests(prompt_ids, n: int | list[int], phase: str) -> pl.DataFrame:
    """A request frame: n rollouts of `phase` for each prompt id."""
    ids = list(prompt_ids)
    counts = [n] * len(ids) if isinstance(n, int) else list(n)
    return pl.DataFrame(
        {"prompt_id": ids, "n": counts, "phase": [phase] * len(ids)}, schema=REQUEST_COLUMNS
    )


def _with_prompts(reqs: pl.DataFrame, prompts: pl.DataFrame) -> pl.DataFrame:
    joined = reqs.join(prompts.select("prompt_id", "prompt", "answer"), on="prompt_id", how="left")
    if missing := joined.filter(pl.col("prompt").is_null())["prompt_id"].to_list():
        raise KeyError(f"requested prompt ids not in the PROMPTS frame: {missing[:5]}")
    return joined


def generate(
    engine,
    verifier,
    reqs: pl.DataFrame,
    prompts: pl.DataFrame,
    sampling: SamplingConfig,
    *,
    step: int,
    round: int = 1,
    seed: int | None = None,
) -> pl.DataFrame:
    """Generate and verify every requested rollout; ROLLOUTS with reward columns."""
    if reqs.height == 0:  # nothing asked: the columns of a rewarded frame, no rows
        return pl.DataFrame(schema=ROLLOUTS.columns)
    joined = _with_prompts(reqs, PROMPTS.check(prompts))
    try:
        rollouts = engine.generate(
            joined.drop("answer"), sampling, step=step, round=round, seed=seed
        )
    except Exception as error:  # say where: a traceback from inside vLLM does not
        phases = ", ".join(sorted(set(reqs["phase"])))
        error.add_note(
            f"pcbench: the engine failed generating {int(reqs['n'].sum())} rollouts ({phases}) "
            f"at step {step}, round {round}; a run resumes from its last checkpoint "
            "(pcbench run --resume, or Run.open)"
        )
        raise
    answers = rollouts.select("prompt_id").join(
        joined.select("prompt_id", "answer").unique("prompt_id"),
        on="prompt_id",
        how="left",
        maintain_order="left",
    )["answer"]
    judged = verifier.verify(rollouts["completion"].to_list(), answers.to_list())
    return ROLLOUTS.check(pl.concat([rollouts, judged], how="horizontal"))


def generate_round(
    engine,
    verifier,
    fresh_ids,
    plan: pl.DataFrame,
    prompts: pl.DataFrame,
    *,
    n_pilot: int,
    sampling: SamplingConfig,
    step: int,
    round: int,
    seed: int | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(pilot ROLLOUTS of the fresh prompts, commit ROLLOUTS of the plan) from one engine call."""
    reqs = pl.concat(
        [
            requests(fresh_ids, n_pilot, "pilot"),
            requests(plan["prompt_id"], plan["n_commit"].to_list(), "commit"),
        ]
    ).filter(pl.col("n") > 0)  # a sequential pilot may start at 0; an allocation may give 0
    rollouts = generate(
        engine, verifier, reqs, prompts, sampling, step=step, round=round, seed=seed
    )
    return (
        rollouts.filter(pl.col("phase") == "pilot"),
        rollouts.filter(pl.col("phase") == "commit"),
    )
