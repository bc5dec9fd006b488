"""The architectures the presets name, through the real CPU path: Qwen2 (Qwen2.5-Math) and Qwen3,
as small random-init models built from their published configs (configs/models/) shrunk to a
few layers and the tiny tokenizer's vocabulary, embeddings tied as in the originals.

Each runs in its own process (vLLM allows one engine per process): vLLM generates, its sampling
log-probs agree with the Policy's, a real update step moves the policy, a skipped sync is
caught by the self-check, the sync brings the engine level again, and the tied embedding and
output head stay one tensor through the update."""

import json
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT, TINY_POLICY

pytestmark = pytest.mark.slow

SHRINK = {
    # head_dim 32: vLLM's CPU attention refuses 16 ("Unsupported CPU attention configuration");
    # 4 query heads over 2 KV heads keep the grouped-query attention of both originals.
    "num_hidden_layers": 2, "hidden_size": 128, "intermediate_size": 256,
    "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 256,
    "max_window_layers": 2, "torch_dtype": "float32", "tie_word_embeddings": True,
}  # fmt: skip


def shrunk_model(name: str, out, seed: int = 0):
    """configs/models/<name>.json shrunk, random-init, saved with the tiny tokenizer."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    raw = json.loads((ROOT / "configs" / "models" / f"{name}.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(TINY_POLICY)
    raw |= SHRINK | {"vocab_size": len(tokenizer), "bos_token_id": tokenizer.bos_token_id,
                     "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id}  # fmt: skip
    if "head_dim" in raw:
        raw["head_dim"] = 32
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(**raw))
    model.save_pretrained(out)
    for f in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        if (TINY_POLICY / f).exists():
            shutil.copy(TINY_POLICY / f, out / f)
    return model


SCRIPT = r"""
import sys
import polars as pl
import torch
from pcbench.config import SamplingConfig
from pcbench.engines import VLLMEngine, WeightSyncError
from pcbench.policy import Policy, make_batch

path, arch = sys.argv[1], sys.argv[2]
engine = VLLMEngine(path, dtype="float32", max_model_len=256, seed=0)
policy = Policy(path)
assert policy.model.config.model_type == arch, policy.model.config.model_type
prompts = pl.read_parquet(sys.argv[3]).head(4)
requests = prompts.select("prompt_id", "prompt").with_columns(n=pl.lit(4), phase=pl.lit("pilot"))
rollouts = engine.generate(requests, SamplingConfig(max_tokens=24))
assert rollouts.height == 16 and (rollouts["n_tokens"] > 0).all()

def gap(rollouts):
    ids = {p: policy.tokenizer(t).input_ids for p, t in zip(prompts["prompt_id"], prompts["prompt"])}
    batch = make_batch([ids[p] for p in rollouts["prompt_id"]], rollouts["token_ids"].to_list(),
                       policy.tokenizer.pad_token_id or 0)
    with torch.no_grad():
        lp = policy.logprobs(batch)
    diffs = [abs(a - b) for i, (p, mine) in enumerate(zip(rollouts["prompt_id"], rollouts["logprobs"]))
             for a, b in zip(mine, lp[i, len(ids[p]): len(ids[p]) + len(mine)].tolist())]
    return sum(diffs) / len(diffs)

print("GAP", arch, gap(rollouts))
assert gap(rollouts) < 1e-3
embed, head = policy.model.get_input_embeddings().weight, policy.model.get_output_embeddings().weight
assert embed.data_ptr() == head.data_ptr(), "embeddings tied as in the published config"
greedy = SamplingConfig(temperature=0.0, max_tokens=24)
before = engine.generate(requests.with_columns(n=pl.lit(1)), greedy)
ids = {p: policy.tokenizer(t).input_ids for p, t in zip(prompts["prompt_id"], prompts["prompt"])}
batch = make_batch([ids[p] for p in rollouts["prompt_id"]], rollouts["token_ids"].to_list(),
                   policy.tokenizer.pad_token_id or 0)
for group in policy.optimizer.param_groups:
    group["lr"] = 5e-2  # one large step, so that outputs visibly move
start = embed.detach().clone()
policy.step(-(policy.logprobs(batch).sum() / batch.completion_mask.sum()))
assert policy.version == 1 and not torch.equal(start, embed.detach())
assert embed.data_ptr() == policy.model.get_output_embeddings().weight.data_ptr()
try:
    engine.check(policy)
    raise AssertionError("a skipped sync went unnoticed")
except WeightSyncError as e:
    print("CAUGHT", str(e)[:60])
print("SYNC", arch, engine.load_weights(policy, check=True))
after = engine.generate(requests.with_columns(n=pl.lit(1)), greedy)
assert after["token_ids"].to_list() != before["token_ids"].to_list()
assert gap(engine.generate(requests, SamplingConfig(max_tokens=24))) < 1e-3
print("OK", arch)
"""


@pytest.mark.parametrize(
    "name, arch", [("Qwen--Qwen2.5-Math-1.5B", "qwen2"), ("Qwen--Qwen3-1.7B", "qwen3")]
)
def test_preset_architecture_through_the_real_cpu_path(name, arch, tmp_path):
    shrunk_model(name, tmp_path)
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path), arch, str(ROOT / "data/arith/test.parquet")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert f"OK {arch}" in out.stdout and "CAUGHT" in out.stdout, out.stdout
