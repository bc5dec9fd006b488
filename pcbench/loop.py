"""Strategies as short loops over the steps: pilot_commit_step, grpo_step, dapo_step; train().

Every state change is on its own line: the stream hands out prompts, the buffer takes and adds,
the ledger counts, the policy steps, the engine syncs. A step function returns its metrics, or
None when the epoch ran out before the batch filled (the partial batch is discarded, DESIGN §4.6;
the caller ends the epoch and calls again for the same step).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from pcbench.buffer import BufferEntry, PilotBuffer
from pcbench.config import RunConfig
from pcbench.ledger import Ledger
from pcbench.steps import generate_round, plan, score, training_group
from pcbench.tasks import PromptStream


class MaxRoundsError(RuntimeError):
    """A step did not fill its batch within max_rounds rounds (the official code raises too)."""


@dataclass
class State:
    """Everything a training run mutates, passed explicitly to the step functions."""

    engine: object
    verifier: object
    policy: object | None
    prompts: pl.DataFrame  # training PROMPTS
    stream: PromptStream
    buffer: PilotBuffer
    ledger: Ledger = field(default_factory=Ledger)
    step: int = 0  # completed training steps


@dataclass
class PCRound:
    """What one Pilot-Commit round decided (the golden-vector test reads these)."""

    round: int
    fresh: list[str]
    taken: list[BufferEntry]
    scores: pl.DataFrame
    groups: list[pl.DataFrame]  # training groups of the taken prompts


def pilot_commit_round(s: State, cfg: RunConfig, step: int, round: int, need: int):
    """Pilot G fresh prompts and commit up to `need` buffered ones in one engine call."""
    fresh = s.stream.next_pool(cfg.pool_prompts)
    if fresh is None:
        return None
    taken = s.buffer.take(need, cfg.commit.order)  # before this round's pilot is classified
    plan_frame = plan(taken, cfg, step)
    with s.ledger.time(step, "generate"):
        pilot_rollouts, commit_rollouts = generate_round(
            s.engine, s.verifier, fresh["prompt_id"], plan_frame, s.prompts,
            n_pilot=cfg.pilot.n_pilot, sampling=cfg.sampling, step=step, round=round,
        )  # fmt: skip
    scores = score(pilot_rollouts, cfg)
    added = s.buffer.add(scores, pilot_rollouts, step)
    groups = [training_group(e, commit_rollouts, cfg.commit.n_reuse) for e in taken]
    _count_round(s.ledger, step, scores, added, taken, pilot_rollouts, commit_rollouts, s.verifier)
    return PCRound(round, fresh["prompt_id"].to_list(), taken, scores, groups)


def _count_round(ledger, step, scores, added, taken, pilot_rollouts, commit_rollouts, verifier):
    ledger.count_rollouts(step, pilot_rollouts)
    ledger.count_rollouts(step, commit_rollouts)
    ledger.count_verifier(step, verifier.last_health)
    ledger.add(step, "rounds")
    ledger.add(step, "filtering_stats/seen", scores.height)
    for verdict, name in (("keep", "kept"), ("too_easy", "too_easy"), ("too_hard", "too_hard")):
        ledger.add(step, f"filtering_stats/{name}", (scores["verdict"] == verdict).sum())
    ledger.add(step, "filtering_stats/evict_marked", scores["evict"].sum())
    ledger.add(step, "buffer_stats/add", len(added))
    ledger.add(step, "buffer_stats/take", len(taken))
    for e in taken:  # how old the pilot data trained on is
        ledger.add(step, "buffer_stats/age_sum", e.age(step))
        ledger.max(step, "buffer_stats/age_max", e.age(step))


@dataclass
class PCBatch:
    rounds: list[PCRound]
    rollouts: pl.DataFrame | None  # training rollouts; None: the epoch ran out first
    stale_dropped: list[str]


def collect_pilot_commit(s: State, cfg: RunConfig, step: int) -> PCBatch:
    """Rounds until B prompts are committed; `rollouts` is None if the epoch ran out first
    (the partial batch is then discarded, DESIGN §4.6)."""
    rounds, in_batch = [], 0
    for r in range(1, cfg.max_rounds + 1):
        result = pilot_commit_round(s, cfg, step, r, cfg.batch_prompts - in_batch)
        if result is None:
            return PCBatch(rounds, None, [])
        rounds.append(result)
        in_batch += len(result.taken)
        if in_batch >= cfg.batch_prompts:
            break
    else:
        if cfg.on_max_rounds == "raise":
            raise MaxRoundsError(
                f"step {step}: only {in_batch} of {cfg.batch_prompts} prompts committed after "
                f"{cfg.max_rounds} rounds; widen the keep band (score.keep_min/keep_max), raise "
                "max_rounds or pool_prompts, or set on_max_rounds = 'train_partial'"
            )
        s.ledger.set(step, "partial_batch", 1)
    dropped = s.buffer.drop_stale(step)  # after the take of a completed step (official order)
    s.ledger.add(step, "buffer_stats/stale_drop", len(dropped))
    groups = [g for res in rounds for g in res.groups]
    rollouts = pl.concat(groups, how="diagonal_relaxed") if groups else None
    return PCBatch(rounds, rollouts, dropped)
