"""Memory-lean log-probs: chunked over positions (logit minus logsumexp, checkpointed per chunk)
equal the full-vocabulary log_softmax, in values and in gradients; batches that fit take the
one-shot path, bit for bit the model's own forward."""

import polars as pl
import pytest
import torch

from pcbench.logprobs import make_batch, token_logprobs
from pcbench.policy import Policy

from conftest import ARITH, TINY_POLICY


def full_logprobs(model, batch):
    """The reference: log_softmax over the whole (B, T, V) logits, as pcbench did before."""
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    lp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    lp = lp.gather(-1, batch.input_ids[:, 1:, None])[..., 0]
    return torch.nn.functional.pad(lp, (1, 0)) * batch.completion_mask


@pytest.fixture(scope="module")
def policy_and_batch():
    policy = Policy(TINY_POLICY)
    tok = policy.tokenizer
    prompts = pl.read_parquet(ARITH / "test.parquet")["prompt"].head(6).to_list()
    completions = ["3+4=7 \\boxed{7}", "\\boxed{12}", "1*2=2", "x", "\\boxed{0}" * 3, "no answer"]
    batch = make_batch([tok(p).input_ids for p in prompts],
                       [tok(c, add_special_tokens=False).input_ids for c in completions],
                       tok.pad_token_id)  # fmt: skip
    return policy, batch


def test_one_shot_path_is_bitwise_the_full_computation(policy_and_batch):
    policy, batch = policy_and_batch
    with torch.no_grad():
        assert torch.equal(policy.logprobs(batch), full_logprobs(policy.model, batch))


def test_chunked_path_equals_full_in_values_and_gradients(policy_and_batch):
    policy, batch = policy_and_batch
    model = policy.model
    rows, vocab = batch.input_ids.shape[0], model.get_output_embeddings().out_features
    tiny_chunks = 3 * 4 * rows * vocab  # 3 positions per chunk: many chunks, checkpointed

    def loss_and_grads(fn):
        model.zero_grad(set_to_none=True)
        lp = fn()
        (lp.sum() / batch.completion_mask.sum()).backward()
        return lp.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}

    lean, lean_grads = loss_and_grads(lambda: token_logprobs(model, batch, "cpu", tiny_chunks))
    full, full_grads = loss_and_grads(lambda: full_logprobs(model, batch))
    assert (lean - full).abs().max() < 1e-5
    assert lean[batch.completion_mask == 0].abs().max() == 0  # prompt and padding stay 0
    for name, g in full_grads.items():
        assert (lean_grads[name] - g).abs().max() < 1e-5 * max(1.0, g.abs().max()), name
    model.zero_grad(set_to_none=True)


def test_a_150k_vocabulary_is_chunked_and_exact():
    """A Qwen2-shaped random model with the real vocabulary size: the chunked path (8 positions
    per chunk here) gives the full computation's log-probs."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=151_936, hidden_size=32, intermediate_size=64,
                      num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                      tie_word_embeddings=True)  # fmt: skip
    model = Qwen2ForCausalLM(cfg).eval()
    ids = torch.randint(0, cfg.vocab_size, (2, 41))
    batch = make_batch([ids[0, :9].tolist(), ids[1, :5].tolist()],
                       [ids[0, 9:].tolist(), ids[1, 5:30].tolist()], pad_id=0)  # fmt: skip
    with torch.no_grad():
        lean = token_logprobs(model, batch, "cpu", chunk_bytes=8 * 4 * 2 * cfg.vocab_size)
        assert (lean - full_logprobs(model, batch)).abs().max() < 1e-5
