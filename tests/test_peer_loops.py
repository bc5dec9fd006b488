"""The peer strategies' loops (pcbench.peers) on the real engine, verifier and policy: every
rollout counted, each strategy's per-prompt state as its rules say, an undone step leaving that
state as it was and their exact resume are tests/test_resume.py's, for every strategy)."""

import numpy as np
import polars as pl
import pytest

from pcbench.algos import knapsack
from pcbench.config import load_config
from pcbench.loop import train
from pcbench.prompt_state import KnapsackRewards
from pcbench.regression import ledger_violations
from pcbench.run import open_run

from conftest import ARITH, ROOT, SMALL

pytestmark = pytest.mark.slow

B, N = 4, 16  # N: the shipped group size, n_pilot 4 + n_commit 12
# Training splits small enough that prompts come back within a few steps (GRESO skips only
# prompts with a trace, Knapsack-RL estimates only prompts it has seen, MoPPS's posteriors
# only move for prompts rolled out), and the table settings that fit them to B = 4.
PEERS = {
    "greso": (24, ["greso.round_prompts=6"]),  # 4 rounds an epoch
    "mopps": (16, ["mopps.candidate_ratio=2.0"]),  # 8 candidates a step: 2 steps an epoch
    "knapsack": (8, []),  # 2 steps an epoch
    # pcbench's combination (configs/tiny-pc-history.toml): Pilot-Commit behind the history
    # gate; 12 pools of 8 an epoch, prompts come back from the fifth step on
    "pc-history": (96, ["pool_prompts=8"]),
}
STRATEGIES = ["greso", "mopps", "knapsack"]  # the peers proper: phase names, rule checks


def small_train(tmp_path, strategy) -> str:
    """The first training prompts (all difficulties mixed) as the run's whole training split."""
    path = tmp_path / f"train-{strategy}.parquet"
    pl.read_parquet(ARITH / "train.parquet").head(PEERS[strategy][0]).write_parquet(path)
    return str(path)


def sets(tmp_path, strategy, steps) -> list[str]:
    return [*SMALL, "eval.every=2", f"steps={steps}", f"train={small_train(tmp_path, strategy)}",
            *PEERS[strategy][1]]  # fmt: skip


def cfg_for(tmp_path, strategy, steps, *more):
    config = ROOT / "configs" / f"tiny-{strategy}.toml"
    return load_config(config, [*sets(tmp_path, strategy, steps), *more])


def groups(rollouts: pl.DataFrame) -> pl.DataFrame:
    """One row per rolled-out group (request), in generation order: its size and rewards. A
    request's samples are numbered from 0 (a step retried after an epoch end repeats its
    round numbers, so (step, round, prompt) does not name a group)."""
    request = (pl.col("sample") == 0).cum_sum().alias("request")
    return rollouts.group_by(request, maintain_order=True).agg(
        pl.col("step", "prompt_id").first(),
        pl.len().alias("n"),
        pl.col("correct").cast(pl.Float64).alias("rewards"),
        pl.col("verify_status").alias("statuses"),
    )


def check_greso(s, cfg, ledger, rollouts, metrics):
    # Every rolled-out group is in its prompt's trace, dropped ones too, in order, as its mean
    # GRESO reward (1 correct, 0.1 a wrong answer, 0 no answer).
    traces = {}
    for g in groups(rollouts).iter_rows(named=True):
        rewards = [1.0 if c else 0.0 if st == "no_answer" else 0.1
                   for c, st in zip(g["rewards"], g["statuses"], strict=True)]  # fmt: skip
        traces.setdefault(g["prompt_id"], []).append(float(np.mean(rewards)))
    assert s.prompt_state.traces == traces
    # Nothing is skipped before a prompt has a trace: not in the first epoch's steps.
    first_epoch = ledger.filter(pl.col("epochs").cum_sum() == 0)
    skipped = [f"filtering_stats/greso_skipped_{k}" for k in ("easy", "hard")]
    assert first_epoch.height and first_epoch.select(skipped).sum_horizontal().sum() == 0
    assert ledger.select(skipped).sum_horizontal().sum() > 0  # and later they are
    # p_easy / p_hard start at 0.5, hold through the first epoch, then move 0.01 every step.
    adapting = (ledger.sort("step")["epochs"].cum_sum() > 0).to_list()
    assert adapting[0] is False and adapting[-1] is True
    for name in ("greso/p_easy", "greso/p_hard"):
        p = [0.5, *metrics.filter(pl.col("name") == name).sort("step")["value"]]
        moves = [round(abs(b - a), 9) for a, b in zip(p, p[1:], strict=False)]
        assert moves == [0.01 if a else 0.0 for a in adapting], name
    assert s.prompt_state.counts == {"groups": 0, "easy": 0, "hard": 0}  # reset after a step


def check_mopps(s, cfg, ledger, rollouts, metrics):
    # No decay: a posterior is the prior plus the prompt's successes and failures so far.
    totals = rollouts.group_by("prompt_id").agg(pl.col("correct").sum().alias("k"), pl.len())
    posteriors = s.prompt_state
    assert set(posteriors.alpha) == set(totals["prompt_id"])
    for pid, k, n in totals.iter_rows():
        assert (posteriors.alpha[pid], posteriors.beta[pid]) == (1 + k, 1 + n - k)
    assert (ledger["filtering_stats/mopps_passed_over"] == B).all()  # 8 candidates, 4 chosen
    assert (groups(rollouts)["n"] == N).all()


def check_knapsack(s, cfg, ledger, rollouts, metrics):
    # Replaying the logged visits: each step's group sizes are the split of B x n that the
    # earlier visits' estimates give, in the stream's order.
    replay, uneven = KnapsackRewards(), False
    for _, step in groups(rollouts).group_by("step", maintain_order=True):
        ids, sizes = step["prompt_id"].to_list(), step["n"].to_list()
        assert sizes == knapsack.allocate(replay.estimates(ids), N) and sum(sizes) == B * N
        replay.observe(ids, step["rewards"].to_list())
        uneven |= len(set(sizes)) > 1
    assert uneven and replay.state_dict() == s.prompt_state.state_dict()
    known = ledger.select(pl.exclude("filtering_stats/knapsack_unknown", "step")).select(
        pl.col("^filtering_stats/knapsack_.*$")
    )
    assert known.sum_horizontal().sum() > 0  # later visits were estimated


CHECKS = {"greso": check_greso, "mopps": check_mopps, "knapsack": check_knapsack}


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_peer_run_counts_every_rollout_and_keeps_its_rules_state(strategy, fresh, tmp_path):
    cfg = cfg_for(tmp_path, strategy, steps=5)
    s, run = fresh(cfg)
    train(s, cfg, run, progress=False)
    assert s.step == 5 and s.policy.version >= 4 and ledger_violations(run) == []
    ledger, rollouts = run.ledger().filter(pl.col("step") > 0), run.read("rollouts")
    assert set(rollouts["phase"]) == {strategy} and ledger["epochs"].sum() >= 1
    per_step = rollouts.group_by("step").len().sort("step")["len"]
    assert (ledger[f"rollout_stats/{strategy}"] == per_step).all()  # every rollout logged
    assert ledger["cumulative/rollouts"][-1] == rollouts.height  # and paid for
    CHECKS[strategy](s, cfg, ledger, rollouts, run.read("metrics"))


# ---- pcbench's combination: Pilot-Commit behind the history gate (pcbench.algos.gate) ---------


def test_the_history_gate_changes_nothing_until_a_prompt_comes_back(fresh, tmp_path):
    """On a split no step revisits, pc-history makes pc-beyond's decisions and rollouts, sample
    for sample (its gate pilots every unseen prompt, and its draws are not the engine's)."""
    common = [f"batch_prompts={B}", "pool_prompts=8", "steps=2", "eval.every=2",
              "eval.max_prompts=16", "eval.k=2", "score.evict_at=1.01"]  # fmt: skip
    rollouts = {}
    for name in ("pc-beyond", "pc-history"):
        cfg = load_config(ROOT / "configs" / f"tiny-{name}.toml", [*common, f"name={name}"])
        s, run = fresh(cfg)
        train(s, cfg, run, progress=False)
        rollouts[name] = run.read("rollouts")
        assert run.ledger()["filtering_stats/gate_skipped_easy"].sum() == 0
    assert rollouts["pc-history"].height > 0
    assert rollouts["pc-history"].equals(rollouts["pc-beyond"])
    assert s.prompt_state.seen(rollouts["pc-history"]["prompt_id"].unique()).all()


def test_a_history_gated_run_learns_each_prompts_posterior_and_skips_only_seen_ones(
    fresh, tmp_path
):
    cfg = cfg_for(tmp_path, "pc-history", steps=6)
    s, run = fresh(cfg)
    train(s, cfg, run, progress=False)
    assert s.step == 6 and ledger_violations(run) == []
    ledger, rollouts = run.ledger().filter(pl.col("step") > 0), run.read("rollouts")
    # Every rollout a prompt had, pilots and commits, is in its posterior (no decay).
    assert set(rollouts["phase"]) == {"pilot", "commit"}
    totals = rollouts.group_by("prompt_id").agg(pl.col("correct").sum().alias("k"), pl.len())
    posteriors = s.prompt_state
    assert set(posteriors.alpha) == set(totals["prompt_id"])
    for pid, k, n in totals.iter_rows():
        assert (posteriors.alpha[pid], posteriors.beta[pid]) == (1 + k, 1 + n - k)
    # Nothing is skipped in the first epoch (no prompt has been seen); later, prompts are.
    skipped = ["filtering_stats/gate_skipped_easy", "filtering_stats/gate_skipped_hard"]
    first_epoch = ledger.filter(pl.col("epochs").cum_sum() == 0)
    assert first_epoch.height and first_epoch.select(skipped).sum_horizontal().sum() == 0
    assert ledger.select(skipped).sum_horizontal().sum() > 0
    # Eviction is off in this config: the gate replaces it.
    assert ledger["filtering_stats/evicted"].sum() == 0
    # The posteriors are in the checkpoint: a resumed run gates with the same ones (the gate's
    # draws are seeded by (seed, step, round), so they need no state; the SIGKILL resume of the
    # same gate's posteriors is tests/test_resume.py's [pc-history] case).
    resumed, _ = open_run(cfg, tmp_path, resume=True, verifier=s.verifier)
    assert resumed.step == 6 and resumed.prompt_state.state_dict() == posteriors.state_dict()
