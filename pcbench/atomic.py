"""All or nothing: a training step, or a dashboard press, happens entirely or not at all.

Notebooks get interrupted mid-step: a kernel interrupt raises KeyboardInterrupt wherever the
code is (inside vLLM's loop, the verifier, the update), and any call can fail. Without care the
stream has advanced, the buffer has lost the prompts a round took, the ledger counts rollouts
no step trained on, and a retry merges into the same ledger row. `all_or_nothing` wraps one
step (or one press) and, when it raises, puts `State` back as it was before it:

    restored   stream position, buffer (taken prompts back, added ones gone), prior, the peer
               strategies' per-prompt state, ledger row(s), the step's pending frames, the step
               number; policy gradients dropped
    kept       what was paid for: every completion the engine returned during the attempt is
               counted once, under rollout_stats/interrupted and token_stats/interrupted (part
               of cumulative/rollouts and /tokens), and `interrupted` counts the attempt

The retry then draws the same prompts with the same seeds, so a run that was interrupted and
continued trains exactly like one that was not; only its cost is higher.

The one point of no return is the policy update. A kernel interrupt (SIGINT) that arrives
during the update and weight sync waits until both are done (`interrupts_deferred`): a half-
applied optimizer step cannot be undone without a copy of the weights and optimizer state,
which for a real model costs more than the update. Once the update is applied the step counts
as done (`State.step`); what is left of it -- the engine's sync, evaluation, log writes, the
checkpoint -- is owed (`State.unfinished`) and `finish_unfinished` completes it before the next
step starts, whatever raised. Only an error (not an interrupt) between the optimizer steps of
a multi-mini-batch update leaves a policy that is neither before nor after: the state is then
marked broken and every later step refuses, naming the checkpoint to resume from.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from dataclasses import dataclass

import polars as pl

from pcbench import accounting


class BrokenStateError(RuntimeError):
    """The policy was left half-updated by an error: this State cannot continue."""


@dataclass
class Unfinished:
    """A step whose update is applied but whose completion is owed (sync, evaluate, log,
    checkpoint); each part records when it is done, so a retry does only what is left."""

    step: int
    metrics: dict
    start: float | None = None  # perf_counter at the step's start (for time/step)
    evals: pl.DataFrame | None = None
    evaluated: bool = False
    logged: bool = False


@dataclass(frozen=True)
class Snapshot:
    """What a step may change in State, as plain values: the fields `state.STEP_STATE` declares
    (their state dicts), the step number, the pending frames and the policy's version; and the
    engine's counters, to count what an undone attempt paid for."""

    step: int
    parts: dict[str, dict]  # State.step_state()
    pending: dict
    policy_version: int | None
    rollouts_generated: int
    tokens_generated: int
    rollouts_lost: int  # died with an engine replica (pcbench.cluster.replicas)


def _copied(state: dict) -> dict:
    """A state_dict whose lists are copies (their items are immutable: ids, numbers)."""
    return {k: list(v) if isinstance(v, list) else v for k, v in state.items()}


def snapshot(s) -> Snapshot:
    return Snapshot(
        step=s.step,
        parts={name: _copied(part) for name, part in s.step_state().items()},
        pending={k: list(v) for k, v in s.pending.items()},
        policy_version=None if s.policy is None else s.policy.version,
        rollouts_generated=s.engine.rollouts_generated,
        tokens_generated=s.engine.tokens_generated,
        rollouts_lost=s.engine.rollouts_lost,
    )


def restore(s, before: Snapshot, step: int) -> tuple[int, int]:
    """Put `s` back to `before`, then count what the attempt paid for at `step`; returns the
    (rollouts, tokens) the engine generated during the attempt."""
    s.step = before.step
    s.load_step_state({name: _copied(part) for name, part in before.parts.items()})
    s.pending = {k: list(v) for k, v in before.pending.items()}
    if s.policy is not None:
        s.policy.discard_gradients()
    paid = (
        s.engine.rollouts_generated - before.rollouts_generated,
        s.engine.tokens_generated - before.tokens_generated,
    )
    accounting.count_interrupted(s.ledger, step, *paid)
    return paid


@contextmanager
def all_or_nothing(s, step: int, what: str = "step"):
    """Run the block as one step (or press) of `s`: on any exception (KeyboardInterrupt
    included) the state is restored as the module docstring says, unless the update was
    applied, in which case the step stands and its completion is owed. The exception is
    re-raised with a note saying which of the two happened."""
    refuse_if_broken(s)
    before = snapshot(s)
    try:
        yield
    except BaseException as error:
        applied = s.unfinished is not None and s.unfinished.step == step
        moved = s.policy is not None and s.policy.version != before.policy_version
        if applied:
            s.step = step
            note = (f"step {step}: the update was applied; its completion (sync, evaluation, "
                    "logs, checkpoint) runs before the next step")  # fmt: skip
        elif moved:
            s.broken = (
                f"step {step} failed between optimizer steps ({type(error).__name__}: {error}); "
                f"the policy is half-updated (version {before.policy_version} -> "
                f"{s.policy.version}): reopen the run from its last checkpoint "
                "(pcbench run --resume, or Run.open)"
            )
            note = s.broken
        else:
            rollouts, tokens = restore(s, before, step)
            note = (f"{what} {step} was undone (state as before it); the {rollouts} rollouts "
                    f"({tokens} tokens) it generated are counted as interrupted")  # fmt: skip
        error.add_note(f"pcbench: {note}")
        raise
    finally:  # whichever way the step went (after a restore, too): a dead replica's share
        accounting.count_lost(s.ledger, step, s.engine.rollouts_lost - before.rollouts_lost)


def refuse_if_broken(s) -> None:
    if s.broken:
        raise BrokenStateError(s.broken)


def ensure_synced(s) -> None:
    """The engine holds the policy's current weights (a sync that was interrupted or failed is
    redone, checked)."""
    if s.policy is not None and s.engine.policy_version != s.policy.version:
        s.engine.load_weights(s.policy, check=True)


@contextmanager
def interrupts_deferred():
    """Hold a SIGINT (kernel interrupt, Ctrl-C) until the block is done, then deliver it.

    Only the main thread receives signals; elsewhere the block runs as is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received and previous is not signal.SIG_IGN:  # the block succeeded (else it raised)
        if callable(previous):
            previous(signal.SIGINT, None)  # Python's default raises KeyboardInterrupt
        else:
            raise KeyboardInterrupt
