"""pilot and score: measure each fresh prompt's pass rate, then classify it (pure)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import polars as pl

from pcbench.algos import group_stats, verdicts
from pcbench.algos.allocation import explore_draw, stop_verdicts
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


# ---- the sequential pilot (pcbench's; cfg.pilot.stages empty = the paper's single stage) ----


def _counts(rollouts: pl.DataFrame, ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(n_correct, n) per prompt id, 0 for ids without rollouts."""
    if rollouts.height == 0:
        return np.zeros(len(ids), dtype=np.int64), np.zeros(len(ids), dtype=np.int64)
    agg = rollouts.group_by("prompt_id").agg(
        pl.col("correct").fill_null(False).sum().alias("k"), pl.len().alias("n")
    )
    k, n = (
        dict(zip(agg["prompt_id"], agg["k"], strict=True)),
        dict(zip(agg["prompt_id"], agg["n"], strict=True)),
    )
    return np.array([k.get(p, 0) for p in ids]), np.array([n.get(p, 0) for p in ids])


def prior_buckets(fresh: pl.DataFrame, cfg: RunConfig, ids=None) -> list:
    """The prior bucket (cfg.pilot.prior_key value, or None) of each prompt id (default: all)."""
    ids = fresh["prompt_id"].to_list() if ids is None else list(ids)
    key = cfg.pilot.prior_key
    if not key or key not in fresh.columns:
        return [None] * len(ids)
    of = dict(zip(fresh["prompt_id"], fresh[key], strict=True))
    return [of[p] for p in ids]


def stage_priors(fresh: pl.DataFrame, cfg: RunConfig, prior) -> list[tuple[float, float]]:
    """Each fresh prompt's Beta prior: its bucket's online fit, or flat."""
    if cfg.pilot.prior == "flat" or prior is None:
        return [(1.0, 1.0)] * fresh.height
    return prior.priors(prior_buckets(fresh, cfg))


EXPLORE_SALT = 1_000  # seeds the explore draw apart from the stages' sampling seeds


class PilotStages(NamedTuple):
    rollouts: pl.DataFrame  # every pilot rollout of every stage
    stopped: dict[str, tuple[str, int]]  # prompt_id -> (verdict, rollouts it had at the stop)
    explored: list[str]  # prompts the prior alone would have stopped, piloted anyway


def pilot_stages(
    engine, verifier, fresh: pl.DataFrame, first: pl.DataFrame, prompts: pl.DataFrame,
    cfg: RunConfig, priors: list[tuple[float, float]], step: int, round: int = 1, on_call=None,
) -> PilotStages:  # fmt: skip
    """Run the remaining pilot stages after `first` (the rollouts of stage 0, possibly none).

    After each stage but the last, prompts whose posterior is confidently outside the keep band
    stop; the rest get the next stage's extra rollouts, all of them in one engine call. At a
    stage of 0 rollouts (the prior alone decides) a `pilot.explore` share of the stops is
    piloted anyway. `on_call()` runs after each engine call (the loop counts the verifier's
    health there).
    """
    pc, sc = cfg.pilot, cfg.score
    sizes = (*pc.stages, pc.n_pilot)
    ids = fresh["prompt_id"].to_list()
    prior_of = dict(zip(ids, priors, strict=True))
    rollouts, stopped, explored, active = first, {}, [], ids
    for stage, (size, nxt) in enumerate(zip(sizes[:-1], sizes[1:], strict=True), start=1):
        k, n = _counts(rollouts, active)
        verdict = stop_verdicts(k, n, sc.keep_min, sc.keep_max, pc.delta,
                                [prior_of[p] for p in active])  # fmt: skip
        if size == 0:
            seed = call_seed(cfg.seed, step, round, salt=EXPLORE_SALT)
            drawn = explore_draw(verdict, pc.explore, seed)
            explored = [p for p, v, d in zip(active, verdict, drawn, strict=True) if v and not d]
            verdict = drawn
        stopped |= {p: (v, size) for p, v in zip(active, verdict, strict=True) if v}
        active = [p for p, v in zip(active, verdict, strict=True) if not v]
        if not active:
            break
        new = generate(
            engine, verifier, requests(active, nxt - size, "pilot"), prompts, cfg.sampling,
            step=step, round=round, seed=call_seed(cfg.seed, step, round, salt=stage),
        )  # fmt: skip
        if on_call:
            on_call()
        # sample numbers continue the prompt's earlier stages (they index its pilot group)
        new = new.with_columns(pl.col("sample") + size)
        rollouts = pl.concat([rollouts, new], how="diagonal_relaxed") if rollouts.height else new
    return PilotStages(rollouts, stopped, explored)


def apply_stops(
    scores: pl.DataFrame, stopped: dict[str, tuple[str, int]], fresh_ids, step: int
) -> pl.DataFrame:
    """SCORES in fresh order with early stops applied (pure): a stopped prompt keeps the
    verdict it stopped with and is never evict-marked (eviction is for full pilots); one
    stopped before any rollout gets a row with n = 0 and null statistics."""
    if not stopped:
        return scores
    verdict = pl.col("prompt_id").replace_strict(
        {p: v for p, (v, _) in stopped.items()}, default=pl.col("verdict")
    )
    is_stopped = pl.col("prompt_id").is_in(list(stopped))
    scored = scores.with_columns(verdict=verdict, evict=pl.col("evict") & ~is_stopped)
    unseen = [p for p in fresh_ids if p in stopped and p not in set(scores["prompt_id"])]
    blank = SCORES.frame(
        {"step": [step] * len(unseen), "prompt_id": unseen, "n": [0] * len(unseen),
         "n_correct": [0] * len(unseen), "mean": [None] * len(unseen),
         "var": [None] * len(unseen), "std": [None] * len(unseen),
         "verdict": [stopped[p][0] for p in unseen], "evict": [False] * len(unseen)}
    )  # fmt: skip
    order = {p: i for i, p in enumerate(fresh_ids)}
    both = pl.concat([scored, blank], how="diagonal_relaxed")
    return SCORES.check(both.sort(pl.col("prompt_id").replace_strict(order, default=len(order))))
