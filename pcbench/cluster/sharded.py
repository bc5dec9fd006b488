"""ShardedPolicy: a Policy whose weights and AdamW state are spread over a process group's
ranks with FSDP2 ([cluster] train_sharding = "fsdp"), and `policy_for`, the one place that
builds the Policy a run trains.

A sharded policy is loaded whole on the CPU and made fp32 -- its fp32 parameters are the AdamW
masters (FSDP casts for compute), made from the compute dtype's values as one process's masters
are -- and `shard` then spreads it over the ranks' devices. What differs from one process is
behind the seams `Policy` names: log-probs through the FSDP roots, the gradient norm
all-reduced, weights gathered whole (one tensor at a time, to rank 0's CPU memory) for engines
and checkpoints, a whole state dict laid out as this rank's shards when loaded. Everything else
(the update, the schedule, `collective` calls from the driver) is the Policy's own.
"""

from __future__ import annotations

import torch

from pcbench.cluster.fsdp import full, like_shard
from pcbench.policy import NO_MASTERS, Policy


class ShardedPolicy(Policy):
    sharded = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.root = self.reference_root = None  # the FSDP roots, after `shard`

    def _home(self, device: str) -> str:
        return "cpu"  # whole until `shard` spreads it

    def _loaded(self) -> None:
        self.model.float()

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
        state = {**state, "state": dict(state["state"])}
        for i, p in enumerate(self.masters):
            if i in state["state"]:
                state["state"][i] = {
                    k: v if k == "step" else like_shard(v, p) for k, v in state["state"][i].items()
                }
        self.optimizer.load_state_dict(state)

    def _logprobs(self, model: torch.nn.Module, batch) -> torch.Tensor:
        root = self.root if model is self.model else self.reference_root
        if root is None:  # not sharded yet
            return super()._logprobs(model, batch)
        return root(batch.input_ids, batch.attention_mask, batch.completion_mask)

    def _global_norm(self, norm: torch.Tensor) -> torch.Tensor:
        return norm if self.root is None else full(norm)  # the shards' norm, all-reduced

    def _weights_to_save(self) -> dict:
        return self._gathered(getattr(torch, self.dtype))

    def _gathered(self, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        """A sharded (or not yet sharded) policy's whole weights in HF naming, each distinct
        tensor gathered once (tied names share it), on CPU; empty on ranks other than 0."""
        out, seen = {}, {}
        for name, t in self.model.state_dict(keep_vars=True).items():
            if id(t) not in seen:
                value = full(t.detach())
                seen[id(t)] = value.to("cpu", dtype) if self.rank == 0 else None
            if self.rank == 0:
                out[name] = seen[id(t)]
        return out

    def _state_dict(self, state: dict, weights: bool) -> dict:
        """Shards gathered whole: the same format as one process's (rank 0 keeps it)."""
        if self.root is None:
            return super()._state_dict(state, weights)

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

    def _load(self, state: dict) -> None:
        if self.root is None:
            return super()._load(state)
        if "masters" in state:
            weights = state["masters"]
        elif self.keeps_masters:
            raise ValueError(NO_MASTERS)
        else:
            by_name = dict(self.model.named_parameters())
            weights = [state["model"][name] for name in by_name]
        for p, w in zip(self.masters, weights, strict=True):  # under load_state_dict's no_grad
            p.copy_(like_shard(w, p))
        self._load_optimizer(state["optimizer"])


def policy_for(cfg, checkpoint=None) -> Policy:
    """The policy a run of `cfg` trains: fresh from `cfg.model`, or loaded from a checkpoint's
    policy directory; a ShardedPolicy (not yet sharded) under train_sharding = "fsdp"."""
    ec = cfg.engine
    kind = ShardedPolicy if cfg.cluster.sharded else Policy
    kwargs = dict(
        dtype=ec.dtype, device=ec.device, gradient_checkpointing=ec.gradient_checkpointing,
        reference_path=cfg.model if cfg.update.kl_coef > 0 else None,
    )  # fmt: skip
    if checkpoint is None:
        return kind(cfg.model, cfg.update, **kwargs)
    return kind.load(checkpoint, cfg.update, **kwargs)
