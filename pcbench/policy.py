"""Policy: the trainable side -- HF model + tokenizer + AdamW + warm-up schedule + version.

`version` counts optimizer steps; engines stamp every rollout with the version they generated
with, so stale data is visible in the frames. CPU float32 by default; bf16 and gradient
checkpointing are options for a GPU.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import torch

from pcbench.config import UpdateConfig
from pcbench.logprobs import TokenBatch, make_batch, token_logprobs

__all__ = ["Policy", "TokenBatch", "make_batch"]


def _dropout_off(model: torch.nn.Module) -> None:
    """No randomness in training mode: every dropout module at p = 0, and every float
    attribute that models read as a dropout or layer-drop rate in training (attention_dropout,
    attn_pdrop, layerdrop, ...) at 0."""
    for module in model.modules():
        if isinstance(module, torch.nn.modules.dropout._DropoutNd):
            module.p = 0.0
        for name, value in list(vars(module).items()):
            if isinstance(value, float) and (
                "dropout" in name or "pdrop" in name or name == "layerdrop"
            ):
                setattr(module, name, 0.0)


NO_MASTERS = (
    "saved without fp32 master weights (a float32 policy); load it with dtype='float32', or "
    "start a fresh run from it as a model"
)


def collective(method):
    """On a sharded policy, a call made from the driver (not from inside the update, which runs
    on every rank anyway) runs on every rank: gathering a sharded weight is a collective, so all
    ranks must make the same calls in the same order. Elsewhere it is the plain method."""

    @functools.wraps(method)
    def run(self, *args, **kwargs):
        if self.peers is None or self.peers.in_step:
            return method(self, *args, **kwargs)
        return self.peers.everywhere(
            method.__name__, args, kwargs, lambda: method(self, *args, **kwargs)
        )

    return run


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

        self.path, self.device, self.dtype = str(model_path), device, dtype
        home = self._home(device)
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        self.model = AutoModelForCausalLM.from_pretrained(
            self.path, dtype=getattr(torch, dtype)
        ).to(home)
        self._loaded()
        # The frozen reference for a KL penalty (one more model in memory); give the original
        # model path, also when resuming from a checkpoint.
        self.reference = None
        if reference_path is not None:
            self.reference = AutoModelForCausalLM.from_pretrained(
                str(reference_path), dtype=getattr(torch, dtype)
            ).to(home)
            self.reference.eval().requires_grad_(False)
        if gradient_checkpointing:
            self.model.gradient_checkpointing_enable()
            # transformers checkpoints a layer only in training mode (measured on an H100: in
            # eval mode the 1-GPU preset's update peaked at 57 GiB, every layer's activations
            # kept). Training mode must not change the log-probs, so dropout stays off: the
            # engine samples without it, and the policy must score the same distribution.
            self.model.train()
            _dropout_off(self.model)
        self.update = update or UpdateConfig()
        # Mixed precision: the model (forward, backward, what engines load) is in `dtype`; the
        # optimizer updates fp32 master copies and the model is re-cast from them. AdamW on
        # bf16 weights rounds away updates below ~1e-3 relative (lr 1e-6 moved weights by
        # 2.4e-7 in 20 steps instead of ~2e-5). fp16 compute has no loss scaling here: use bf16.
        params = list(self.model.parameters())
        self.mixed = any(p.dtype != torch.float32 for p in params)  # separate master copies
        self.keeps_masters = dtype != "float32"  # its state carries fp32 masters
        self.masters = (
            [p.detach().float().clone().requires_grad_(True) for p in params]
            if self.mixed
            else params
        )
        self._make_optimizer(self.masters)
        self.version = 0
        self.state_loads = 0  # load_state_dict calls: a data-parallel group resends the state
        # Data parallelism ([cluster] train_workers > 1, pcbench.cluster.trainer): sums the
        # ranks' gradients before clipping; None in one process. `data_parallel` runs update().
        self.reduce_gradients = None
        self.data_parallel = None
        # This process's rank, and the group that runs driver-side collective calls on the other
        # ranks (`collective`; rank 0 of a sharded group only).
        self.rank, self.peers = 0, None

    # ---- seams a sharded policy (pcbench.cluster.sharded.ShardedPolicy) overrides ----------
    sharded = False

    def _home(self, device: str) -> str:
        """Where the weights are loaded."""
        return device

    def _loaded(self) -> None:
        """After the weights are loaded, before the masters and optimizer are made."""

    def _logprobs(self, model: torch.nn.Module, batch: TokenBatch) -> torch.Tensor:
        return token_logprobs(model, batch, self.device)

    def _global_norm(self, norm: torch.Tensor) -> torch.Tensor:
        """The gradient norm over the whole model (this process holds all of it)."""
        return norm

    def _weights_to_save(self) -> dict | None:
        """The weights `save` writes and engines load (None: the model's own)."""
        return None

    def _state_dict(self, state: dict, weights: bool) -> dict:
        if weights:
            state["model"] = self.model.state_dict()
        if self.keeps_masters:  # the model holds the rounded copy; resuming needs the masters
            state["masters"] = [m.detach() for m in self.masters]
        return state

    def _load(self, state: dict) -> None:
        if "model" in state:  # in fp32 the masters are the model's own parameters
            self.model.load_state_dict(state["model"])
        if "masters" in state:  # saved in mixed precision: the fp32 weights are these
            for m, saved in zip(self.masters, state["masters"], strict=True):
                m.copy_(saved)
            if self.mixed:
                self._cast_masters()
        elif self.keeps_masters:
            raise ValueError(NO_MASTERS)
        self.optimizer.load_state_dict(state["optimizer"])

    def _make_optimizer(self, params: list[torch.Tensor]) -> None:
        uc, warmup = self.update, max(1, self.update.warmup_steps)
        self.optimizer = torch.optim.AdamW(
            params, lr=uc.lr, betas=uc.betas, weight_decay=uc.weight_decay
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: min(1.0, (s + 1) / warmup)
        )

    @collective
    def logprobs(self, batch: TokenBatch) -> torch.Tensor:
        """(B, T) log p(x_t | x_<t) for completion tokens, 0 elsewhere (teacher-forced)."""
        return self._logprobs(self.model, batch)

    @collective
    def reference_logprobs(self, batch: TokenBatch) -> torch.Tensor:
        """(B, T) log-probs under a frozen copy of the weights this Policy started with."""
        if self.reference is None:
            raise RuntimeError("no reference model: create the Policy with reference_path=...")
        with torch.no_grad():
            return self._logprobs(self.reference, batch)

    def step(self, loss: torch.Tensor | None = None, end_of_batch: bool = True) -> float:
        """(Backward,) clip, one AdamW step; returns the pre-clip gradient norm.

        Pass the loss, or call backward yourself (gradient accumulation) and pass nothing. The
        learning-rate schedule moves once per training batch, after its last optimizer step
        (`end_of_batch`), as verl's does, however many mini-batches the batch has.
        """
        if loss is not None:
            loss.backward()
        if self.mixed:  # gradients to the fp32 masters, where clipping and AdamW happen
            for p, m in zip(self.model.parameters(), self.masters, strict=True):
                m.grad = None if p.grad is None else p.grad.float()
                p.grad = None
        if self.reduce_gradients is not None:  # every rank then holds the summed gradient
            self.reduce_gradients(self.masters)
        norm = self._global_norm(
            torch.nn.utils.clip_grad_norm_(self.masters, self.update.grad_clip)
        )
        self.optimizer.step()
        if end_of_batch:
            self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.mixed:
            self._cast_masters()
        self.version += 1
        return float(norm)

    def discard_gradients(self) -> None:
        """Drop gradients a failed or interrupted update left (the next one starts clean)."""
        self.optimizer.zero_grad(set_to_none=True)
        self.model.zero_grad(set_to_none=True)

    @torch.no_grad()
    def _cast_masters(self) -> None:
        """The compute copy (what the engine syncs from) := the masters, rounded to its dtype."""
        for p, m in zip(self.model.parameters(), self.masters, strict=True):
            p.copy_(m)

    @collective
    def named_weights(self):
        """(name, tensor) pairs in HF naming, what engines load."""
        weights = self._weights_to_save()
        return list((self.model.state_dict() if weights is None else weights).items())

    # ---- the state protocol (state_dict / load_state_dict, as torch) ----------------------
    @collective
    def state_dict(self, *, weights: bool = True) -> dict:
        """Weights (`model`, HF names), optimizer, scheduler, fp32 masters (mixed precision
        only) and version; `weights=False` leaves the weights out (a checkpoint keeps them as a
        loadable model directory instead, `save`)."""
        state = {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                 "version": self.version}  # fmt: skip
        return self._state_dict(state, weights)

    @collective
    @torch.no_grad()
    def load_state_dict(self, state: dict) -> None:
        """Restore a `state_dict` in place (without `model`: the weights stay as loaded)."""
        self._load(state)
        self.scheduler.load_state_dict(state["scheduler"])
        self.version = state["version"]
        self.state_loads += 1

    @collective
    def save(self, out_dir: str | Path) -> Path:
        """A loadable model directory (HF weights and tokenizer) plus the rest of the state
        (`optimizer.pt`, `policy.json`): what a checkpoint keeps of the policy. A sharded
        policy's is the same, gathered whole by rank 0 (the only rank that writes)."""
        out = Path(out_dir)
        weights = self._weights_to_save()
        if self.rank != 0:
            self.state_dict(weights=False)  # the other ranks' part of gathering it
            return out
        out.mkdir(parents=True, exist_ok=True)
        from transformers.utils import logging as hf_logging

        shown = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # a per-checkpoint "Writing model shards" bar is noise
        try:
            self.model.save_pretrained(out, state_dict=weights)
        finally:
            if shown:
                hf_logging.enable_progress_bar()
        self.tokenizer.save_pretrained(out)
        state = self.state_dict(weights=False)
        (out / "policy.json").write_text(json.dumps({"version": state.pop("version")}) + "\n")
        torch.save(state, out / "optimizer.pt")
        return out

    @classmethod
    def load(cls, path: str | Path, update: UpdateConfig | None = None, **kwargs) -> Policy:
        """A policy from a directory `save` wrote: the model, then its state_dict."""
        policy = cls(path, update, **kwargs)
        state = torch.load(Path(path) / "optimizer.pt", weights_only=True)
        state["version"] = json.loads((Path(path) / "policy.json").read_text())["version"]
        try:
            policy.load_state_dict(state)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None
        return policy

    def __repr__(self):
        n = sum(p.numel() for p in self.model.parameters())
        return (
            f"Policy({self.path!r}, {n:,} parameters, version={self.version}, lr={self.update.lr})"
        )
