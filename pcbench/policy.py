"""Policy: the trainable side -- HF model + tokenizer + AdamW + warm-up schedule + version.

`version` counts optimizer steps; engines stamp every rollout with the version they generated
with, so stale data is visible in the frames. CPU float32 by default; bf16 and gradient
checkpointing are options for a GPU.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from pcbench.config import UpdateConfig


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


def _token_logprobs(model, batch: TokenBatch, device: str) -> torch.Tensor:
    ids = batch.input_ids.to(device)
    logits = model(input_ids=ids, attention_mask=batch.attention_mask.to(device)).logits
    lp = torch.log_softmax(logits[:, :-1].float(), dim=-1)  # (B, T-1, V)
    lp = lp.gather(-1, ids[:, 1:, None])[..., 0]  # (B, T-1): token t+1 given its prefix
    lp = torch.nn.functional.pad(lp, (1, 0))  # (B, T): position 0 has no prediction
    return lp * batch.completion_mask.to(lp.device)


class Policy:
    """A causal LM being trained; `logprobs` and `step` are all the update step needs."""

    def __init__(
        self,
        model_path: str | Path,
        update: UpdateConfig | None = None,
        *,
        dtype: str = "float32",
        device: str = "cpu",
        gradient_checkpointing: bool = False,
        reference_path: str | Path | None = None,
    ):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.path, self.device = str(model_path), device
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        self.model = AutoModelForCausalLM.from_pretrained(
            self.path, dtype=getattr(torch, dtype)
        ).to(device)
        # The frozen reference for a KL penalty (one more model in memory); give the original
        # model path, also when resuming from a checkpoint.
        self.reference = None
        if reference_path is not None:
            self.reference = AutoModelForCausalLM.from_pretrained(
                str(reference_path), dtype=getattr(torch, dtype)
            ).to(device)
            self.reference.eval().requires_grad_(False)
        if gradient_checkpointing:
            self.model.gradient_checkpointing_enable()
        self.update = update = update or UpdateConfig()
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(),
            lr=update.lr,
            betas=update.betas,
            weight_decay=update.weight_decay,
        )
        warmup = max(1, update.warmup_steps)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: min(1.0, (s + 1) / warmup)
        )
        self.version = 0

    def logprobs(self, batch: TokenBatch) -> torch.Tensor:
        """(B, T) log p(x_t | x_<t) for completion tokens, 0 elsewhere (teacher-forced)."""
        return _token_logprobs(self.model, batch, self.device)

    def reference_logprobs(self, batch: TokenBatch) -> torch.Tensor:
        """(B, T) log-probs under a frozen copy of the weights this Policy started with."""
        if self.reference is None:
            raise RuntimeError("no reference model: create the Policy with reference_path=...")
        with torch.no_grad():
            return _token_logprobs(self.reference, batch, self.device)

    def step(self, loss: torch.Tensor | None = None) -> float:
        """(Backward,) clip, one AdamW step; returns the pre-clip gradient norm.

        Pass the loss, or call backward yourself (gradient accumulation) and pass nothing.
        """
        if loss is not None:
            loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.update.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.version += 1
        return float(norm)

    def named_weights(self):
        """(name, tensor) pairs in HF naming, what engines load."""
        return list(self.model.state_dict().items())

    def save(self, out_dir: str | Path) -> Path:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        from transformers.utils import logging as hf_logging

        shown = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # a per-checkpoint "Writing model shards" bar is noise
        try:
            self.model.save_pretrained(out)
        finally:
            if shown:
                hf_logging.enable_progress_bar()
        self.tokenizer.save_pretrained(out)
        torch.save(
            {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()},
            out / "optimizer.pt",
        )
        (out / "policy.json").write_text(json.dumps({"version": self.version}) + "\n")
        return out

    @classmethod
    def load(cls, path: str | Path, update: UpdateConfig | None = None, **kwargs) -> Policy:
        policy = cls(path, update, **kwargs)
        state = torch.load(Path(path) / "optimizer.pt", weights_only=True)
        policy.optimizer.load_state_dict(state["optimizer"])
        policy.scheduler.load_state_dict(state["scheduler"])
        policy.version = json.loads((Path(path) / "policy.json").read_text())["version"]
        return policy

    def __repr__(self):
        n = sum(p.numel() for p in self.model.parameters())
        return (
            f"Policy({self.path!r}, {n:,} parameters, version={self.version}, lr={self.update.lr})"
        )
