"""The pilot as a seam: the paper's single pilot and pcbench's sequential pilot, one interface.

A round (`pcbench.rounds`) asks its pilot four things and knows nothing else about stages:

    first(cfg)            rollouts per fresh prompt in the round's shared engine call
    extend(s, cfg, ...)   any further pilot calls after that one -> PilotOutcome
    classify(s, cfg, ...) the round's SCORES with the pilot's own decisions applied
    counts(outcome)       the pilot's own ledger entries

and `fixed(cfg)` says how many pilot rollouts every fresh prompt gets (None where it depends on
the prompt), which the regression checks' accounting identity reads.

`PaperPilot` is the official single stage: n_pilot rollouts in the shared call, nothing after.
`SequentialPilot` is pcbench's: stages 0 -> s1 -> ... -> n_pilot, a prompt stopping once its Beta
posterior is confidently outside the keep band (`algos.allocation`), its first stage in the
shared call and one call per further stage. `pilot_for(cfg)` picks one; besides this module only
`config.PilotConfig` and the widgets' controls know that stages exist.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import polars as pl

from pcbench.algos.allocation import explore_draw, stop_verdicts
from pcbench.config import RunConfig
from pcbench.schema import SCORES
from pcbench.steps.rollouts import call_seed, generate, requests

EXPLORE_SALT = 1_000  # seeds the explore draw apart from the stages' sampling seeds


@dataclass
class PilotOutcome:
    rollouts: pl.DataFrame  # every pilot rollout of the round, all stages
    stopped: dict[str, tuple[str, int]] = field(default_factory=dict)  # id -> (verdict, n)
    explored: list[str] = field(default_factory=list)  # prior-only stops piloted anyway


class Pilot(Protocol):
    def first(self, cfg: RunConfig) -> int: ...

    def fixed(self, cfg: RunConfig) -> int | None: ...

    def extend(self, s, cfg: RunConfig, pool: pl.DataFrame, first: pl.DataFrame, step: int,
               round: int, on_call=None) -> PilotOutcome: ...  # fmt: skip

    def classify(self, s, cfg: RunConfig, pool: pl.DataFrame, scores: pl.DataFrame,
                 outcome: PilotOutcome, step: int) -> pl.DataFrame: ...  # fmt: skip

    def counts(self, outcome: PilotOutcome) -> dict[str, int]: ...


class PaperPilot:
    """The official pilot: n_pilot rollouts per fresh prompt, all in the round's shared call."""

    def first(self, cfg: RunConfig) -> int:
        return cfg.pilot.n_pilot

    def fixed(self, cfg: RunConfig) -> int | None:
        return cfg.pilot.n_pilot

    def extend(self, s, cfg, pool, first, step, round, on_call=None) -> PilotOutcome:
        return PilotOutcome(first)

    def classify(self, s, cfg, pool, scores, outcome, step) -> pl.DataFrame:
        return scores

    def counts(self, outcome: PilotOutcome) -> dict[str, int]:
        return {}


class SequentialPilot:
    """pcbench's pilot: stop each prompt as soon as its posterior leaves the keep band."""

    def first(self, cfg: RunConfig) -> int:
        return cfg.pilot.stages[0]

    def fixed(self, cfg: RunConfig) -> int | None:
        return None  # a prompt stops after any stage

    def extend(self, s, cfg, pool, first, step, round, on_call=None) -> PilotOutcome:
        """The remaining stages after `first` (the rollouts of stage 0, possibly none).

        After each stage but the last, prompts whose posterior is confidently outside the keep
        band stop; the rest get the next stage's extra rollouts, all of them in one engine call.
        At a stage of 0 rollouts (the prior alone decides) a `pilot.explore` share of the stops
        is piloted anyway. `on_call()` runs after each engine call (the loop counts the
        verifier's health there)."""
        pc, sc = cfg.pilot, cfg.score
        sizes = (*pc.stages, pc.n_pilot)
        ids = pool["prompt_id"].to_list()
        prior_of = dict(zip(ids, stage_priors(pool, cfg, s.prior), strict=True))
        out, active = PilotOutcome(first), ids
        for stage, (size, nxt) in enumerate(stage_pairs(sizes), start=1):
            k, n = _counts(out.rollouts, active)
            verdict = stop_verdicts(k, n, sc.keep_min, sc.keep_max, pc.delta,
                                    [prior_of[p] for p in active])  # fmt: skip
            if size == 0:
                drawn = explore_draw(verdict, pc.explore,
                                     call_seed(cfg.seed, step, round, salt=EXPLORE_SALT))  # fmt: skip
                out.explored = [p for p, v, d in zip(active, verdict, drawn, strict=True)
                                if v and not d]  # fmt: skip
                verdict = drawn
            out.stopped |= {p: (v, size) for p, v in zip(active, verdict, strict=True) if v}
            active = [p for p, v in zip(active, verdict, strict=True) if not v]
            if not active:
                break
            new = generate(
                s.engine, s.verifier, requests(active, nxt - size, "pilot"), s.prompts,
                cfg.sampling, step=step, round=round,
                seed=call_seed(cfg.seed, step, round, salt=stage),
            )  # fmt: skip
            if on_call:
                on_call()
            # sample numbers continue the prompt's earlier stages (they index its pilot group)
            new = new.with_columns(pl.col("sample") + size)
            out.rollouts = (
                pl.concat([out.rollouts, new], how="diagonal_relaxed")
                if out.rollouts.height
                else new
            )
        return out

    def classify(self, s, cfg, pool, scores, outcome, step) -> pl.DataFrame:
        """Early stops applied; the piloted prompts' pass rates feed the online prior."""
        scores = apply_stops(scores, outcome.stopped, pool["prompt_id"].to_list(), step)
        seen = scores.filter(pl.col("n") > 0)
        s.prior.observe(
            prior_buckets(pool, cfg, seen["prompt_id"]), seen["mean"].to_list(),
            seen["n"].to_list(),
        )  # fmt: skip
        return scores

    def counts(self, outcome: PilotOutcome) -> dict[str, int]:
        return {
            "filtering_stats/early_stopped": len(outcome.stopped),
            "filtering_stats/prior_skipped": sum(n == 0 for _, n in outcome.stopped.values()),
            "filtering_stats/prior_explored": len(outcome.explored),
        }


def pilot_for(cfg: RunConfig) -> Pilot:
    return SequentialPilot() if cfg.pilot.stages else PaperPilot()


# ---- the sequential pilot's pure parts ------------------------------------------------------


def stage_pairs(sizes: tuple[int, ...]):
    """(stage size, next stage size) for every stage but the last."""
    return zip(sizes[:-1], sizes[1:], strict=True)


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
