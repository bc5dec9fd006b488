"""update: group advantages over each prompt's training rollouts, clipped PG loss, AdamW step.

The only step that changes weights; `engine.load_weights(policy)` must follow it. The rollouts
of one prompt_id form one group (for Pilot-Commit: reused pilot + commit rollouts, whatever
steps the pilot came from). As in the official code the stale pilot rollouts get no importance
correction: `old_logp` is the policy's own log-prob before this update (verl recomputes it),
so with one mini-batch the ratio is exactly 1 and only later mini-batches can clip.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import polars as pl
import torch

from pcbench.algos import ADVANTAGE_FNS, kl_penalty, ppo_clip_loss
from pcbench.config import RunConfig, UpdateConfig
from pcbench.policy import TokenBatch, make_batch


def advantages(rollouts: pl.DataFrame, method: str = "grpo") -> np.ndarray:
    """(N,) advantage of each rollout within its prompt's group."""
    rewards = rollouts["reward"].fill_null(0.0).to_numpy().astype(np.float64)
    return ADVANTAGE_FNS[method](rewards, _group_index(rollouts))


def _group_index(rollouts: pl.DataFrame) -> np.ndarray:
    codes = {pid: i for i, pid in enumerate(rollouts["prompt_id"].unique(maintain_order=True))}
    return np.array([codes[p] for p in rollouts["prompt_id"]], dtype=np.int64)


def _prompt_tokens(policy, rollouts: pl.DataFrame, prompts: pl.DataFrame) -> list[list[int]]:
    text = dict(zip(prompts["prompt_id"], prompts["prompt"], strict=True))
    if missing := set(rollouts["prompt_id"]) - text.keys():
        raise KeyError(f"rollouts of prompts missing from PROMPTS: {sorted(missing)[:5]}")
    ids = {pid: policy.tokenizer(text[pid]).input_ids for pid in rollouts["prompt_id"].unique()}
    return [ids[p] for p in rollouts["prompt_id"]]


def _rows(batch: TokenBatch, idx) -> TokenBatch:
    return TokenBatch(batch.input_ids[idx], batch.attention_mask[idx], batch.completion_mask[idx])


def mini_batch_parts(rollouts: pl.DataFrame, uc: UpdateConfig) -> list[tuple[np.ndarray, float]]:
    """(row indices, loss weight) of each optimizer step's mini-batch, in batch order.

    `mini_batches` equal parts, each of weight 1; or, with `mini_batch_prompts`, verl's split
    (dp_actor `data.split(ppo_mini_batch_size)`): parts of `mini_batch_rows` rows, the last one
    shorter and weighted by its share of a full part (verl scales each micro-batch's loss by
    its rows / the mini-batch size)."""
    rows = rollouts.height
    if uc.mini_batch_prompts is None:
        return [(p, 1.0) for p in np.array_split(np.arange(rows), uc.mini_batches) if len(p)]
    size = mini_batch_rows(rollouts, uc)
    return [
        (np.arange(lo, min(lo + size, rows)), min(size, rows - lo) / size)
        for lo in range(0, rows, size)
    ]


def mini_batch_rows(rollouts: pl.DataFrame, uc: UpdateConfig) -> int:
    """Rows of one of verl's mini-batches: `mini_batch_prompts` x the rollouts per prompt
    (its rollout.n: the group size; with `official_pc_normalisation`, the commit rollouts per
    prompt, as the official Pilot-Commit code sets rollout.n = n_commit, fsdp_workers.py)."""
    groups = rollouts["prompt_id"].n_unique()
    per_prompt = rollouts.height / groups
    if uc.official_pc_normalisation:
        commits = int((rollouts["phase"] == "commit").sum())
        if not commits:
            raise ValueError("official_pc_normalisation: the batch has no commit rollouts")
        per_prompt = commits / groups
    return max(1, round(uc.mini_batch_prompts * per_prompt))


def _micro_weight(mask: torch.Tensor, total_tokens: float, total_seqs: int, mode: str) -> float:
    """Share of the mini-batch loss a micro-batch carries, so accumulation is exact."""
    if mode == "token-mean":
        return mask.sum().item() / max(total_tokens, 1.0)
    return mask.shape[0] / max(total_seqs, 1)


def _accumulate(
    policy, batch, adv, old, uc: UpdateConfig, totals: Counter, total_tokens: float, B: int,
    passes: int = 0, filler: TokenBatch | None = None, scale: float = 1.0,
) -> float:  # fmt: skip
    """Backward of this rank's rows of one mini-batch over micro-batches; returns their share
    of the loss. `total_tokens` and `B` are the whole mini-batch's (all ranks), so the shares
    of all ranks add up to the single-process loss and gradient. A sharded policy's ranks all
    make `passes` forwards and backwards (FSDP's gathers are collectives): the rest are
    zero-weight passes over `filler`."""
    loss_value = 0.0
    for _ in range(passes - math.ceil(len(adv) / uc.micro_batch_size)):
        _idle_pass(policy, filler, uc)
    for lo in range(0, len(adv), uc.micro_batch_size):
        sl = slice(lo, lo + uc.micro_batch_size)
        micro = _rows(batch, sl)
        logp = policy.logprobs(micro)  # (b, T)
        mask = micro.completion_mask.to(logp)
        old_logp = logp.detach() if old is None else old[sl].to(logp)
        loss, clip = ppo_clip_loss(
            logp, old_logp, adv[sl].to(logp), mask,
            clip_low=uc.clip_low, clip_high=uc.clip_high, dual_clip=uc.dual_clip,
            loss_agg=uc.loss_agg,
        )  # fmt: skip
        w = scale * _micro_weight(mask, total_tokens, B, uc.loss_agg)
        if uc.kl_coef > 0:
            kl = kl_penalty(logp, policy.reference_logprobs(micro), mask, uc.loss_agg)
            loss = loss + uc.kl_coef * kl
            totals["kl"] += kl.item() * w
        (loss * w).backward()
        loss_value += loss.item() * w
        n_tok = mask.sum().item()  # clip stats are token-weighted over the whole batch
        totals["tokens"] += n_tok
        for k, v in clip.items():
            totals[k] += v * n_tok
    return loss_value


def _idle_pass(policy, filler: TokenBatch, uc: UpdateConfig) -> None:
    """A forward and backward that adds nothing to any gradient (a sharded rank's turn in the
    collectives when it has no rows left)."""
    loss = policy.logprobs(filler).sum() * 0.0
    if uc.kl_coef > 0:
        loss = loss + policy.reference_logprobs(filler).sum() * 0.0
    loss.backward()


def update(
    policy, rollouts: pl.DataFrame, prompts: pl.DataFrame, cfg: RunConfig | UpdateConfig
) -> dict[str, float]:
    """ROLLOUTS (with rewards) -> metrics; one optimizer step per mini-batch.

    Deviation from DESIGN's `update(policy, rollouts, cfg)`: rollouts name their prompt by id
    only, so the PROMPTS frame is passed to rebuild the exact prompt tokens.
    """
    uc = cfg.update if isinstance(cfg, RunConfig) else cfg
    if rollouts.height == 0:
        raise ValueError("update got no rollouts: nothing to train on")
    if getattr(policy, "data_parallel", None) is not None:  # [cluster] train_workers > 1
        return policy.data_parallel.update(rollouts, prompts, uc)
    return _metrics(rollouts, *update_shard(policy, rollouts, prompts, uc), policy)


def update_shard(
    policy, rollouts: pl.DataFrame, prompts: pl.DataFrame, uc: UpdateConfig,
    rank: int = 0, world: int = 1,
) -> tuple[np.ndarray, Counter, list[float], list[float]]:  # fmt: skip
    """Rank `rank` of `world`'s part of the update: rows rank, rank + world, ... of every
    mini-batch, weighted by the whole mini-batch's totals, then one optimizer step per
    mini-batch (the policy's `reduce_gradients` sums the ranks' gradients first). One rank of
    one is the whole update. Returns (advantages, totals, loss shares, gradient norms)."""
    adv_np = advantages(rollouts, uc.advantage)  # over whole groups, whatever rank has them
    batch = make_batch(
        _prompt_tokens(policy, rollouts, prompts),
        rollouts["token_ids"].to_list(),
        policy.tokenizer.pad_token_id or 0,
    )
    adv = torch.tensor(adv_np, dtype=torch.float32)
    parts, scales = zip(*mini_batch_parts(rollouts, uc), strict=True)
    mine = [torch.as_tensor(part[rank::world]) for part in parts]
    # Sharded: every rank makes rank 0's number of passes (it has the most rows of each part)
    even = getattr(policy, "root", None) is not None
    mbs, filler = uc.micro_batch_size, _rows(batch, torch.tensor([0]))
    most = [math.ceil(len(part[0::world]) / mbs) if even else 0 for part in parts]
    old = None  # one mini-batch: the ratio is 1 by construction, no extra forward needed
    if len(parts) > 1:  # later mini-batches see moved weights: keep pre-update log-probs
        rows = torch.cat(mine)
        old = torch.zeros(batch.input_ids.shape)
        with torch.no_grad():
            if even:  # rank 0's passes, the rest over the filler
                most_rows = sum(len(part[0::world]) for part in parts)
                for _ in range(math.ceil(most_rows / mbs) - math.ceil(len(rows) / mbs)):
                    policy.logprobs(filler)
            for lo in range(0, len(rows), mbs):
                sl = rows[lo : lo + mbs]
                old[sl] = policy.logprobs(_rows(batch, sl)).float().cpu()
    totals, losses, grad_norms = Counter(), [], []
    for i, (part, idx, passes, scale) in enumerate(zip(parts, mine, most, scales, strict=True)):
        whole_tokens = batch.completion_mask[torch.as_tensor(part)].sum().item()
        old_part = None if old is None else old[idx]
        share = _accumulate(
            policy, _rows(batch, idx), adv[idx], old_part, uc, totals, whole_tokens, len(part),
            passes, filler, scale,
        )  # fmt: skip
        losses.append(share)
        grad_norms.append(policy.step(end_of_batch=i == len(parts) - 1))
    return adv_np, totals, losses, grad_norms


def _metrics(rollouts, adv_np, totals, losses, grad_norms, policy) -> dict[str, float]:
    """The update's metrics from the (all ranks') totals, loss per mini-batch, grad norms."""
    tokens = max(totals["tokens"], 1.0)
    out = {
        "update/loss": float(np.mean(losses)),
        "update/grad_norm": float(np.mean(grad_norms)),
        "update/tokens": float(totals["tokens"]),
        "update/rollouts": float(rollouts.height),
        "update/groups": float(rollouts["prompt_id"].n_unique()),
        "update/lr": float(policy.optimizer.param_groups[0]["lr"]),
        "update/optimizer_steps": float(len(losses)),
        "update/kl": totals["kl"] / len(losses),
        "update/zero_advantage_frac": float(np.mean(np.abs(adv_np) < 1e-8)),
    }
    for k in ("clip_high", "clip_low", "dual_clip", "ratio_mean"):
        out[f"update/{k}"] = totals[k] / tokens
    phase = rollouts["phase"].to_numpy()
    for p in np.unique(phase):
        out[f"update/advantage_mean/{p}"] = float(adv_np[phase == p].mean())
    return out
