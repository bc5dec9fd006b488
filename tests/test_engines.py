"""VLLMEngine and Policy on the shipped tiny policy: frames, log-probs, weight sync, bad input."""

import polars as pl
import pytest
import torch

from pcbench.config import SamplingConfig
from pcbench.engines import RequestError, WeightSyncError
from pcbench.policy import Policy, make_batch
from pcbench.schema import ROLLOUTS

from conftest import ARITH, ROOT, TINY_POLICY

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def prompts():
    return pl.read_parquet(ARITH / "test.parquet").head(6)


def requests(prompts, ns, phases=None):
    phases = phases or ["pilot"] * len(ns)
    return pl.DataFrame(
        {
            "prompt_id": prompts["prompt_id"][: len(ns)],
            "prompt": prompts["prompt"][: len(ns)],
            "n": ns,
            "phase": phases,
        }
    )


def policy_logprobs(policy, rollouts, prompts):
    prompt_ids = {
        pid: policy.tokenizer(p).input_ids
        for pid, p in zip(prompts["prompt_id"], prompts["prompt"], strict=True)
    }
    starts = [len(prompt_ids[pid]) for pid in rollouts["prompt_id"]]
    batch = make_batch(
        [prompt_ids[pid] for pid in rollouts["prompt_id"]],
        rollouts["token_ids"].to_list(),
        policy.tokenizer.pad_token_id,
    )
    with torch.no_grad():
        lp = policy.logprobs(batch)
    return [
        lp[i, s : s + n].tolist()
        for i, (s, n) in enumerate(zip(starts, rollouts["n_tokens"], strict=True))
    ]


def test_mixed_n_in_one_call(tiny_engine, prompts):
    rollouts = tiny_engine.generate(
        requests(prompts, [1, 3, 8], ["pilot", "commit", "pilot"]),
        SamplingConfig(),
        step=2,
        round=1,
    )
    ROLLOUTS.check(rollouts)
    counts = dict(rollouts.group_by("prompt_id").len().iter_rows())
    assert [counts[p] for p in prompts["prompt_id"][:3]] == [1, 3, 8]
    assert rollouts.filter(pl.col("prompt_id") == prompts["prompt_id"][1])[
        "phase"
    ].unique().to_list() == ["commit"]
    assert (rollouts["step"] == 2).all() and (rollouts["round"] == 1).all()
    assert (rollouts["n_tokens"] == rollouts["token_ids"].list.len()).all()
    assert (rollouts["logprobs"].list.len() == rollouts["n_tokens"]).all()


def test_sampling_logprobs_match_the_policy(tiny_engine, prompts):
    policy = Policy(TINY_POLICY)
    rollouts = tiny_engine.generate(requests(prompts, [4] * 6), SamplingConfig())
    theirs = policy_logprobs(policy, rollouts, prompts)
    gaps = [
        abs(a - b)
        for mine, other in zip(rollouts["logprobs"], theirs, strict=True)
        for a, b in zip(mine, other, strict=True)
    ]
    assert sum(gaps) / len(gaps) < 1e-3


def test_sync_after_a_real_step_and_a_skipped_sync_is_caught(tiny_engine, prompts):
    policy = Policy(TINY_POLICY)
    greedy = SamplingConfig(temperature=0.0)
    before = tiny_engine.generate(requests(prompts, [1] * 6), greedy)
    rollouts = tiny_engine.generate(requests(prompts, [4] * 6), SamplingConfig())
    batch = make_batch(
        [policy.tokenizer(p).input_ids for p in prompts["prompt"] for _ in range(4)],
        rollouts["token_ids"].to_list(),
        policy.tokenizer.pad_token_id,
    )
    for group in policy.optimizer.param_groups:
        group["lr"] = 5e-2  # one large step, so that outputs visibly move
    policy.step(-(policy.logprobs(batch).sum() / batch.completion_mask.sum()))
    assert policy.version == 1
    with pytest.raises(WeightSyncError, match="version 1"):
        tiny_engine.check(policy)  # the sync was skipped: caught
    try:
        assert tiny_engine.load_weights(policy, check=True) < 1e-3
        after = tiny_engine.generate(requests(prompts, [1] * 6), greedy)
        assert (after["policy_version"] == 1).all()
        assert after["token_ids"].to_list() != before["token_ids"].to_list()
        sampled = tiny_engine.generate(requests(prompts, [2] * 6), SamplingConfig())
        theirs = policy_logprobs(policy, sampled, prompts)
        gap = [
            abs(a - b)
            for m, o in zip(sampled["logprobs"], theirs, strict=True)
            for a, b in zip(m, o, strict=True)
        ]
        assert sum(gap) / len(gap) < 1e-3
    finally:
        tiny_engine.load_weights(Policy(TINY_POLICY))  # later tests get the shipped weights


def test_sync_self_check_runs_on_the_first_sync_and_every_nth(tiny_engine):
    policy, every = Policy(TINY_POLICY), tiny_engine.sync_check_every
    try:
        tiny_engine.sync_check_every, tiny_engine.syncs = 3, 0
        gaps = [tiny_engine.load_weights(policy) for _ in range(7)]
        checked = [g == g for g in gaps]  # NaN: not checked
        assert checked == [True, False, False, True, False, False, True]
        assert all(g < 1e-3 for g in gaps if g == g)
        assert tiny_engine.load_weights(policy, check=True) < 1e-3  # forced: always checked
    finally:
        tiny_engine.sync_check_every = every


@pytest.mark.parametrize(
    "change, message",
    [
        ({"prompt": ""}, "empty prompt"),
        ({"prompt": "x" * 400}, "max_model_len is 256"),
        ({"n": 0}, "n = 0, must be >= 1"),
        ({"phase": "warm up!"}, "phase 'warm up!' is not a phase name"),
    ],
)
def test_bad_requests_fail_before_generating(tiny_engine, prompts, change, message):
    bad = requests(prompts, [1, 2]).with_columns(
        **{k: pl.Series([v, requests(prompts, [1, 2])[k][1]]) for k, v in change.items()}
    )
    with pytest.raises(RequestError, match=message):
        tiny_engine.generate(bad, SamplingConfig())
    assert len(tiny_engine.generate(requests(prompts, [2]), SamplingConfig())) == 2


def test_policy_save_and_load(tmp_path, prompts):
    policy = Policy(TINY_POLICY)
    batch = make_batch([policy.tokenizer(prompts["prompt"][0]).input_ids], [[5, 6, 7]], 0)
    policy.step(-policy.logprobs(batch).sum())
    loaded = Policy.load(policy.save(tmp_path / "p"))
    assert loaded.version == 1
    for a, b in zip(policy.model.parameters(), loaded.model.parameters(), strict=True):
        assert torch.equal(a, b)
    assert (
        loaded.optimizer.state_dict()["state"].keys()
        == policy.optimizer.state_dict()["state"].keys()
    )


@pytest.fixture(scope="module")
def hf_engine():
    from pcbench.engines import HFEngine

    return HFEngine(str(TINY_POLICY), max_model_len=256, seed=0)


def test_greedy_outputs_of_vllm_and_hf_engines_agree(tiny_engine, hf_engine):
    test = pl.read_parquet(ARITH / "test.parquet").head(20)
    greedy = SamplingConfig(temperature=0.0, max_tokens=64)
    v = tiny_engine.generate(requests(test, [1] * 20), greedy)
    h = hf_engine.generate(requests(test, [1] * 20), greedy)
    assert v["token_ids"].to_list() == h["token_ids"].to_list()
    assert v["completion"].to_list() == h["completion"].to_list()
    assert v["finish"].to_list() == h["finish"].to_list()


def test_hf_engine_frames_logprobs_and_seed(hf_engine, prompts):
    from pcbench.engines import HFEngine

    req = requests(prompts, [2, 5, 1], ["pilot", "commit", "eval"])
    rollouts = hf_engine.generate(req, SamplingConfig())
    counts = dict(rollouts.group_by("prompt_id").len().iter_rows())
    assert [counts[p] for p in prompts["prompt_id"][:3]] == [2, 5, 1]
    theirs = policy_logprobs(Policy(TINY_POLICY), rollouts, prompts)
    gaps = [
        abs(a - b)
        for m, o in zip(rollouts["logprobs"], theirs, strict=True)
        for a, b in zip(m, o, strict=True)
    ]
    assert sum(gaps) / len(gaps) < 1e-3

    # Same seed and requests on fresh engines: identical rollouts; another seed: different.
    def fresh(seed):
        return HFEngine(str(TINY_POLICY), max_model_len=256, seed=seed).generate(
            req, SamplingConfig()
        )

    first, again, other = fresh(0), fresh(0), fresh(1)
    assert again["token_ids"].to_list() == first["token_ids"].to_list()
    assert other["token_ids"].to_list() != first["token_ids"].to_list()
    with pytest.raises(RequestError, match="n = 0"):
        hf_engine.generate(requests(prompts, [0]), SamplingConfig())


SAME_SEED_SCRIPT = """
import sys
import polars as pl
from pcbench.config import SamplingConfig
from pcbench.engines import VLLMEngine
prompts = pl.read_parquet(sys.argv[2]).head(3)
req = pl.DataFrame({"prompt_id": prompts["prompt_id"], "prompt": prompts["prompt"],
                    "n": [3, 1, 4], "phase": ["pilot"] * 3})
runs = [VLLMEngine(sys.argv[1], max_model_len=256, seed=7).generate(req, SamplingConfig())
        for _ in range(2)]
print("SAME", runs[0]["token_ids"].to_list() == runs[1]["token_ids"].to_list()
      and runs[0]["logprobs"].to_list() == runs[1]["logprobs"].to_list())
"""


def test_vllm_same_seed_same_rollouts():
    # In a subprocess: tearing down extra vLLM engines resets vLLM's process-wide parallel
    # state, which would break the session's shared engine.
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", SAME_SEED_SCRIPT, str(TINY_POLICY), str(ARITH / "test.parquet")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "SAME True" in out.stdout


ENGINE_ARGS_SCRIPT = """
import sys
from pcbench.config import load_config
from pcbench.state import make_engine
cfg = load_config(sys.argv[2], ["engine.max_num_seqs=7"])
engine = make_engine(sys.argv[1], cfg.engine, seed=0)
vc = engine.llm.llm_engine.vllm_config
print("ARGS", vc.scheduler_config.max_num_seqs, vc.model_config.enforce_eager)
"""


def test_engine_arguments_from_the_config_reach_vllm():
    # In a subprocess, as above: this engine has other settings than the session's.
    import subprocess
    import sys

    config = ROOT / "configs" / "tiny-pc.toml"
    out = subprocess.run(
        [sys.executable, "-c", ENGINE_ARGS_SCRIPT, str(TINY_POLICY), str(config)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    # max_num_seqs came through [engine]; eager is the CPU platform's default, not hard-coded
    assert "ARGS 7 True" in out.stdout
