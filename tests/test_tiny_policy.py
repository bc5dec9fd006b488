"""The shipped tiny policy: loads everywhere, agrees across engines, leaves room for RL."""

import json

import polars as pl
import pytest
import torch

from pcbench.tiny.tokenizer import BOS, EOS

from conftest import ARITH, TINY_POLICY

PROMPTS_FOR_GREEDY = 20
MAX_NEW_TOKENS = 96


@pytest.fixture(scope="session")
def hf_policy():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(TINY_POLICY), AutoTokenizer.from_pretrained(
        TINY_POLICY
    )


@pytest.fixture
def vllm_policy(tiny_engine):
    """The session engine with the shipped weights: a test run earlier in the session (in
    another order than CI's) may have left it holding a trained policy's."""
    from pcbench.policy import Policy

    tiny_engine.load_weights(Policy(TINY_POLICY))
    return tiny_engine.llm


@pytest.fixture(scope="session")
def test_prompts():
    return pl.read_parquet(ARITH / "test.parquet")


def test_files_are_small_hf_format():
    names = {p.name for p in TINY_POLICY.iterdir()}
    assert {
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "CARD.md",
        "generation_config.json",
    } <= names
    total = sum(p.stat().st_size for p in TINY_POLICY.iterdir())
    assert total <= 20 * 2**20, f"tiny policy is {total / 2**20:.1f} MiB; the limit is 20"
    assert json.loads((TINY_POLICY / "config.json").read_text())["model_type"] == "llama"


def test_tokenizer_call_gives_the_model_input(hf_policy, test_prompts):
    _, tokenizer = hf_policy
    prompt = test_prompts["prompt"][0]
    ids = tokenizer(prompt).input_ids
    assert ids[0] == tokenizer.convert_tokens_to_ids(BOS) and BOS not in prompt
    assert len(ids) == len(prompt.encode()) + 1  # one token per byte, plus BOS
    assert tokenizer.decode(ids, skip_special_tokens=True) == prompt
    assert tokenizer.eos_token == EOS
    assert tokenizer.decode(tokenizer("é 😀 \x00").input_ids[1:]) == "é 😀 \x00"


def without_eos(tokens: list[int], eos: int) -> list[int]:
    return tokens[:-1] if tokens and tokens[-1] == eos else tokens


@pytest.mark.slow
def test_greedy_completions_match_under_transformers_and_vllm(hf_policy, vllm_policy, test_prompts):
    from vllm import SamplingParams

    model, tokenizer = hf_policy
    prompts = test_prompts["prompt"].head(PROMPTS_FOR_GREEDY).to_list()
    params = SamplingParams(temperature=0.0, max_tokens=MAX_NEW_TOKENS)
    vllm_out = [o.outputs[0] for o in vllm_policy.generate(prompts, params, use_tqdm=False)]
    for prompt, v in zip(prompts, vllm_out, strict=True):
        ids = tokenizer(prompt, return_tensors="pt")
        with torch.no_grad():
            out = model.generate(**ids, max_new_tokens=MAX_NEW_TOKENS, do_sample=False)
        hf_tokens = without_eos(out[0, ids.input_ids.shape[1] :].tolist(), tokenizer.eos_token_id)
        assert without_eos(list(v.token_ids), tokenizer.eos_token_id) == hf_tokens, prompt
        assert v.text == tokenizer.decode(hf_tokens)
    assert any("\\boxed{" in v.text for v in vllm_out)


@pytest.mark.slow
def test_profile_leaves_room_for_rl_and_allocation(tiny_engine):
    from pcbench.tiny.profile import profile_policy

    profile = profile_policy(
        TINY_POLICY,
        ARITH / "train.parquet",
        prompts=500,
        samples=16,
        temperature=1.0,
        engine=tiny_engine,
    )
    s = profile.summary()
    assert s["prompts"] == 500
    # The model-organism spread on the RL train split: both skip reasons and the band matter.
    assert s["frac_mixed"] >= 0.30, s
    assert s["frac_pass_0"] >= 0.15, s
    assert s["frac_pass_1"] >= 0.15, s
    assert 0.2 <= s["mean_accuracy"] <= 0.7, s
    assert s["frac_boxed"] >= 0.95, s
    # Graded: accuracy falls with difficulty.
    acc = profile.by_difficulty()["mean_accuracy"].to_list()
    assert acc[0] > acc[-1]
