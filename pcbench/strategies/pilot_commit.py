"""Pilot-Commit: a small pilot group per fresh prompt measures its pass rate; prompts inside
the keep band wait in the buffer, and later rounds commit the rest of their group to them.

A step runs rounds (`pcbench.rounds`: begin, generate, classify, finish) until B prompts are
committed, then closes the batch (stale pilots dropped after the take, the official order) and
trains on the committed groups. The round asks its `Pilot` (`pcbench.pilots`: the paper's single
pilot, or the sequential one) how to pilot, and the commit step (`steps.commit`) how to share
the commit budget; those and the history gate (`pilot.gate`) are the named seams where the
options beyond the paper enter, so the paper's path reads straight through here.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from pcbench import accounting, atomic
from pcbench.pilots import pilot_for
from pcbench.prompt_state import MoppsPosteriors
from pcbench.rounds import PCRound, run_round
from pcbench.steps.batch import max_rounds_reached, train_on
from pcbench.strategies.registry import Strategy, register


@dataclass
class PCBatch:
    rounds: list[PCRound]
    rollouts: pl.DataFrame | None  # training rollouts (None: nothing to train on)
    stale_dropped: list[str]
    epoch_ended: bool = False  # the epoch ran out before the batch filled


@register("pilot_commit")
class PilotCommit(Strategy):
    phases = ("pilot", "commit")
    unselected_phases = ("pilot",)
    hand_stages = True  # the dashboard's pilot, score, commit and update buttons
    allocation = {
        "filtering_stats/kept": "kept",
        "filtering_stats/too_easy": "too easy (kept for later epochs)",
        "filtering_stats/too_hard": "too hard",
        "filtering_stats/evict_marked": "too easy, evict marked",
        "buffer_stats/stale_drop": "stale dropped",
        # pilot.gate = "history": drawn but not piloted (0 without the gate)
        "filtering_stats/gate_skipped_easy": "gate-skipped, likely easy",
        "filtering_stats/gate_skipped_hard": "gate-skipped, likely hard",
    }
    counters = tuple(
        f"filtering_stats/{n}" for n in ("seen", "early_stopped", "prior_skipped", "prior_explored")
    )

    def step(self, s, cfg, step):
        batch = collect(s, cfg, step)
        if batch.epoch_ended:
            return None
        return train_batch(s, cfg, step, batch)

    def rollouts_per_step(self, cfg, rounds=1.0):
        return (
            rounds * cfg.pool_prompts * cfg.pilot.n_pilot + cfg.batch_prompts * cfg.commit.n_commit
        )

    def budget_violations(self, cfg, col):
        out = []
        per_prompt = pilot_for(cfg).fixed(cfg)  # None: a sequential pilot stops prompts early
        pilots = col("rounds") * cfg.pool_prompts * (per_prompt or 0)
        if per_prompt is not None and not (col("rollout_stats/pilot") == pilots).all():
            out.append("pilot rollouts are not rounds x pool x n_pilot")
        takes = col("buffer_stats/take") * cfg.commit.n_commit
        if cfg.commit.allocation == "uniform" and not (col("rollout_stats/commit") == takes).all():
            out.append("commit rollouts are not takes x n_commit")
        if (col("buffer_stats/age_max") > cfg.commit.max_staleness + 1).any():
            out.append(f"a pilot older than max_staleness {cfg.commit.max_staleness} was committed")
        return out

    def trains_b_by_n(self, cfg):
        return cfg.commit.allocation != "value_per_cost"  # groups sized by value

    def epoch_need(self, cfg):
        return 2 * cfg.pool_prompts, (
            f"2 pools of pool_prompts = {cfg.pool_prompts}, since a round commits only prompts "
            "piloted in an earlier round"
        )

    def new_prompt_state(self, cfg):
        # pilot.gate = "history": each prompt's Beta posterior (pcbench.algos.gate)
        return MoppsPosteriors() if cfg.pilot.gate == "history" else None


def collect(s, cfg, step: int) -> PCBatch:
    """Rounds until B prompts are committed (`rollouts` None if the epoch ran out first)."""
    rounds, in_batch = [], 0
    for r in range(1, cfg.max_rounds + 1):
        result = run_round(s, cfg, step, r, cfg.batch_prompts - in_batch)
        if result is None:
            return PCBatch(rounds, None, [], epoch_ended=True)
        rounds.append(result)
        in_batch += len(result.taken)
        if in_batch >= cfg.batch_prompts:
            break
    else:
        max_rounds_reached(s, cfg, step, in_batch)
    return close_batch(s, step, rounds)


def close_batch(s, step: int, rounds: list[PCRound]) -> PCBatch:
    """The step's batch is complete (or given up on): stale pilots dropped, after the take of a
    completed step (official order), and the rounds' training groups joined. The loop and the
    dashboard's update button both end a Pilot-Commit batch here."""
    dropped = s.buffer.drop_stale(step)
    accounting.count_batch_closed(s.ledger, step, len(dropped), len(s.buffer))
    groups = [g for res in rounds for g in res.groups]
    return PCBatch(rounds, pl.concat(groups, how="diagonal_relaxed") if groups else None, dropped)


def train_batch(s, cfg, step: int, batch: PCBatch) -> dict:
    """The update on a closed batch (none when no prompt was committed: {}, and the step
    stands as it is)."""
    if batch.rollouts is None:
        s.unfinished = atomic.Unfinished(step, {})
        return s.unfinished.metrics
    return train_on(s, cfg, step, batch.rollouts)
