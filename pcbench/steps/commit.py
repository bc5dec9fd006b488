"""plan and commit: who gets commit rollouts and how many (pure), then generate them."""

from __future__ import annotations

import numpy as np
import polars as pl

from pcbench.algos import max_variance_subset
from pcbench.algos.allocation import commit_allocation
from pcbench.config import RunConfig
from pcbench.schema import PLAN
from pcbench.steps.rollouts import call_seed, generate, requests


def plan(taken, cfg: RunConfig, step: int) -> pl.DataFrame:
    """Buffer entries taken for this round -> PLAN: n_commit rollouts each (the paper's rule),
    or (commit.allocation = value_per_cost) the round's budget split by value / cost."""
    ids, c = [e.prompt_id for e in taken], cfg.commit
    counts = [c.n_commit] * len(ids)
    if c.allocation == "value_per_cost" and taken:
        values, costs = commit_value_cost(taken)
        tokens = c.budget == "tokens"
        budget = len(taken) * c.n_commit * (float(costs.mean()) if tokens else 1.0)
        counts = commit_allocation(
            values, costs, budget, c.min_commit, c.max_commit, budget_in_tokens=tokens
        ).tolist()
    return PLAN.frame({"step": [step] * len(ids), "prompt_id": ids, "n_commit": counts})


def commit_value_cost(taken) -> tuple[np.ndarray, np.ndarray]:
    """Per buffered prompt: p(1 - p) of its pilot, and its pilot's mean completion tokens."""
    p = np.array([e.mean for e in taken], dtype=np.float64)
    costs = np.array([max(1.0, float(e.rollouts["n_tokens"].mean())) for e in taken])
    return p * (1 - p), costs


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
