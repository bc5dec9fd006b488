"""Mixed precision: bf16 compute, fp32 master weights and AdamW state. At the paper's lr 1e-6 a
bf16 policy must move its weights by ~lr per step (plain bf16 AdamW rounds the updates away),
and resuming from its checkpoint must be exact."""

import polars as pl
import pytest
import torch

from pcbench.config import UpdateConfig
from pcbench.policy import Policy, make_batch

from conftest import ARITH, TINY_POLICY

LR = 1e-6
UPDATE = UpdateConfig(lr=LR, warmup_steps=0, weight_decay=0.0)


def batch_for(policy):
    tok = policy.tokenizer
    prompts = pl.read_parquet(ARITH / "test.parquet")["prompt"].head(4).to_list()
    return make_batch([tok(p).input_ids for p in prompts],
                      [tok(c, add_special_tokens=False).input_ids for c in
                       ("\\boxed{7}", "3*2=6 \\boxed{6}", "\\boxed{10}", "1+1=2")],
                      tok.pad_token_id)  # fmt: skip


def train(policy, batch, steps):
    for _ in range(steps):
        lp = policy.logprobs(batch)
        policy.step(-(lp.sum() / batch.completion_mask.sum()))


def test_bf16_policy_moves_by_lr_per_step_and_syncs_the_compute_copy():
    policy = Policy(TINY_POLICY, UPDATE, dtype="bfloat16")
    assert policy.mixed and all(m.dtype == torch.float32 for m in policy.masters)
    assert all(p.dtype == torch.bfloat16 for p in policy.model.parameters())
    start = [m.detach().clone() for m in policy.masters]
    batch = batch_for(policy)
    train(policy, batch, 20)
    moved = torch.cat(
        [(m.detach() - s).abs().flatten() for m, s in zip(policy.masters, start, strict=True)]
    )
    # AdamW moves each weight by ~lr per step while the gradient's sign holds: 20 steps ~2e-5
    # (plain bf16 AdamW moved them by 2.4e-7 on average: updates rounded away)
    assert 0.3 * 20 * LR < float(moved.mean()) < 1.2 * 20 * LR
    # the compute copy (what engines sync from) is the masters rounded to bf16
    weights = dict(policy.named_weights())
    for (name, p), m in zip(policy.model.named_parameters(), policy.masters, strict=True):
        assert weights[name].dtype == torch.bfloat16 and torch.equal(
            p.detach(), m.detach().bfloat16()
        )


def test_bf16_resume_from_a_checkpoint_is_exact(tmp_path):
    straight = Policy(TINY_POLICY, UPDATE, dtype="bfloat16")
    batch = batch_for(straight)
    train(straight, batch, 3)
    straight.save(tmp_path / "ckpt")
    train(straight, batch, 3)
    resumed = Policy.load(tmp_path / "ckpt", UPDATE, dtype="bfloat16")
    assert resumed.version == 3
    train(resumed, batch, 3)
    for a, b in zip(straight.masters, resumed.masters, strict=True):
        assert torch.equal(a.detach(), b.detach())
    for a, b in zip(straight.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(a.detach(), b.detach())


def test_a_float32_checkpoint_is_not_resumed_as_bf16(tmp_path):
    Policy(TINY_POLICY, UPDATE).save(tmp_path / "fp32")
    with pytest.raises(ValueError, match="saved without fp32 master weights"):
        Policy.load(tmp_path / "fp32", UPDATE, dtype="bfloat16")
    assert not Policy.load(tmp_path / "fp32", UPDATE).mixed


def test_gradient_checkpointing_recomputes_layers_and_leaves_logprobs_unchanged():
    """transformers checkpoints only in training mode: the Policy must switch it on (an H100
    measurement found it silently off), without dropout changing the log-probs."""
    plain = Policy(TINY_POLICY)
    lean = Policy(TINY_POLICY, gradient_checkpointing=True)
    ids = torch.randint(3, 250, (2, 40))
    batch = make_batch([r[:10].tolist() for r in ids], [r[10:].tolist() for r in ids], 0)
    calls = []
    layer = lean.model.get_decoder().layers[0]
    # a pre-hook: the recomputation stops once it has what backward needs (torch's early stop),
    # before the layer's forward returns, so a post-hook would not see it
    layer.register_forward_pre_hook(lambda *a: calls.append(1))
    lp = lean.logprobs(batch)
    lp.sum().backward()
    assert len(calls) == 2  # forward, and again in backward: the layer was checkpointed
    with torch.no_grad():
        assert torch.equal(lean.logprobs(batch), plain.logprobs(batch))  # no dropout noise
    assert torch.equal(lp.detach(), plain.logprobs(batch).detach())


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_training_mode_for_checkpointing_adds_no_dropout(arch, tmp_path):
    """Models whose configs ask for dropout (attention dropout as a float, dropout modules, a
    GPT-2 that reads its dropout modules' p in training): log-probs stay those of eval mode."""
    import shutil

    from transformers import AutoConfig, AutoModelForCausalLM

    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(TINY_POLICY / f, tmp_path / f)
    if arch == "llama":
        config = AutoConfig.from_pretrained(TINY_POLICY, attention_dropout=0.3)
    else:
        config = AutoConfig.for_model(
            "gpt2", vocab_size=259, n_embd=64, n_layer=2, n_head=2, n_positions=128,
            resid_pdrop=0.3, embd_pdrop=0.3, attn_pdrop=0.3,
        )  # fmt: skip
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(tmp_path)
    plain, lean = Policy(tmp_path), Policy(tmp_path, gradient_checkpointing=True)
    assert lean.model.training and not plain.model.training
    ids = torch.randint(3, 250, (2, 40))
    batch = make_batch([r[:10].tolist() for r in ids], [r[10:].tolist() for r in ids], 0)
    with torch.no_grad():
        reference = plain.logprobs(batch)
    assert torch.allclose(lean.logprobs(batch).detach(), reference, atol=1e-6)
    assert torch.allclose(lean.logprobs(batch).detach(), reference, atol=1e-6)  # not by luck
