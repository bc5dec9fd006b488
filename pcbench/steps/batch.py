"""What every strategy's step does with a batch: generate rollouts counted in the ledger,
train on the chosen groups (the only place weights change), give up after max_rounds rounds.

The strategies (pcbench.strategies) build their steps from these and the other steps; the loop
(pcbench.loop) drives them. Neither this module nor the steps know any strategy by name.
"""

from __future__ import annotations

import polars as pl

from pcbench import accounting, atomic
from pcbench.steps.rollouts import call_seed, generate, requests


class MaxRoundsError(RuntimeError):
    """A step did not fill its batch within max_rounds rounds (the official code raises too)."""


def generate_counted(
    s, cfg, step: int, round: int, pool, phase: str, n: int | list[int] | None = None,
    salt: int = 0,
):  # fmt: skip
    """n (default: the group size; or one count per prompt) rewarded rollouts of each pool
    prompt under `phase`, in one engine call seeded by (run seed, step, round, salt), stashed
    with the step's frames and counted in the ledger. A second call in the same round needs
    its own `salt`, or it samples with the first one's seed."""
    reqs = requests(pool["prompt_id"], cfg.group_size if n is None else n, phase)
    with s.ledger.time(step, "generate"):
        rollouts = generate(
            s.engine, s.verifier, reqs, s.prompts, cfg.sampling, step=step, round=round,
            seed=call_seed(cfg.seed, step, round, salt),
        )  # fmt: skip
    s.stash("rollouts", rollouts)
    accounting.count_baseline_round(s.ledger, step, rollouts, s.verifier.last_health)
    return rollouts


def train_on(s, cfg, step: int, rollouts: pl.DataFrame) -> dict:
    """One update on the batch, then sync the engine; the only place weights change.

    The update and the sync are the step's point of no return: a kernel interrupt arriving
    during them is held until both are done (`atomic.interrupts_deferred`), and once the
    update is applied the step's completion is owed (`State.unfinished`) even if the sync
    then fails. A colocated engine sleeps through the update (vLLM sleep mode on CUDA: its KV
    cache is freed and its weights offloaded, so the policy's optimizer state and activations
    fit beside it), and wakes before the sync, also when the update fails; elsewhere both are
    no-ops."""
    from pcbench.steps.update import update  # torch: only where a step trains

    with atomic.interrupts_deferred():
        try:
            with s.ledger.time(step, "update"):  # the engine's sleep counts as the update's time
                s.engine.sleep()
                metrics = update(s.policy, rollouts, s.prompts, cfg)
        finally:
            with s.ledger.time(step, "sync"):  # and its wake-up as the sync's
                s.engine.wake()
        accounting.count_trained(s.ledger, step, rollouts)
        s.unfinished = atomic.Unfinished(step, metrics)
        with s.ledger.time(step, "sync"):
            s.engine.load_weights(s.policy)
    return metrics


def max_rounds_reached(s, cfg, step: int, in_batch: int) -> None:
    """The step's rounds ran out before B prompts filled the batch: raise (on_max_rounds =
    "raise", as the official code) or count the partial batch and train on what is there."""
    if cfg.on_max_rounds == "raise":
        raise MaxRoundsError(
            f"step {step}: only {in_batch} of {cfg.batch_prompts} prompts filled the batch after "
            f"{cfg.max_rounds} rounds; widen the keep band (score.keep_min/keep_max), raise "
            "max_rounds or pool_prompts, or set on_max_rounds = 'train_partial'"
        )
    accounting.count_partial_batch(s.ledger, step, in_batch)  # trained on what is there


def keep_informative(kept: list, rollouts: pl.DataFrame, scores: pl.DataFrame, room: int) -> int:
    """Append to `kept` the groups of `rollouts` whose rewards differ, at most `room` of them
    (DAPO's and GRESO's dynamic sampling); returns how many were informative."""
    informative = scores.filter(pl.col("std") > 0)["prompt_id"].to_list()
    kept += [rollouts.filter(pl.col("prompt_id") == p) for p in informative[:room]]
    return len(informative)
