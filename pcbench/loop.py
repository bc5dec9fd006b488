"""The training loop: `train_step` drives one step of any registered strategy
(pcbench.strategies: `strategies.get(cfg.strategy).step`), then evaluates, logs and checkpoints
it; `train` repeats it to cfg.steps. The loop names no strategy.

A strategy's step returns its update metrics, or None when the epoch ran out before the batch
filled; `train_step` then ends the epoch (partial batch discarded, buffer cleared, evictions
applied, DESIGN §4.6) and calls it again for the same step, once: a step that a whole fresh
epoch cannot fill raises EpochTooSmallError instead of looping. Rollouts generated for a
discarded batch stay counted.
"""

from __future__ import annotations

import time

import polars as pl
from tqdm.auto import tqdm

from pcbench import accounting, atomic
from pcbench.config import RunConfig
from pcbench.ledger import CUMULATIVE
from pcbench.memory import return_freed_memory
from pcbench.schema import METRICS
from pcbench.state import State
from pcbench.steps import eval_summary, evaluate
from pcbench.steps.batch import MaxRoundsError, train_on
from pcbench.strategies import registry

__all__ = ["EpochTooSmallError", "MaxRoundsError", "train", "train_on", "train_step"]


class EpochTooSmallError(RuntimeError):
    """A whole epoch of training prompts could not fill one batch: another would not either."""


def end_epoch(s: State, cfg: RunConfig, step: int) -> None:
    """Partial batch discarded, buffer emptied, evictions applied, next epoch shuffled."""
    cleared = len(s.buffer)
    newly = s.buffer.end_epoch()
    accounting.count_epoch_end(s.ledger, step, cleared, len(newly))
    left = s.stream.start_epoch(s.buffer.evicted)
    if left < cfg.min_epoch_prompts:
        raise EpochTooSmallError(
            f"only {left} training prompts are left after {len(s.buffer.evicted)} evictions, "
            f"fewer than the {cfg.min_epoch_prompts} one epoch needs ({cfg.epoch_need}): use "
            "more training prompts (train), a smaller pool_prompts, or score.evict_at > 1"
        )


def evaluate_step(s: State, cfg: RunConfig, step: int) -> tuple[pl.DataFrame, dict]:
    """EVALS of the eval prompts at `step` and their summary metrics (eval/<benchmark>/...)."""
    with s.ledger.time(step, "evaluate"):
        evals = evaluate(s.engine, s.verifier, s.eval_prompts, cfg, step)
    metrics = {}
    for row in eval_summary(evals).iter_rows(named=True):
        metrics[f"eval/{row['benchmark']}/mean@k"] = row["mean@k"]
        metrics[f"eval/{row['benchmark']}/pass@k"] = row["pass@k"]
    return evals, metrics


def _metrics_frame(step: int, metrics: dict) -> pl.DataFrame:
    return METRICS.frame(
        {
            "step": [step] * len(metrics),
            "name": list(metrics),
            "value": [float(v) for v in metrics.values()],
        }
    )


def _log(run, s: State, step: int, metrics: dict, evals: pl.DataFrame | None) -> None:
    """Write the completed step's frames, each file atomic; the ledger part last, so that it
    carries the time the other writes took (`time/log`)."""
    with s.ledger.time(step, "log"):
        for kind, frames in s.pending.items():
            run.write(kind, step, pl.concat(frames, how="diagonal_relaxed"))
        if evals is not None:
            run.write("evals", step, evals)
        run.write("metrics", step, _metrics_frame(step, metrics))
    row = s.ledger.frame().filter(pl.col("step") == step)
    run.write("ledger", step, row.drop(CUMULATIVE))
    run.track(step, metrics, row.row(0, named=True), s.pending.get("scores", []))


def train_step(s: State, cfg: RunConfig, run=None) -> tuple[dict, dict[str, pl.DataFrame]]:
    """One complete training step (epoch ends included), evaluated, logged and checkpointed
    when due; returns its metrics and frames (rollouts, scores) for a caller to look at.

    All or nothing (`pcbench.atomic`): a step that raises before its update is undone, so
    calling `train_step` again simply retries it; one cut short after its update is completed
    first. A step owed from an earlier interruption is completed before this one starts."""
    finish_unfinished(s, cfg, run)
    step_fn = registry.get(cfg.strategy).step
    step, start = s.step + 1, time.perf_counter()
    with atomic.all_or_nothing(s, step):
        atomic.ensure_synced(s)
        metrics = step_fn(s, cfg, step)
        if metrics is None:  # the epoch ran out before the batch filled: one fresh epoch more
            end_epoch(s, cfg, step)
            metrics = step_fn(s, cfg, step)
        if metrics is None:  # a whole epoch did not fill one batch; more would only loop
            raise EpochTooSmallError(
                f"step {step}: a whole epoch of {len(s.stream.order)} training prompts did not "
                f"fill a batch of {cfg.batch_prompts} prompts (an epoch needs "
                f"{cfg.epoch_need}); "
                "more epochs would only repeat it. Use more training prompts (train), a smaller "
                "pool_prompts or batch_prompts, or widen the keep band (score.keep_min/keep_max)"
            )
        if s.unfinished is None:  # no update ran (nothing was committed): the step stands here
            s.unfinished = atomic.Unfinished(step, metrics)
    s.unfinished.start = start
    return complete_step(s, cfg, step, metrics, run, start)


def finish_unfinished(s: State, cfg: RunConfig, run=None) -> tuple[dict, dict] | None:
    """Complete a step an interruption cut short after its update (sync, evaluation, logs,
    checkpoint: whatever it had not done); None when nothing is owed."""
    atomic.refuse_if_broken(s)
    u = s.unfinished
    if u is None:
        return None
    atomic.ensure_synced(s)
    return complete_step(s, cfg, u.step, u.metrics, run, u.start)


def complete_step(
    s: State, cfg: RunConfig, step: int, metrics: dict, run=None, start: float | None = None
) -> tuple[dict, dict[str, pl.DataFrame]]:
    """A trained step made complete: evaluated when due, timed (from `start`), logged and
    checkpointed when due; returns its metrics and frames. `train_step` ends every step here,
    and so does the dashboard's update button. Each part is recorded in `State.unfinished`
    when done, so if this is cut short, calling it again (`finish_unfinished`) does the rest."""
    s.step = step
    if s.unfinished is None or s.unfinished.step != step:
        s.unfinished = atomic.Unfinished(step, metrics, start)
    u = s.unfinished
    try:
        if not u.evaluated:
            if step % cfg.eval.every == 0 or step == cfg.steps:
                u.evals, eval_metrics = evaluate_step(s, cfg, step)
                metrics |= eval_metrics
            # Wall time of the step before logging; `time/log` and checkpoints come on top.
            if u.start is not None:
                s.ledger.set(step, "time/step", time.perf_counter() - u.start)
            u.evaluated = True
        if run is not None and not u.logged:
            _log(run, s, step, metrics, u.evals)
            u.logged = True
        if run is not None and (step % cfg.checkpoint_every == 0 or step == cfg.steps):
            run.save_checkpoint(s, keep=cfg.keep_checkpoints)
    except BaseException as error:
        owed = [what for what, done in [("evaluation", u.evaluated), ("logs", u.logged)]
                if not done] + ["checkpoint"]  # fmt: skip
        error.add_note(
            f"pcbench: step {step} was applied (its update stands); what it still owes "
            f"({', '.join(owed)}) runs before the next step, or call loop.finish_unfinished"
        )
        raise
    frames = {k: pl.concat(v, how="diagonal_relaxed") for k, v in s.pending.items()}
    if u.evals is not None:
        frames["evals"] = u.evals
    s.pending, s.unfinished = {}, None
    return_freed_memory()  # glibc keeps freed pages otherwise: +9% RSS over 200 steps
    return metrics, frames


def initial_eval(s: State, cfg: RunConfig, run=None) -> pl.DataFrame:
    """Step-0 evaluation of a fresh run (logged as step 0)."""
    evals, metrics = evaluate_step(s, cfg, 0)
    if run is not None:
        _log(run, s, 0, metrics, evals)
    return evals


def train(s: State, cfg: RunConfig, run=None, *, progress: bool = True) -> State:
    """Train until cfg.steps, evaluating every cfg.eval.every steps; logs and checkpoints to run."""
    finish_unfinished(s, cfg, run)  # a step an interruption cut short, if any
    if s.step == 0:
        initial_eval(s, cfg, run)
    bar = tqdm(total=cfg.steps, initial=s.step, desc=cfg.name, disable=not progress, mininterval=2)
    while s.step < cfg.steps:
        metrics, frames = train_step(s, cfg, run)
        bar.update(1)
        bar.set_postfix(_postfix(s, metrics, frames.get("rollouts")), refresh=False)
    bar.close()
    return s


def _postfix(s: State, metrics: dict, rollouts: pl.DataFrame | None = None) -> dict:
    """What the step bar shows: cumulative rollouts, this step's rounds, mean reward of its
    generated rollouts, loss, buffer size, accuracy when evaluated."""
    total = s.ledger.frame()["cumulative/rollouts"][-1]
    row = s.ledger.rows.get(s.step, {})
    out = {"rollouts": f"{total:,.0f}", "rounds": int(row.get("rounds", 0))}
    if rollouts is not None and rollouts.height:
        out["reward"] = f"{rollouts['reward'].mean():.3f}"
    if "update/loss" in metrics:
        out["loss"] = f"{metrics['update/loss']:.4f}"
    if len(s.buffer):
        out["buffer"] = len(s.buffer)
    acc = [v for k, v in metrics.items() if k.endswith("/mean@k")]
    if acc:
        out["acc"] = f"{acc[0]:.3f}"
    return out
