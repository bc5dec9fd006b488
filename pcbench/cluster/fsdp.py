"""FSDP2 mechanics for a sharded policy ([cluster] train_sharding = "fsdp"): the torch side only.

`fully_shard` per decoder layer, then once more at a root module whose forward computes the
memory-lean log-probs (`logprobs.token_logprobs`). The root is needed because those log-probs
call the decoder and the head separately: FSDP all-gathers a unit's parameters in its forward
hook, so the embeddings, final norm and head (tied or not) must belong to a module whose forward
encloses both calls. The parameters are fp32 shards (they are the AdamW masters); each unit is
gathered in the compute dtype for its forward and backward (`MixedPrecisionPolicy`), and
gradients are reduce-scattered in fp32 as sums (divide factor 1): the loss weights already make
the ranks' shares add up to the single-process loss (`steps.update.update_shard`).

Every function here that touches a sharded tensor's full value is a collective: all ranks must
call it, in the same order (`Policy` dispatches driver-side calls to every rank for this).
"""

from __future__ import annotations

import torch


class LogProbs(torch.nn.Module):
    """Root of a sharded policy: forward = `token_logprobs` of the wrapped model."""

    def __init__(self, model: torch.nn.Module, device: str):
        super().__init__()
        self.model, self.device = model, device

    def forward(self, input_ids, attention_mask, completion_mask) -> torch.Tensor:
        from pcbench.logprobs import TokenBatch, token_logprobs

        batch = TokenBatch(input_ids, attention_mask, completion_mask)
        return token_logprobs(self.model, batch, self.device)


def decoder_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The repeated blocks of a causal LM (each its own FSDP unit)."""
    layers = getattr(model.get_decoder(), "layers", None)
    if layers is None:
        raise ValueError(
            f"{type(model).__name__}: no decoder .layers to shard; train_sharding = 'fsdp' "
            "supports llama-style decoders (llama, qwen2, qwen3, mistral)"
        )
    return list(layers)


def shard(model: torch.nn.Module, device: str, compute_dtype: torch.dtype) -> LogProbs:
    """Shard an fp32 `model` over the default process group's ranks, in place; returns its
    root. Mixed precision when `compute_dtype` is not fp32 (gathered in it, reduced in fp32)."""
    from torch.distributed import get_world_size
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    mesh = init_device_mesh("cuda" if device == "cuda" else "cpu", (get_world_size(),))
    mixed = compute_dtype != torch.float32
    mp = MixedPrecisionPolicy(
        param_dtype=compute_dtype if mixed else None, reduce_dtype=torch.float32
    )
    root = LogProbs(model, device)
    units = [*decoder_layers(model), root]
    for unit in units:
        fully_shard(unit, mesh=mesh, mp_policy=mp)
    for unit in units:  # sums, not means: the loss is already weighted per rank (SUM with a
        unit.set_gradient_divide_factor(1.0)  # post-division by 1, which gloo supports too;
        unit.set_force_sum_reduction_for_comms(True)  # a pre-scaled sum (PREMUL_SUM) it lacks
    return root


def full(t: torch.Tensor) -> torch.Tensor:
    """The whole value of a (possibly sharded) tensor; a collective for a DTensor."""
    from torch.distributed.tensor import DTensor

    return t.full_tensor() if isinstance(t, DTensor) else t


def like_shard(value: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """`value` (the whole tensor, the same on every rank) laid out as the shard `like`."""
    from torch.distributed.tensor import DTensor, distribute_tensor

    if not isinstance(like, DTensor):
        return value.to(like.device, like.dtype)
    whole = value.to(like.device, like.dtype)
    return distribute_tensor(whole, like.device_mesh, like.placements, src_data_rank=None)
