"""pilot and score: measure each fresh prompt's pass rate, then classify it (pure)."""

from __future__ import annotations

import numpy as np
import polars as pl

from pcbench.algos import group_stats, verdicts
from pcbench.config import RunConfig, ScoreConfig
from pcbench.schema import SCORES
from pcbench.steps.rollouts import call_seed, generate, requests


def pilot(
    engine, verifier, prompts: pl.DataFrame, cfg: RunConfig, step: int, round: int = 1
) -> pl.DataFrame:
    """PROMPTS -> ROLLOUTS(phase=pilot): n_pilot rewarded rollouts per prompt."""
    reqs = requests(prompts["prompt_id"], cfg.pilot.n_pilot, "pilot")
    seed = call_seed(cfg.seed, step, round)
    return generate(
        engine, verifier, reqs, prompts, cfg.sampling, step=step, round=round, seed=seed
    )


def score(rollouts: pl.DataFrame, cfg: RunConfig | ScoreConfig) -> pl.DataFrame:
    """ROLLOUTS -> SCORES: per-prompt correctness stats and verdict, prompts in first-seen order.

    Pure and cheap: re-run it over cached pilot rollouts with other thresholds to see what
    they would keep. `step` is the step the prompt's rollouts were generated at.
    """
    sc = cfg.score if isinstance(cfg, RunConfig) else cfg
    if rollouts.height == 0:
        return SCORES.empty()
    order = rollouts["prompt_id"].unique(maintain_order=True)
    index = {pid: i for i, pid in enumerate(order)}
    group = np.array([index[p] for p in rollouts["prompt_id"]])
    correct = rollouts["correct"].fill_null(False).to_numpy().astype(np.float64)
    s = group_stats(correct, group)
    verdict, evict = verdicts(s["mean"], sc.keep_min, sc.keep_max, sc.evict_at)
    step = rollouts.group_by("prompt_id", maintain_order=True).agg(pl.col("step").max())["step"]
    return SCORES.frame(
        {
            "step": step.to_list(),
            "prompt_id": order.to_list(),
            "n": s["n"].tolist(),
            "n_correct": s["n_correct"].tolist(),
            "mean": s["mean"].tolist(),
            "var": s["var"].tolist(),
            "std": s["std"].tolist(),
            "verdict": verdict.tolist(),
            "evict": evict.tolist(),
        }
    )
