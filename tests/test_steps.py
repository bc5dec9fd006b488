"""The five steps on the real engine, verifier and tiny policy; the paper's overview example."""

from dataclasses import replace

import numpy as np
import polars as pl
import pytest
import torch

from pcbench.algos import ppo_clip_loss
from pcbench.buffer import PilotBuffer
from pcbench.config import CommitConfig, EvalConfig, PilotConfig, RunConfig, UpdateConfig
from pcbench.policy import Policy, make_batch
from pcbench.schema import ROLLOUTS, SCORES
from pcbench.steps import (
    eval_summary,
    evaluate,
    generate_round,
    pilot,
    plan,
    reused_pilot,
    score,
    training_group,
)
from pcbench.steps.update import advantages, update
from pcbench.tasks import load_benchmark, template_for

from conftest import ARITH, TINY_POLICY

CFG = RunConfig(pilot=PilotConfig(n_pilot=4), commit=CommitConfig(n_commit=8))


def _rollouts(step, phase, correct_by_prompt):
    rows = [
        dict(step=step, round=1, phase=phase, prompt_id=pid, sample=i, policy_version=0,
             completion="x", token_ids=[5, 6, 7], logprobs=[0.0] * 3, n_tokens=3, finish="stop",
             reward=float(c), correct=bool(c), verify_status="ok")
        for pid, cs in correct_by_prompt.items()
        for i, c in enumerate(cs)
    ]  # fmt: skip
    return ROLLOUTS.frame(rows)


def test_paper_overview_example():
    """Pilots [1,0,1,0], [1,0,0,0], [0,0,0,0], [1,1,1,1]; 8 commits each for the kept two."""
    pilots = _rollouts(
        1, "pilot", {"a": [1, 0, 1, 0], "b": [1, 0, 0, 0], "c": [0] * 4, "d": [1] * 4}
    )
    scores = score(pilots, CFG)
    assert scores["verdict"].to_list() == ["keep", "keep", "too_hard", "too_easy"]
    assert scores["evict"].to_list() == [False, False, False, True]
    assert scores["mean"].to_list() == [0.5, 0.25, 0.0, 1.0]
    buf = PilotBuffer()
    buf.add(scores, pilots, step=1)
    taken = buf.take(2)
    assert [e.prompt_id for e in taken] == ["a", "b"]  # std .5 before .43
    commits = _rollouts(1, "commit", {"a": [1, 1, 0, 0, 1, 0, 1, 0], "b": [0, 1, 0, 0, 0, 0, 0, 0]})
    groups = [training_group(e, commits, n_reuse=None) for e in taken]
    assert [g.height for g in groups] == [12, 12]
    assert [g["reward"].mean() for g in groups] == [6 / 12, 2 / 12]
    batch = pl.concat(groups)
    adv = advantages(batch)
    for pid in ("a", "b"):
        assert abs(adv[(batch["prompt_id"] == pid).to_numpy()].sum()) < 1e-9


def test_pilot_reuse_down_samples_to_max_variance():
    pilots = _rollouts(1, "pilot", {"a": [1, 1, 1, 0, 1, 0, 1, 1]})
    kept = reused_pilot(pilots, 4)
    assert kept["sample"].to_list() == [0, 1, 3, 5] and kept["reward"].sum() == 2
    assert reused_pilot(pilots, None).height == 8 and reused_pilot(pilots, 0).height == 0


def test_score_is_pure_and_rescoring_changes_only_verdicts():
    pilots = _rollouts(3, "pilot", {"a": [1, 0, 0, 0], "b": [1, 1, 1, 0]})
    wide = score(pilots, CFG.score.__class__(keep_min=0.0, keep_max=0.8, evict_at=1.0))
    narrow = score(pilots, CFG)
    assert SCORES.check(wide).drop("verdict").equals(narrow.drop("verdict"))
    assert wide["verdict"].to_list() == ["keep", "keep"] and narrow["step"].to_list() == [3, 3]


# ---- real engine ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def arith_test():
    return pl.read_parquet(ARITH / "test.parquet")


class CountingEngine:
    """The real engine, counting its generate calls (a spy, not a fake)."""

    def __init__(self, engine):
        self.engine, self.calls = engine, 0

    def generate(self, *args, **kwargs):
        self.calls += 1
        return self.engine.generate(*args, **kwargs)


@pytest.mark.slow
def test_pilot_and_commit_of_a_round_share_one_engine_call(tiny_engine, verifier, arith_test):
    prompts = arith_test.head(12)
    engine = CountingEngine(tiny_engine)
    first = pilot(engine, verifier, prompts.head(6), CFG, step=1)
    assert first.group_by("prompt_id").len()["len"].to_list() == [4] * 6
    scores = score(first, CFG)
    buf = PilotBuffer()
    buf.add(scores, first, step=1)
    taken = buf.take(3)
    plan_frame = plan(taken, CFG, step=2)
    pilots, commits = generate_round(
        engine, verifier, prompts["prompt_id"][6:], plan_frame, prompts,
        n_pilot=4, sampling=CFG.sampling, step=2, round=1,
    )  # fmt: skip
    assert engine.calls == 2  # one for the first pilot, one for pilot + commit of round 1
    assert pilots.height == 6 * 4 and commits.height == len(taken) * 8
    assert set(commits["prompt_id"]) == {e.prompt_id for e in taken}
    assert commits["verify_status"].is_in(["ok", "no_answer"]).all()
    # The tiny policy solves some arithmetic: rewards are not all zero.
    assert 0 < pl.concat([first, pilots])["reward"].mean() < 1


@pytest.mark.slow
def test_update_lowers_the_loss_on_its_batch_and_changes_weights(tiny_engine, verifier, arith_test):
    prompts = arith_test.filter(pl.col("difficulty") == 3).head(8)
    rollouts = pilot(tiny_engine, verifier, prompts, CFG.with_pilot_fraction(0.5, 16), step=1)
    rollouts = rollouts.filter(pl.col("prompt_id").is_in(
        score(rollouts, CFG).filter(pl.col("std") > 0)["prompt_id"].implode()))  # fmt: skip
    assert rollouts.height > 0, "no prompt with mixed rewards; the tiny policy changed?"
    policy = Policy(TINY_POLICY, UpdateConfig(lr=1e-3, warmup_steps=0))
    before = {k: v.clone() for k, v in policy.model.state_dict().items()}

    ids = {
        p: policy.tokenizer(t).input_ids
        for p, t in zip(prompts["prompt_id"], prompts["prompt"], strict=True)
    }
    batch = make_batch([ids[p] for p in rollouts["prompt_id"]], rollouts["token_ids"].to_list(), 0)
    adv = torch.tensor(advantages(rollouts), dtype=torch.float32)
    with torch.no_grad():
        old = policy.logprobs(batch)
        loss_before, _ = ppo_clip_loss(old, old, adv, batch.completion_mask.float())

    metrics = update(policy, rollouts, prompts, policy.update)

    with torch.no_grad():
        loss_after, _ = ppo_clip_loss(
            policy.logprobs(batch), old, adv, batch.completion_mask.float()
        )
    assert loss_after.item() < loss_before.item()
    assert metrics["update/loss"] == pytest.approx(loss_before.item(), abs=1e-5)
    assert metrics["update/grad_norm"] > 0 and policy.version == 1
    assert metrics["update/rollouts"] == rollouts.height
    assert metrics["update/tokens"] == rollouts["n_tokens"].sum()
    assert abs(metrics["update/advantage_mean/pilot"]) < 1e-6  # groups are whole: mean 0
    changed = [k for k, v in policy.model.state_dict().items() if not torch.equal(v, before[k])]
    assert len(changed) > 0.9 * len(before)


@pytest.mark.slow
def test_update_mini_batches_and_kl_report_clipping(tiny_engine, verifier, arith_test):
    prompts = arith_test.filter(pl.col("difficulty") == 3).head(8)
    rollouts = pilot(tiny_engine, verifier, prompts, CFG.with_pilot_fraction(0.5, 16), step=1)
    cfg = UpdateConfig(lr=3e-3, warmup_steps=0, mini_batches=4, micro_batch_size=5, kl_coef=0.1)
    policy = Policy(TINY_POLICY, cfg, reference_path=TINY_POLICY)
    metrics = update(policy, rollouts, prompts, cfg)
    assert policy.version == 4  # one optimizer step per mini-batch
    assert metrics["update/kl"] > 0  # later mini-batches have left the reference
    clipped = metrics["update/clip_high"] + metrics["update/clip_low"]
    assert 0 <= clipped < 1 and metrics["update/ratio_mean"] != 1.0


@pytest.mark.slow
def test_each_optimizer_step_sees_the_training_steps_learning_rate(
    tiny_engine, verifier, arith_test
):
    # 4 prompts x 16 pilot rollouts, the last 12 of each relabelled as commits; 1 prompt a step under
    # the official normalisation: 12 rows, so 5 steps of 12 and one of 4 per training step.
    prompts = arith_test.head(4)
    rollouts = pilot(tiny_engine, verifier, prompts, CFG.with_pilot_fraction(0.5, 32), step=1)
    rollouts = rollouts.with_columns(
        phase=pl.when(pl.col("sample") < 4).then(pl.lit("pilot")).otherwise(pl.lit("commit"))
    )
    uc = UpdateConfig(lr=1e-3, warmup_steps=3, mini_batch_prompts=1,
                      official_pc_normalisation=True, micro_batch_size=16)  # fmt: skip
    policy = Policy(TINY_POLICY, uc)
    seen = []
    policy.optimizer.register_step_pre_hook(lambda opt, *_: seen.append(opt.param_groups[0]["lr"]))
    for _ in range(4):
        metrics = update(policy, rollouts, prompts, replace(CFG, update=uc))
        assert metrics["update/optimizer_steps"] == 6
    # linear warm-up over 3 training steps (not 3 optimizer steps): lr/3, 2lr/3, lr, lr
    expected = [1e-3 * w for w in (1 / 3, 2 / 3, 1.0, 1.0) for _ in range(6)]
    assert seen == pytest.approx(expected) and policy.version == 24


@pytest.mark.slow
def test_the_kl_term_enters_the_loss_with_its_coefficient(tiny_engine, verifier, arith_test):
    # Two mini-batches: the first is taken at the reference (KL 0 and zero gradient), so both
    # policies are equal before the second, whose loss differs exactly by kl_coef * KL.
    prompts = arith_test.filter(pl.col("difficulty") == 3).head(8)
    rollouts = pilot(tiny_engine, verifier, prompts, CFG.with_pilot_fraction(0.5, 16), step=1)
    with_kl = UpdateConfig(lr=3e-3, warmup_steps=0, mini_batches=2, micro_batch_size=8,
                           kl_coef=0.5)  # fmt: skip
    without = replace(with_kl, kl_coef=0.0)
    m_kl = update(Policy(TINY_POLICY, with_kl, reference_path=TINY_POLICY), rollouts, prompts,
                  with_kl)  # fmt: skip
    m_0 = update(Policy(TINY_POLICY, without), rollouts, prompts, without)
    assert m_0["update/kl"] == 0 and m_kl["update/kl"] > 1e-6
    # update/loss and update/kl are means over the 2 mini-batches; KL is 0 in the first.
    extra = m_kl["update/loss"] - m_0["update/loss"]
    assert extra == pytest.approx(0.5 * m_kl["update/kl"], rel=1e-3)


@pytest.mark.slow
def test_evaluate_reports_mean_and_pass_at_k(tiny_engine, verifier, arith_test, benchmarks):
    math500 = load_benchmark(benchmarks / "math500.jsonl", template_for(TINY_POLICY)).prompts
    short = (
        math500.with_columns(len=pl.col("prompt").str.len_bytes()).sort("len").head(5).drop("len")
    )
    prompts = pl.concat(
        [arith_test.head(40), short.with_columns(pl.col("difficulty").cast(pl.Int32))],
        how="diagonal_relaxed",
    )
    cfg = RunConfig(eval=EvalConfig(k=4, n=8, max_prompts=30))
    evals = evaluate(tiny_engine, verifier, prompts, cfg, step=0)
    summary = eval_summary(evals)
    assert dict(zip(summary["benchmark"], summary["prompts"], strict=True)) == {
        "arith": 30,
        "math500": 5,
    }
    assert ((evals["pass@k"] >= evals["mean@k"] - 1e-12) & (evals["mean@k"].is_between(0, 1))).all()
    arith = summary.filter(pl.col("benchmark") == "arith").row(0, named=True)
    assert 0.3 < arith["mean@k"] < arith["pass@k"] <= 1.0  # the tiny policy: ~0.6 mean accuracy
    assert np.isfinite(summary.filter(pl.col("benchmark") == "math500")["mean@k"][0])
