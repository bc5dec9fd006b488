"""GRESO (arXiv 2506.02177, github.com/Infini-AI-Lab/GRESO): skip prompts by their history of
all-equal groups before rolling them out, then DAPO's dynamic sampling on the survivors.

Rounds of prompts that survive GRESO's skip x n rollouts; groups whose rewards differ fill B
(surplus discarded); a round predicted to fill the batch is the last, full or not. The rules
are pure functions in pcbench.algos.greso (which says what the public code does); the traces
live on `State.prompt_state` (pcbench.prompt_state.GresoTraces).

Deviations from the public code, on purpose:
- GRESO draws the epoch's prompts one at a time until a round has its survivors; the official
  loader pulls 32-prompt chunks until it has at least that many and trims to a multiple of the
  GPU count. Same rule, exact round sizes, and no surplus to carry into the next round.
- An epoch that runs out inside a step discards the step's partial batch and starts the next
  epoch, as GRPO and DAPO do here (DESIGN §4.6); the official loader rolls straight on. GRESO's
  counts of all-correct and all-wrong groups still include the discarded rounds (they are kept
  on `prompt_state` until the step trains), as the official per-step shares do.
- p_easy and p_hard move just before the update instead of just after it: they steer only the
  next step's skips, and this way an update that fails undoes the move with the step.
- Success is the verifier's `correct` (0/1) in training; the skip traces and step shares read
  GRESO's own 1 / 0.1 / 0 reward, rebuilt from the verifier (algos/greso.py). Like DAPO, GRESO
  gives up after max_rounds rounds (on_max_rounds).

Sizes: its published runs use B = 256 (the R1-Distill run 128) x n = 8; the embedded default
scales every strategy as the Pilot-Commit preset (B 128 -> 8, n 128 -> 16), so sizes given in
prompts keep their ratio to B: a round of 384 = 1.5 B -> 12, the smallest round 64 = B/4 -> 2.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from pcbench import accounting
from pcbench.algos import greso
from pcbench.config import positive, require
from pcbench.prompt_state import GresoTraces
from pcbench.steps import call_seed, score
from pcbench.steps.batch import generate_counted, keep_informative, max_rounds_reached, train_on
from pcbench.strategies.registry import Strategy, register

SKIP_SALT = 1  # its skip draws differ from the engine call's of the same round


@dataclass(frozen=True)
class GresoConfig:
    p_easy: float = 0.5  # initial keep base after all-correct groups (skip 1 - p^z); +data.p_easy
    p_hard: float = 0.5  # initial keep base after all-wrong groups; +data.p_hard
    target_zero_variance: float = 0.25  # p_easy aims at 1/3 of it all-correct, p_hard at 2/3
    round_prompts: int = 12  # largest round, prompts surviving the skip (384 at B 256: 1.5 B)
    min_round_prompts: int = 2  # smallest later round (64 at B 256: B / 4)

    def __post_init__(self):
        for name in ("p_easy", "p_hard"):  # adapt() keeps them in [0.05, 0.95] once it runs
            value = getattr(self, name)
            require(0 < value <= 1, f"greso.{name} = {value}: must be in (0, 1]")
        t = self.target_zero_variance
        require(0 < t < 1, f"greso.target_zero_variance = {t}: must be in (0, 1)")
        positive(self, "round_prompts", "min_round_prompts")
        require(
            self.min_round_prompts <= self.round_prompts,
            f"greso.min_round_prompts = {self.min_round_prompts} > round_prompts = "
            f"{self.round_prompts}: lower min_round_prompts or raise round_prompts",
        )


@register("greso")
class GRESO(Strategy):
    phases = ("greso",)
    unselected_phases = ("greso",)
    table = GresoConfig
    allocation = {
        "filtering_stats/greso_kept": "kept",
        "filtering_stats/greso_discarded": "all-equal (discarded)",
        "filtering_stats/greso_surplus": "surplus (discarded)",
        "filtering_stats/greso_skipped_easy": "skipped unrolled (all-correct streak)",
        "filtering_stats/greso_skipped_hard": "skipped unrolled (all-wrong streak)",
    }

    def step(self, s, cfg, step):
        gc, traces, B, n = cfg.greso, s.prompt_state, cfg.batch_prompts, cfg.group_size
        kept: list[pl.DataFrame] = []
        size, last = gc.round_prompts, False
        for r in range(1, cfg.max_rounds + 1):
            pool = survivors(s, cfg, step, r, size)
            if pool is None:
                return None
            rollouts = generate_counted(s, cfg, step, r, pool, "greso")
            scores = score(rollouts, cfg)
            traces.record(*greso_rewards(rollouts))  # every group, also those dropped
            room = B - len(kept)
            informative = keep_informative(kept, rollouts, scores, room)
            accounting.count_dynamic_filter(
                s.ledger, step, "greso", scores.height, informative, room
            )
            if len(kept) >= B or last:
                break
            zero_variance = 1 - informative / scores.height  # this round's share only
            size, last = greso.next_round(
                (B - len(kept)) * n, zero_variance, n, gc.round_prompts, gc.min_round_prompts
            )
        else:
            max_rounds_reached(s, cfg, step, len(kept))
        if len(kept) < B:  # the last round fell short: train on it, as the official code
            accounting.count_partial_batch(s.ledger, step, len(kept))
        traces.end_step(gc.target_zero_variance, adapting=s.stream.epoch > 0)
        metrics = train_on(s, cfg, step, pl.concat(kept)) if kept else {}
        metrics |= {"greso/p_easy": traces.p_easy, "greso/p_hard": traces.p_hard}  # logged
        return metrics

    def rollouts_per_step(self, cfg, rounds=1.0):  # rounds of at most round_prompts x n
        return rounds * cfg.greso.round_prompts * cfg.group_size

    def budget_violations(self, cfg, col):
        return accounting.dynamic_filter_violations(cfg, col, "greso")

    def epoch_need(self, cfg):
        size = cfg.greso.round_prompts
        return size, f"one round of greso.round_prompts = {size}"

    def new_prompt_state(self, cfg):
        return GresoTraces(cfg.greso.p_easy, cfg.greso.p_hard)


def greso_rewards(rollouts: pl.DataFrame) -> tuple[list[str], list[list[float]]]:
    """(prompt ids, each group's GRESO rewards: 1 / 0.1 / 0) of a round's rollouts."""
    reward = (
        pl.when(pl.col("correct").fill_null(False))
        .then(greso.CORRECT)
        .when(pl.col("verify_status") == "no_answer")
        .then(greso.NO_ANSWER)
        .otherwise(greso.WRONG)  # a wrong answer, or one the verifier could not check
    )
    frame = rollouts.group_by("prompt_id", maintain_order=True).agg(reward.alias("greso_reward"))
    return frame["prompt_id"].to_list(), frame["greso_reward"].to_list()


def survivors(s, cfg, step: int, round: int, size: int) -> pl.DataFrame | None:
    """The epoch's next `size` prompts that GRESO does not skip (PROMPTS rows), or None if the
    epoch runs out first. A skipped prompt is used up for this epoch, as in the official loader."""
    rng = np.random.default_rng(call_seed(cfg.seed, step, round, SKIP_SALT))
    traces, picked, skipped = s.prompt_state, [], {"easy": 0, "hard": 0}
    while len(picked) < size:
        prompt = s.stream.next_pool(1)
        if prompt is None:
            break
        prompt_id = prompt["prompt_id"][0]
        p = traces.skip_probability(prompt_id)
        if p > 0 and rng.random() < p:
            skipped[traces.streak(prompt_id)] += 1
        else:
            picked.append(prompt)
    # prompts skipped before rollout (no rollouts: used up for this epoch)
    s.ledger.add(step, "filtering_stats/greso_skipped_easy", skipped["easy"])
    s.ledger.add(step, "filtering_stats/greso_skipped_hard", skipped["hard"])
    return pl.concat(picked) if len(picked) == size else None
