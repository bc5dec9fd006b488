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


_NO_MASTERS = (
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
        sharded: bool = False,
    ):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.path, self.device, self.dtype = str(model_path), device, dtype
        # sharded ([cluster] train_sharding = "fsdp"): loaded whole on the CPU and made fp32,
        # the AdamW masters (from the compute dtype's values, as one process's masters are);
        # `shard` then spreads them over the ranks' devices.
        self.sharded = sharded
        home = "cpu" if sharded else device
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        self.model = AutoModelForCausalLM.from_pretrained(
            self.path, dtype=getattr(torch, dtype)
        ).to(home)
        if sharded:
            self.model.float()
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
        # A sharded policy's fp32 parameters are the masters (FSDP casts for compute).
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
        # Sharded only: the FSDP roots (after `shard`), this process's rank, and the group that
        # runs driver-side collective calls on the other ranks (`collective`; rank 0 only).
        self.root = self.reference_root = None
        self.rank, self.peers = 0, None

    def _make_optimizer(self, params: list[torch.Tensor]) -> None:
        uc, warmup = self.update, max(1, self.update.warmup_steps)
        self.optimizer = torch.optim.AdamW(
            params, lr=uc.lr, betas=uc.betas, weight_decay=uc.weight_decay
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: min(1.0, (s + 1) / warmup)
        )

    def shard(self) -> None:
        """Spread this whole policy over the default process group's ranks (FSDP2); every rank
        calls it, each with the same state. Weights and AdamW state become shards; the
        optimizer and schedule continue where they were."""
        from torch import distributed as dist

        from pcbench.cluster import fsdp

        optimizer, scheduler = self.optimizer.state_dict(), self.scheduler.state_dict()
        compute = getattr(torch, self.dtype)
        self.root = fsdp.shard(self.model, self.device, compute)
        if self.reference is not None:
            self.reference_root = fsdp.shard(self.reference, self.device, compute)
        self.rank = dist.get_rank()
        self.masters = list(self.model.parameters())
        self._make_optimizer(self.masters)
        self._load_optimizer(optimizer)
        self.scheduler.load_state_dict(scheduler)

    def _load_optimizer(self, state: dict) -> None:
        """AdamW state saved whole (any policy's), laid out as this one's parameters."""
        from pcbench.cluster.fsdp import like_shard

        state = {**state, "state": dict(state["state"])}
        for i, p in enumerate(self.masters):
            if i in state["state"]:
                state["state"][i] = {
                    k: v if k == "step" else like_shard(v, p) for k, v in state["state"][i].items()
                }
        self.optimizer.load_state_dict(state)

    @collective
    def logprobs(self, batch: TokenBatch) -> torch.Tensor:
        """(B, T) log p(x_t | x_<t) for completion tokens, 0 elsewhere (teacher-forced)."""
        if self.root is not None:
            return self.root(batch.input_ids, batch.attention_mask, batch.completion_mask)
        return token_logprobs(self.model, batch, self.device)

    @collective
    def reference_logprobs(self, batch: TokenBatch) -> torch.Tensor:
        """(B, T) log-probs under a frozen copy of the weights this Policy started with."""
        if self.reference is None:
            raise RuntimeError("no reference model: create the Policy with reference_path=...")
        with torch.no_grad():
            if self.reference_root is not None:
                return self.reference_root(
                    batch.input_ids, batch.attention_mask, batch.completion_mask
                )
            return token_logprobs(self.reference, batch, self.device)

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
        norm = torch.nn.utils.clip_grad_norm_(self.masters, self.update.grad_clip)
        if self.root is not None:  # the shards' norm, all-reduced
            from pcbench.cluster.fsdp import full

            norm = full(norm)
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
        """(name, tensor) pairs in HF naming, what engines load (sharded: gathered one tensor at
        a time into CPU memory, in the compute dtype; the other ranks keep nothing)."""
        if not self.sharded:
            return list(self.model.state_dict().items())
        return list(self._gathered(getattr(torch, self.dtype)).items())

    def _gathered(self, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        """A sharded (or not yet sharded) policy's whole weights in HF naming, each distinct
        tensor gathered once (tied names share it), on CPU; empty on ranks other than 0."""
        from pcbench.cluster.fsdp import full

        out, seen = {}, {}
        for name, t in self.model.state_dict(keep_vars=True).items():
            if id(t) not in seen:
                value = full(t.detach())
                seen[id(t)] = value.to("cpu", dtype) if self.rank == 0 else None
            if self.rank == 0:
                out[name] = seen[id(t)]
        return out

    # ---- the state protocol (state_dict / load_state_dict, as torch) ----------------------
    @collective
    def state_dict(self, *, weights: bool = True) -> dict:
        """Weights (`model`, HF names), optimizer, scheduler, fp32 masters (mixed precision
        only) and version; `weights=False` leaves the weights out (a checkpoint keeps them as a
        loadable model directory instead, `save`)."""
        state = {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                 "version": self.version}  # fmt: skip
        if self.root is not None:  # shards gathered whole: the same format as one process's
            return self._gathered_state(state, weights)
        if weights:
            state["model"] = self.model.state_dict()
        if self.keeps_masters:  # the model holds the rounded copy; resuming needs the masters
            state["masters"] = [m.detach() for m in self.masters]
        return state

    def _gathered_state(self, state: dict, weights: bool) -> dict:
        from pcbench.cluster.fsdp import full

        def keep(t):  # every rank gathers; rank 0 keeps
            whole = full(t)
            return whole.cpu() if self.rank == 0 else None

        optimizer = state["optimizer"]
        optimizer["state"] = {
            i: {k: v if k == "step" else keep(v) for k, v in entry.items()}
            for i, entry in optimizer["state"].items()
        }
        if weights:
            state["model"] = self._gathered(getattr(torch, self.dtype))
        if self.keeps_masters:
            state["masters"] = [keep(m.detach()) for m in self.masters]
        return state if self.rank == 0 else {}

    @collective
    @torch.no_grad()
    def load_state_dict(self, state: dict) -> None:
        """Restore a `state_dict` in place (without `model`: the weights stay as loaded)."""
        if self.root is not None:
            self._load_sharded(state)
        else:
            self._load_whole(state)
        self.scheduler.load_state_dict(state["scheduler"])
        self.version = state["version"]
        self.state_loads += 1

    def _load_sharded(self, state: dict) -> None:
        from pcbench.cluster.fsdp import like_shard

        if "masters" in state:
            weights = state["masters"]
        elif self.keeps_masters:
            raise ValueError(_NO_MASTERS)
        else:
            by_name = dict(self.model.named_parameters())
            weights = [state["model"][name] for name in by_name]
        for p, w in zip(self.masters, weights, strict=True):
            p.copy_(like_shard(w, p))
        self._load_optimizer(state["optimizer"])

    def _load_whole(self, state: dict) -> None:
        if "model" in state:  # in fp32 the masters are the model's own parameters
            self.model.load_state_dict(state["model"])
        if "masters" in state:  # saved in mixed precision: the fp32 weights are these
            for m, saved in zip(self.masters, state["masters"], strict=True):
                m.copy_(saved)
            if self.mixed:
                self._cast_masters()
        elif self.keeps_masters:
            raise ValueError(_NO_MASTERS)
        self.optimizer.load_state_dict(state["optimizer"])

    @collective
    def save(self, out_dir: str | Path) -> Path:
        """A loadable model directory (HF weights and tokenizer) plus the rest of the state
        (`optimizer.pt`, `policy.json`): what a checkpoint keeps of the policy. A sharded
        policy's is the same, gathered whole by rank 0 (the only rank that writes)."""
        out = Path(out_dir)
        weights = self._gathered(getattr(torch, self.dtype)) if self.sharded else None
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
