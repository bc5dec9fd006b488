"""Clipped policy-gradient loss (PPO surrogate with clip-higher and dual-clip) and KL penalty.

Per token, with ratio r = exp(logp - old_logp) and the rollout's advantage A:
    pg   = max(-A r, -A clip(r, 1 - clip_low, 1 + clip_high))     (PPO, asymmetric clip)
    pg   = min(pg, -A c)  where A < 0                             (dual-clip, c = dual_clip)
Aggregation (verl's `agg_loss` modes):
    token-mean           sum over all tokens / number of tokens          (paper)
    seq-mean-token-sum   mean over sequences of the per-sequence sum
    seq-mean-token-mean  mean over sequences of the per-sequence mean
Optional KL penalty to a reference policy uses the k3 estimator exp(q) - q - 1, q = ref - logp,
aggregated the same way and added with weight kl_coef (the paper uses none).

Clip fractions are reported per branch (token-weighted): `clip_high` (A > 0, r > 1 + clip_high),
`clip_low` (A < 0, r < 1 - clip_low) and `dual_clip` (A < 0, -A r > -A c).
"""

from __future__ import annotations

import torch


def aggregate(values: torch.Tensor, mask: torch.Tensor, mode: str) -> torch.Tensor:
    """Scalar from (B, T) per-token values over the tokens where mask is 1."""
    mask = mask.to(values.dtype)
    if mode == "token-mean":
        return (values * mask).sum() / mask.sum().clamp(min=1)
    per_seq = (values * mask).sum(-1)  # (B,)
    if mode == "seq-mean-token-sum":
        return per_seq.mean()
    if mode == "seq-mean-token-mean":
        return (per_seq / mask.sum(-1).clamp(min=1)).mean()
    raise ValueError(f"loss aggregation {mode!r}: use token-mean, seq-mean-token-sum, ...")


def ppo_clip_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    clip_low: float = 0.2,
    clip_high: float = 0.28,
    dual_clip: float = 10.0,
    loss_agg: str = "token-mean",
) -> tuple[torch.Tensor, dict[str, float]]:
    """(loss, stats). logp/old_logp/mask: (B, T); advantages: (B,) per rollout or (B, T)."""
    A = advantages[:, None] if advantages.dim() == 1 else advantages  # (B, 1) or (B, T)
    ratio = torch.exp(logp - old_logp)  # (B, T)
    pg_plain = -A * ratio
    pg_clip = -A * ratio.clamp(1 - clip_low, 1 + clip_high)
    pg = torch.maximum(pg_plain, pg_clip)
    # Dual clip: a negative advantage with a huge ratio would otherwise give an unbounded loss.
    dual = (A < 0) & (pg > -A * dual_clip)
    pg = torch.where(dual, -A * dual_clip, pg)
    loss = aggregate(pg, mask, loss_agg)

    m = mask.bool()
    tokens = m.sum().clamp(min=1).item()
    high = (A > 0) & (ratio > 1 + clip_high) & m
    low = (A < 0) & (ratio < 1 - clip_low) & m
    stats = {
        "clip_high": high.sum().item() / tokens,
        "clip_low": low.sum().item() / tokens,
        "dual_clip": (dual & m).sum().item() / tokens,
        "ratio_mean": (ratio.detach() * m).sum().item() / tokens,
    }
    return loss, stats


def kl_penalty(
    logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor, loss_agg: str
) -> torch.Tensor:
    """k3 estimate of KL(policy || reference), aggregated like the loss; >= 0 per token."""
    q = (ref_logp - logp).clamp(-20, 20)  # bounded so exp() cannot overflow on outliers
    return aggregate(torch.exp(q) - q - 1, mask, loss_agg)
