"""One Pilot-Commit round in four stages, the same whether the loop runs it or a person steps it.

    begin     draw G fresh prompts; take up to `need` buffered ones (before this round's pilots
              are classified: the official order)
    generate  one engine call: the fresh prompts' pilots and the taken prompts' commits together
              (a sequential pilot adds one call per further stage)
    classify  score the pilots, add the survivors to the buffer (and feed the prior)
    finish    the taken prompts' training groups; the round's frames stashed and counted

`run_round` chains them for the loop (`loop.collect_pilot_commit`); the dashboard's pilot, score
and commit buttons call begin + generate, classify and finish one press at a time, so a hand-built
step makes the same decisions, rollouts and ledger as `pcbench run`.

One option departs from the official order, for hand-stepping only: `commit_fresh=True` takes
from the buffer after this round's pilots are classified ("pilot, then commit what I just saw"),
so a prompt can be committed in the round that piloted it, at the price of a second engine call
(the commits) per round. It is off in every shipped config and is not what the paper measures.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from pcbench.buffer import BufferEntry
from pcbench.config import RunConfig
from pcbench.state import State
from pcbench.steps import call_seed, commit, generate_round, plan, score, training_group
from pcbench.steps.pilot import apply_stops, pilot_stages, prior_buckets, stage_priors

STAGES = ("begun", "generated", "classified", "finished")


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
    commit_fresh: bool = False  # hand-stepping option, see the module docstring
    stage: str = "begun"
    pilot_rollouts: pl.DataFrame | None = None
    commit_rollouts: pl.DataFrame | None = None
    stopped: dict = field(default_factory=dict)  # sequential pilot: prompt -> (stage, n)
    explored: list[str] = field(default_factory=list)
    scores: pl.DataFrame | None = None
    added: list[str] = field(default_factory=list)
    groups: list[pl.DataFrame] = field(default_factory=list)  # training groups of `taken`

    @property
    def fresh(self) -> list[str]:
        return self.pool["prompt_id"].to_list()

    def _expect(self, stage: str) -> None:
        if self.stage != stage:
            nxt = STAGES[STAGES.index(self.stage) + 1] if self.stage != STAGES[-1] else None
            raise StageError(
                f"round {self.round} of step {self.step} is {self.stage}; "
                + (f"the next stage is {nxt}" if nxt else "it is finished: begin another")
            )


def begin(
    s: State, cfg: RunConfig, step: int, number: int, need: int, *, commit_fresh: bool = False
) -> PCRound | None:
    """The round's fresh pool and the buffered prompts it commits; None when the epoch ran out."""
    pool = s.stream.next_pool(cfg.pool_prompts)
    if pool is None:
        return None
    taken = [] if commit_fresh else s.buffer.take(need, cfg.commit.order)
    return PCRound(step, number, need, pool, taken, commit_fresh=commit_fresh)


def generate(s: State, cfg: RunConfig, r: PCRound) -> PCRound:
    """Pilots of the fresh prompts and commits of the taken ones, in one engine call."""
    r._expect("begun")
    pc, step = cfg.pilot, r.step
    with s.ledger.time(step, "generate"):
        r.pilot_rollouts, r.commit_rollouts = generate_round(
            s.engine, s.verifier, r.pool["prompt_id"], plan(r.taken, cfg, step), s.prompts,
            n_pilot=pc.stages[0] if pc.sequential else pc.n_pilot, sampling=cfg.sampling,
            step=step, round=r.round, seed=call_seed(cfg.seed, step, r.round),
        )  # fmt: skip
        if r.pilot_rollouts.height or r.commit_rollouts.height:  # a call was made
            s.ledger.count_verifier(step, s.verifier.last_health)
        if pc.sequential:
            r.pilot_rollouts, r.stopped, r.explored = pilot_stages(
                s.engine, s.verifier, r.pool, r.pilot_rollouts, s.prompts, cfg,
                stage_priors(r.pool, cfg, s.prior), step, r.round,
                on_call=lambda: s.ledger.count_verifier(step, s.verifier.last_health),
            )  # fmt: skip
    r.stage = "generated"
    return r


def classify(s: State, cfg: RunConfig, r: PCRound) -> pl.DataFrame:
    """Score the pilots; survivors join the buffer (a sequential pilot's stops and prior too)."""
    r._expect("generated")
    with s.ledger.time(r.step, "score"):
        scores = score(r.pilot_rollouts, cfg)
        if cfg.pilot.sequential:
            scores = apply_stops(scores, r.stopped, r.fresh, r.step)
            observe_prior(s, cfg, r.pool, scores)
        r.scores = scores
        r.added = s.buffer.add(scores, r.pilot_rollouts, r.step)
    r.stage = "classified"
    return scores


def finish(s: State, cfg: RunConfig, r: PCRound) -> PCRound:
    """The taken prompts' training groups; the round's rollouts and scores stashed and counted.
    With commit_fresh, the take and the commit call happen here, after classification."""
    r._expect("classified")
    if r.commit_fresh:
        r.taken = s.buffer.take(r.need, cfg.commit.order)
        r.commit_rollouts = r.pilot_rollouts.head(0)
        if r.taken:
            with s.ledger.time(r.step, "generate"):
                r.commit_rollouts = commit(
                    s.engine, s.verifier, plan(r.taken, cfg, r.step), s.prompts, cfg, r.step,
                    round=r.round,
                )  # fmt: skip
                s.ledger.count_verifier(r.step, s.verifier.last_health)
    with s.ledger.time(r.step, "score"):  # training groups: part of the allocation's cost
        r.groups = [training_group(e, r.commit_rollouts, cfg.commit.n_reuse) for e in r.taken]
    s.stash("rollouts", pl.concat([r.pilot_rollouts, r.commit_rollouts]))
    s.stash("scores", r.scores.with_columns(round=pl.lit(r.round, pl.Int64)))
    count_round(s, cfg, r)
    r.stage = "finished"
    return r


def run_round(s: State, cfg: RunConfig, step: int, number: int, need: int) -> PCRound | None:
    """All four stages (the loop's round); None when the epoch ran out."""
    r = begin(s, cfg, step, number, need)
    if r is None:
        return None
    generate(s, cfg, r)
    classify(s, cfg, r)
    return finish(s, cfg, r)


def observe_prior(s: State, cfg: RunConfig, pool: pl.DataFrame, scores: pl.DataFrame) -> None:
    """Feed the piloted prompts' pass rates to their buckets of the online prior."""
    seen = scores.filter(pl.col("n") > 0)
    buckets = prior_buckets(pool, cfg, seen["prompt_id"])
    s.prior.observe(buckets, seen["mean"].to_list(), seen["n"].to_list())


def count_round(s: State, cfg: RunConfig, r: PCRound) -> None:
    """The round's ledger entries: rollouts by phase, verdicts, buffer traffic and age."""
    ledger, step, scores = s.ledger, r.step, r.scores
    ledger.count_rollouts(step, pl.concat([r.pilot_rollouts, r.commit_rollouts]))
    ledger.add(step, "rounds")
    ledger.add(step, "filtering_stats/seen", scores.height)
    for name, count in verdict_counts(scores).items():
        ledger.add(step, name, count)
    ledger.add(step, "buffer_stats/add", len(r.added))
    ledger.add(step, "buffer_stats/take", len(r.taken))
    for e in r.taken:  # how old the pilot data trained on is
        ledger.add(step, "buffer_stats/age_sum", e.age(step))
        ledger.max(step, "buffer_stats/age_max", e.age(step))
    if cfg.pilot.sequential:
        ledger.add(step, "filtering_stats/early_stopped", len(r.stopped))
        ledger.add(
            step, "filtering_stats/prior_skipped", sum(n == 0 for _, n in r.stopped.values())
        )
        ledger.add(step, "filtering_stats/prior_explored", len(r.explored))


def verdict_counts(scores: pl.DataFrame) -> dict[str, int]:
    """Ledger counts of a SCORES frame's verdicts (the loop's rounds and the widgets' preview)."""
    return {
        "filtering_stats/kept": int((scores["verdict"] == "keep").sum()),
        "filtering_stats/too_easy": int((scores["verdict"] == "too_easy").sum()),
        "filtering_stats/too_hard": int((scores["verdict"] == "too_hard").sum()),
        "filtering_stats/evict_marked": int(scores["evict"].sum()),
    }
