"""Per-token log-probabilities of completions under a causal LM: the math the policy's update
and the sharded root (pcbench.cluster.fsdp) both run, kept apart so that neither imports the
other. `token_logprobs` calls the decoder and the head separately, in chunks of positions, for
the architectures whose head it knows (LEAN_LOGPROB_ARCHITECTURES): full (B, T, V) logits are
never held at once."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class TokenBatch:
    """Right-padded sequences (prompt + completion) and the mask of completion tokens."""

    input_ids: torch.Tensor  # (B, T)
    attention_mask: torch.Tensor  # (B, T) 1 on real tokens
    completion_mask: torch.Tensor  # (B, T) 1 on completion tokens (the ones trained on)


def make_batch(prompts: list[list[int]], completions: list[list[int]], pad_id: int) -> TokenBatch:
    T = max(len(p) + len(c) for p, c in zip(prompts, completions, strict=True))
    ids = torch.full((len(prompts), T), pad_id, dtype=torch.long)
    attn = torch.zeros_like(ids)
    comp = torch.zeros_like(ids)
    for i, (p, c) in enumerate(zip(prompts, completions, strict=True)):
        ids[i, : len(p) + len(c)] = torch.tensor(p + c)
        attn[i, : len(p) + len(c)] = 1
        comp[i, len(p) : len(p) + len(c)] = 1
    return TokenBatch(ids, attn, comp)


# Architectures whose logits are exactly lm_head(decoder(...).last_hidden_state): for these the
# log-probs are computed from the hidden states chunk by chunk, never holding (B, T, V) logits.
LEAN_LOGPROB_ARCHITECTURES = ("llama", "qwen2", "qwen3", "mistral")
LOGIT_CHUNK_BYTES = 256 * 2**20  # fp32 logits of one chunk of positions (all rows, full vocab)


def _taken_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log p(target) = its logit minus the logsumexp over the vocabulary, in fp32."""
    logits = logits.float()
    return logits.gather(-1, targets[..., None])[..., 0] - torch.logsumexp(logits, dim=-1)


def _head_logprobs(head, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return _taken_logprobs(head(hidden), targets)


def token_logprobs(
    model, batch: TokenBatch, device: str, chunk_bytes: int = LOGIT_CHUNK_BYTES
) -> torch.Tensor:
    """(B, T) teacher-forced log-probs of the completion tokens, 0 elsewhere.

    Memory-lean: where the fp32 logits of the whole batch would exceed `chunk_bytes`, the
    vocabulary projection runs over chunks of positions that stay under it, each under
    activation checkpointing when gradients flow (the backward recomputes a chunk's logits
    instead of keeping them), so a (B, T, V) fp32 tensor is never made: at B 8 x T 9,216 x
    V 151,936 it would be ~45 GB. Batches that fit (the tiny policy's always do) take the
    one-shot path, bit for bit what the model's own forward gives.
    """
    ids = batch.input_ids.to(device)
    attention = batch.attention_mask.to(device)
    targets = ids[:, 1:]  # token t+1 is predicted from its prefix
    lean = getattr(model.config, "model_type", None) in LEAN_LOGPROB_ARCHITECTURES
    logits, lp = None, None
    if not lean:
        logits = model(input_ids=ids, attention_mask=attention).logits
    else:
        hidden = model.get_decoder()(input_ids=ids, attention_mask=attention).last_hidden_state
        head = model.get_output_embeddings()
        rows, positions = targets.shape
        chunk = max(1, chunk_bytes // (4 * rows * head.out_features))
        if chunk >= positions:  # fits: exactly the model's forward (lm_head on every position)
            logits = head(hidden)
        else:
            hidden = hidden[:, :-1]  # the last position predicts nothing here
            checkpoint = torch.is_grad_enabled() and hidden.requires_grad
            parts = []
            for start in range(0, positions, chunk):
                args = (head, hidden[:, start : start + chunk], targets[:, start : start + chunk])
                parts.append(
                    torch.utils.checkpoint.checkpoint(_head_logprobs, *args, use_reentrant=False)
                    if checkpoint
                    else _head_logprobs(*args)
                )
            lp = torch.cat(parts, dim=1)
    if lp is None:  # one shot: log_softmax over the whole (B, T-1, V), as the model's forward
        lp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
        lp = lp.gather(-1, targets[..., None])[..., 0]
    lp = torch.nn.functional.pad(lp, (1, 0))  # (B, T): position 0 has no prediction
    return lp * batch.completion_mask.to(lp.device)
