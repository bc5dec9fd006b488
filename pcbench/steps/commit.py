"""plan and commit: who gets commit rollouts and how many (pure), then generate them."""

from __future__ import annotations

import numpy as np
import polars as pl

from pcbench.algos import max_variance_subset
from pcbench.config import RunConfig
from pcbench.schema import PLAN
from pcbench.steps.rollouts import call_seed, generate, requests


def plan(taken, cfg: RunConfig, step: int) -> pl.DataFrame:
    """Buffer entries taken for this round -> PLAN: n_commit rollouts each (the paper's rule)."""
    ids = [e.prompt_id for e in taken]
    return PLAN.frame(
        {"step": [step] * len(ids), "prompt_id": ids, "n_commit": [cfg.commit.n_commit] * len(ids)}
    )


def commit(
    engine,
    verifier,
    plan: pl.DataFrame,
    prompts: pl.DataFrame,
    cfg: RunConfig,
    step: int,
    round: int = 1,
) -> pl.DataFrame:
    """PLAN -> ROLLOUTS(phase=commit): the planned rollouts, rewarded."""
    reqs = requests(plan["prompt_id"], plan["n_commit"].to_list(), "commit")
    seed = call_seed(cfg.seed, step, round)
    return generate(
        engine, verifier, reqs, prompts, cfg.sampling, step=step, round=round, seed=seed
    )


def reused_pilot(rollouts: pl.DataFrame, n_reuse: int | None) -> pl.DataFrame:
    """The pilot rollouts that join the training group: all, or n_reuse by max variance."""
    if n_reuse is None or n_reuse >= rollouts.height:
        return rollouts
    keep = max_variance_subset(rollouts["correct"].fill_null(False).to_numpy(), n_reuse)
    return rollouts[np.asarray(keep)] if len(keep) else rollouts.head(0)


def training_group(entry, commit_rollouts: pl.DataFrame, n_reuse: int | None) -> pl.DataFrame:
    """A committed prompt's training group: its (reused) pilot rollouts + its commit rollouts."""
    mine = commit_rollouts.filter(pl.col("prompt_id") == entry.prompt_id)
    return pl.concat([reused_pilot(entry.rollouts, n_reuse), mine], how="diagonal_relaxed")
