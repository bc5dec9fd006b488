"""Fidelity to the official implementation: replay its recorded Pilot-Commit decisions.

The golden file (../shared/data/golden, see its README) scripts the pilot rewards of every fresh
prompt, round by round. A scripted engine writes completions whose boxed answer is 1 (correct)
or 0 (wrong) accordingly, the real Verifier rewards them, and pcbench's own round loop
(`strategies.pilot_commit.collect`) with the real PilotBuffer makes the decisions, which must equal the
recorded ones field by field; so must the same round stages called one at a time, as the
dashboard's pilot, score and commit buttons call them. The stream hands out the recorded fresh prompts in the recorded
order (the official shuffle is not reproduced, only the decisions given it).
"""

import json

import polars as pl
import pytest

from pcbench import rounds
from pcbench.buffer import PilotBuffer
from pcbench.config import CommitConfig, PilotConfig, RunConfig, ScoreConfig
from pcbench.schema import PROMPTS, ROLLOUTS
from pcbench.state import State
from pcbench.strategies.pilot_commit import PCBatch, close_batch, collect

from conftest import SHARED

GOLDEN = SHARED / "golden" / "pilot_commit_decisions.json"
pytestmark = pytest.mark.skipif(not GOLDEN.exists(), reason=f"golden file not found: {GOLDEN}")


def _cases():
    if not GOLDEN.exists():
        return []
    return [
        pytest.param(c, id=f"{c['name']}-{c['seed']}")
        for c in json.loads(GOLDEN.read_text())["cases"]
    ]


class ScriptedEngine:
    """Pilot completions follow the recorded rewards; commit completions are all correct."""

    def __init__(self, rounds):
        self.rewards = iter(
            [{str(f["prompt_id"]): f["rewards"] for f in r["fresh"]} for r in rounds]
        )

    def generate(self, requests, sampling, *, step, round, seed=None):
        script = next(self.rewards)
        rows = []
        for req in requests.iter_rows(named=True):
            pilot = req["phase"] == "pilot"
            for i in range(req["n"]):
                good = script[req["prompt_id"]][i] == 1.0 if pilot else True
                rows.append(
                    dict(step=step, round=round, phase=req["phase"], prompt_id=req["prompt_id"],
                         sample=i, policy_version=0, completion=f"\\boxed{{{int(good)}}}",
                         token_ids=[1], logprobs=[0.0], n_tokens=1, finish="stop")
                )  # fmt: skip
        return ROLLOUTS.frame(rows)


class ScriptedStream:
    """The recorded fresh pools, epoch by epoch; None when an epoch's pools are used up."""

    def __init__(self, epochs):
        self.epochs, self.epoch, self.position = epochs, 0, 0
        self.offered: set[str] = set()

    def next_pool(self, size):
        pools = self.epochs[self.epoch]
        if self.position == len(pools):
            return None
        pool = pools[self.position]
        assert len(pool) == size
        self.position += 1
        return pl.DataFrame({"prompt_id": pool})

    def start_epoch(self, evicted):
        assert not evicted & {p for pool in self.epochs[self.epoch + 1] for p in pool}
        self.epoch, self.position = self.epoch + 1, 0


def _config(c) -> RunConfig:
    return RunConfig(
        batch_prompts=c["batch"],
        pool_prompts=c["pool"],
        max_rounds=c["max_rounds"],
        pilot=PilotConfig(n_pilot=c["n_pilot"]),
        commit=CommitConfig(n_commit=c["n_commit"], max_staleness=c["max_staleness"]),
        score=ScoreConfig(keep_min=c["keep_min"], keep_max=c["keep_max"], evict_at=c["evict_at"]),
    )


def _prompts(n):
    ids = [str(i) for i in range(n)]
    return PROMPTS.frame(
        {"prompt_id": ids, "prompt": [f"q{i}" for i in ids], "answer": ["1"] * n,
         "source": ["golden"] * n, "difficulty": [None] * n}
    )  # fmt: skip


def _check_round(got, want, step_complete, stale):
    ids = lambda xs: [str(x) for x in xs]  # noqa: E731
    assert got.fresh == ids(f["prompt_id"] for f in want["fresh"])
    assert [(e.prompt_id, e.added_step) for e in got.taken] == [
        (str(x["prompt_id"]), x["added_step"]) for x in want["committed"]
    ]
    assert (
        dict(zip(got.scores["prompt_id"], got.scores["verdict"], strict=True)) == want["verdicts"]
    )
    assert sorted(got.scores.filter(pl.col("evict"))["prompt_id"]) == sorted(
        ids(want["evict_marked"])
    )
    assert step_complete == want["step_complete"]
    assert sorted(stale) == sorted(ids(want["stale_dropped"]))


def _collect_by_hand(s, cfg, step) -> PCBatch:
    """The dashboard's presses: pilot (begin + generate), score (classify), commit (finish),
    round after round until the batch is full; then update's close_batch."""
    done = []
    while sum(len(r.taken) for r in done) < cfg.batch_prompts and len(done) < cfg.max_rounds:
        need = cfg.batch_prompts - sum(len(r.taken) for r in done)
        r = rounds.begin(s, cfg, step, len(done) + 1, need)
        if r is None:
            return PCBatch(done, None, [], epoch_ended=True)
        rounds.generate_rollouts(s, cfg, r)
        rounds.classify(s, cfg, r)
        done.append(rounds.finish(s, cfg, r))
    return close_batch(s, step, done)


@pytest.mark.parametrize("collect", [collect, _collect_by_hand], ids=["loop", "stages"])
@pytest.mark.parametrize("case", _cases())
def test_paper_preset_reproduces_official_decisions(case, collect, verifier):
    cfg = _config(case["config"])
    rounds = [r for r in case["trace"] if "fresh" in r]
    epochs = [[] for _ in range(case["config"]["epochs"])]
    for r in rounds:
        epochs[r["epoch"]].append([str(f["prompt_id"]) for f in r["fresh"]])
    s = State(
        engine=ScriptedEngine(rounds), verifier=verifier, policy=None,
        prompts=_prompts(case["config"]["num_prompts"]), stream=ScriptedStream(epochs),
        buffer=PilotBuffer(max_staleness=cfg.commit.max_staleness),
    )  # fmt: skip
    trace, step, checked = iter(case["trace"]), 1, 0
    for epoch in range(case["config"]["epochs"]):
        while True:
            batch = collect(s, cfg, step)
            for i, got in enumerate(batch.rounds):
                want = next(trace)
                assert (want["epoch"], want["step"], want["round"]) == (epoch, step, got.round)
                last = i == len(batch.rounds) - 1
                complete = last and not batch.epoch_ended
                _check_round(got, want, complete, batch.stale_dropped if complete else [])
                checked += 1
            if batch.epoch_ended:
                break
            # Every committed prompt trains on its pilot + commit rollouts.
            sizes = batch.rollouts.group_by("prompt_id").len()["len"]
            assert (sizes == cfg.group_size).all() and len(sizes) == cfg.batch_prompts
            step += 1
        end = next(trace)
        assert end["epoch_end"] == epoch
        s.buffer.end_epoch()
        assert len(s.buffer) == 0
        assert sorted(s.buffer.evicted) == sorted(str(x) for x in end["evicted_total"])
        if epoch + 1 < len(epochs):
            s.stream.start_epoch(s.buffer.evicted)
    assert next(trace, None) is None and checked == len(rounds)
    _check_ledger(s.ledger.frame(), cfg, case["trace"])


def _check_ledger(ledger, cfg, trace):
    """Accounting: per step, G * n_pilot per round + n_commit per committed prompt."""
    rounds = (
        pl.DataFrame(
            [{"step": r["step"], "committed": len(r["committed"])} for r in trace if "fresh" in r]
        )
        .group_by("step")
        .agg(pl.len().alias("rounds"), pl.col("committed").sum())
        .sort("step")
    )
    joined = ledger.join(rounds, on="step")
    assert joined.height == rounds.height
    pilot = joined["rounds"] * cfg.pool_prompts * cfg.pilot.n_pilot
    assert (joined["rollout_stats/pilot"] == pilot).all()
    assert (joined["rollout_stats/commit"] == joined["committed"] * cfg.commit.n_commit).all()
    total = (joined["rollout_stats/pilot"] + joined["rollout_stats/commit"]).cum_sum()
    assert (joined["cumulative/rollouts"] == total).all()
