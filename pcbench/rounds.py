"""One Pilot-Commit round in four stages, the same whether the loop runs it or a person steps it.

    begin     draw G fresh prompts; take up to `need` buffered ones (before this round's pilots
              are classified: the official order)
    generate  one engine call: the fresh prompts' pilots and the taken prompts' commits together,
              then whatever further calls the round's pilot makes (`pcbench.pilots`)
    classify  score the pilots (with the pilot's own decisions), add the survivors to the buffer
    finish    the taken prompts' training groups; the round's frames stashed and counted

The round knows nothing of pilot stages: it asks its `Pilot` (`pcbench.pilots.pilot_for`) how
many rollouts go in the shared call, to extend them, to classify and what to count, and leaves
the counting to `pcbench.accounting`. `run_round` chains the stages for the loop
(`strategies.pilot_commit.collect`); the dashboard's pilot, score and commit buttons call begin +
generate, classify and finish one press at a time, so a hand-built step makes the same
decisions, rollouts and ledger as `pcbench run`.

One option departs from the official order, for hand-stepping only: `commit_fresh=True` takes
from the buffer after this round's pilots are classified ("pilot, then commit what I just saw"),
so a prompt can be committed in the round that piloted it, at the price of a second engine call
(the commits) per round. It is off in every shipped config and is not what the paper measures.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from pcbench import accounting
from pcbench.algos import gate
from pcbench.buffer import BufferEntry
from pcbench.config import RunConfig
from pcbench.pilots import Pilot, PilotOutcome, pilot_for
from pcbench.state import State
from pcbench.steps import call_seed, commit, generate_round, plan, score, training_group

STAGES = ("begun", "generated", "classified", "finished")
GATE_SALT = 3  # the history gate's draws differ from the round's engine call (and the peers')


class StageError(RuntimeError):
    """A round stage called out of order (nothing was changed)."""


@dataclass
class PCRound:
    """What one Pilot-Commit round did so far (the golden-vector tests read the decisions)."""

    step: int
    round: int
    need: int  # prompts the batch still needs when the round began
    pool: pl.DataFrame  # the fresh prompts (PROMPTS rows)
    taken: list[BufferEntry]  # buffered prompts committed this round
    piloting: Pilot  # the paper's single pilot or the sequential one (pcbench.pilots)
    commit_fresh: bool = False  # hand-stepping option, see the module docstring
    stage: str = "begun"
    pilot: PilotOutcome | None = None  # the pilot rollouts and the pilot's own decisions
    commit_rollouts: pl.DataFrame | None = None
    scores: pl.DataFrame | None = None
    added: list[str] = field(default_factory=list)
    groups: list[pl.DataFrame] = field(default_factory=list)  # training groups of `taken`

    @property
    def fresh(self) -> list[str]:
        return self.pool["prompt_id"].to_list()

    @property
    def pilot_rollouts(self) -> pl.DataFrame | None:
        return None if self.pilot is None else self.pilot.rollouts

    def _expect(self, stage: str) -> None:
        if self.stage != stage:
            nxt = STAGES[STAGES.index(self.stage) + 1] if self.stage != STAGES[-1] else None
            raise StageError(
                f"round {self.round} of step {self.step} is {self.stage}; "
                + (f"the next stage is {nxt}" if nxt else "it is finished: begin another")
            )


def draw_pool(s: State, cfg: RunConfig, step: int, number: int) -> pl.DataFrame | None:
    """The round's G fresh prompts; with the history gate (`pilot.gate = "history"`), G that
    pass it, drawn in stream order (a skipped prompt is used up for this epoch, as GRESO's). None
    when the epoch ran out first."""
    if cfg.pilot.gate == "none":
        return s.stream.next_pool(cfg.pool_prompts)
    rng = np.random.default_rng(call_seed(cfg.seed, step, number, GATE_SALT))
    band, posteriors = (cfg.score.keep_min, cfg.score.keep_max), s.prompt_state
    kept, survivors, skipped = [], 0, {gate.SKIP_EASY: 0, gate.SKIP_HARD: 0}
    while survivors < cfg.pool_prompts:
        chunk = s.stream.next_pool(cfg.pool_prompts - survivors)
        if chunk is None:
            break
        ids = chunk["prompt_id"]
        decided = gate.decide(*posteriors.get(ids), posteriors.seen(ids), band, rng)
        for side in skipped:
            skipped[side] += int((decided == side).sum())
        kept.append(chunk.filter(pl.Series(decided == gate.PILOT)))
        survivors += kept[-1].height
    accounting.count_gate_skips(s.ledger, step, skipped[gate.SKIP_EASY], skipped[gate.SKIP_HARD])
    return pl.concat(kept) if survivors == cfg.pool_prompts else None


def begin(
    s: State, cfg: RunConfig, step: int, number: int, need: int, *, commit_fresh: bool = False
) -> PCRound | None:
    """The round's fresh pool and the buffered prompts it commits; None when the epoch ran out."""
    pool = draw_pool(s, cfg, step, number)
    if pool is None:
        return None
    taken = [] if commit_fresh else s.buffer.take(need, cfg.commit.order)
    return PCRound(step, number, need, pool, taken, pilot_for(cfg), commit_fresh=commit_fresh)


def generate_rollouts(s: State, cfg: RunConfig, r: PCRound) -> PCRound:
    """Pilots of the fresh prompts and commits of the taken ones in one engine call, then the
    pilot's further calls, if any."""
    r._expect("begun")
    step = r.step

    def counted() -> None:
        accounting.count_call(s.ledger, step, s.verifier.last_health)

    with s.ledger.time(step, "generate"):
        first, r.commit_rollouts = generate_round(
            s.engine, s.verifier, r.pool["prompt_id"], plan(r.taken, cfg, step), s.prompts,
            n_pilot=r.piloting.first(cfg), sampling=cfg.sampling, step=step, round=r.round,
            seed=call_seed(cfg.seed, step, r.round),
        )  # fmt: skip
        if first.height or r.commit_rollouts.height:  # a call was made
            counted()
        r.pilot = r.piloting.extend(s, cfg, r.pool, first, step, r.round, on_call=counted)
    r.stage = "generated"
    return r


def classify(s: State, cfg: RunConfig, r: PCRound) -> pl.DataFrame:
    """Score the pilots (the pilot's own decisions applied); survivors join the buffer."""
    r._expect("generated")
    with s.ledger.time(r.step, "score"):
        scores = score(r.pilot.rollouts, cfg)
        r.scores = r.piloting.classify(s, cfg, r.pool, scores, r.pilot, r.step)
        r.added = s.buffer.add(r.scores, r.pilot.rollouts, r.step)
    r.stage = "classified"
    return r.scores


def finish(s: State, cfg: RunConfig, r: PCRound) -> PCRound:
    """The taken prompts' training groups; the round's rollouts and scores stashed and counted.
    With commit_fresh, the take and the commit call happen here, after classification."""
    r._expect("classified")
    if r.commit_fresh:
        r.taken = s.buffer.take(r.need, cfg.commit.order)
        r.commit_rollouts = r.pilot.rollouts.head(0)
        if r.taken:
            with s.ledger.time(r.step, "generate"):
                r.commit_rollouts = commit(
                    s.engine, s.verifier, plan(r.taken, cfg, r.step), s.prompts, cfg, r.step,
                    round=r.round,
                )  # fmt: skip
                accounting.count_call(s.ledger, r.step, s.verifier.last_health)
    with s.ledger.time(r.step, "score"):  # training groups: part of the allocation's cost
        r.groups = [training_group(e, r.commit_rollouts, cfg.commit.n_reuse) for e in r.taken]
    rollouts = pl.concat([r.pilot.rollouts, r.commit_rollouts])
    if cfg.pilot.gate == "history":  # every rollout a prompt had moves its posterior
        seen = score(rollouts, cfg)
        s.prompt_state.observe(seen["prompt_id"], seen["n_correct"], seen["n"], decay=1.0)
    s.stash("rollouts", rollouts)
    s.stash("scores", r.scores.with_columns(round=pl.lit(r.round, pl.Int64)))
    accounting.count_pc_round(s.ledger, r, r.piloting.counts(r.pilot))
    r.stage = "finished"
    return r


def run_round(s: State, cfg: RunConfig, step: int, number: int, need: int) -> PCRound | None:
    """All four stages (the loop's round); None when the epoch ran out."""
    r = begin(s, cfg, step, number, need)
    if r is None:
        return None
    generate_rollouts(s, cfg, r)
    classify(s, cfg, r)
    return finish(s, cfg, r)
