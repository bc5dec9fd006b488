"""The memory plan of a run per GPU: policy training beside a colocated vLLM engine, or, on a
cluster ([cluster]), a training rank's GPU (its shards, with train_sharding = "fsdp") and a
generation replica's GPU apart.

Pure arithmetic over the model's config and the run config, so `pcbench check` can say whether
a preset fits before anything loads. The parameter count is exact (the model is built on the
meta device: no memory, no download); everything else is an estimate whose assumptions are
stated where they are made. Sizes are bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from pcbench.config import RunConfig
from pcbench.strategies import registry

GiB = 2**30
BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
ENGINE_OVERHEAD = 2 * GiB  # vLLM's own activations, sampler and CUDA-graph pool (assumed)


def parameter_count(model_config) -> int:
    """Exact parameter count of a transformers config (tied embeddings counted once), from a
    model built on the meta device."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(model_config)
    return sum(p.numel() for p in model.parameters())  # parameters() yields tied ones once


@dataclass(frozen=True)
class MemoryPlan:
    params: int
    weights: int  # compute copy (engine.dtype)
    masters: int  # fp32 master weights (0 when the compute copy is fp32)
    grads: int  # fp32 gradients at the optimizer step (bf16 ones during backward are smaller)
    optimizer: int  # AdamW exp_avg + exp_avg_sq in fp32
    temporaries: int  # AdamW's (foreach) working copies during the step: 4 bytes/param, measured
    reference: int  # frozen reference policy for the KL term (0 without it)
    activations: int  # one micro-batch at max_model_len, backward included (estimate)
    logits: int  # log-prob working set: chunked (lean architectures) or full (B, T, V) fp32
    engine: int  # vLLM's share of the GPU (0 off GPU or when unset)
    kv_per_token: int  # vLLM KV cache bytes per token
    kv_tokens: int  # tokens of KV cache the engine's share leaves (0 off GPU)
    gpu: int  # GPU memory the plan is checked against
    shards: int = 1  # ranks the fp32 state is sharded over (train_sharding = "fsdp")
    colocated: bool = True  # the engine shares the policy's GPU (else: replicas on their own)

    @property
    def backward(self) -> int:
        """Peak of forward + backward: compute-dtype gradients, activations and log-prob
        working set beside the weights and the (steady-state) optimizer state."""
        grads = self.weights  # gradients in the compute dtype, one per weight
        return (
            self.weights + self.masters + self.optimizer + self.reference + grads
            + self.activations + self.logits
        )  # fmt: skip

    @property
    def step(self) -> int:
        """Peak of the optimizer step: fp32 gradients, AdamW state and its temporaries."""
        return (
            self.weights + self.masters + self.grads + self.optimizer + self.reference
            + self.temporaries
        )  # fmt: skip

    @property
    def policy(self) -> int:
        """The policy's peak: the larger of its two phases (activations are freed before the
        step). bench/gpu_plan.py on an H100, 1-GPU preset shapes: 31.7 GiB measured, 31.6
        planned (the step phase)."""
        return max(self.backward, self.step)

    @property
    def total(self) -> int:
        """The policy's GPU: with the engine's share when they share it."""
        return self.policy + (self.engine if self.colocated else 0)

    def problems(self, max_model_len: int) -> list[str]:
        """What does not fit, in words ([] when it all fits)."""
        if not self.gpu:
            return []
        out = []
        if self.total > self.gpu:
            engine = f" + engine share {self.engine / GiB:.1f} GiB" if self.colocated else ""
            out.append(
                f"policy {self.policy / GiB:.1f} GiB{engine} > {self.gpu / GiB:.0f} GiB of GPU "
                "memory"
            )
        if self.engine and self.kv_tokens < max_model_len:
            out.append(
                f"the engine's share leaves {self.kv_tokens:,} KV-cache tokens, fewer than one "
                f"sequence of max_model_len = {max_model_len:,}: raise gpu_memory_utilization"
            )
        return out

    def lines(self) -> list[str]:
        g = lambda b: f"{b / GiB:.1f} GiB" if b >= GiB / 10 else f"{b / 2**20:.1f} MiB"  # noqa: E731
        sharded = f", per rank of {self.shards} (fp32 state sharded)" if self.shards > 1 else ""
        rows = [
            f"parameters {self.params / 1e9:.3f} B",
            f"policy {g(self.policy)}{sharded}, the larger of backward {g(self.backward)} and optimizer "
            f"step {g(self.step)}: weights {g(self.weights)}, fp32 masters {g(self.masters)}, "
            f"fp32 grads {g(self.grads)}, AdamW {g(self.optimizer)} (+{g(self.temporaries)} "
            f"during the step), reference {g(self.reference)}, activations "
            f"{g(self.activations)}, log-probs {g(self.logits)}",
        ]
        if self.engine:
            where = "" if self.colocated else " on each replica's own GPU(s)"
            rows.append(
                f"engine {g(self.engine)}{where}: KV cache {self.kv_tokens:,} tokens "
                f"({self.kv_per_token / 1024:.0f} KiB each)"
            )
        if self.gpu:
            what = "total" if self.colocated else "a training rank's GPU"
            rows.append(f"{what} {g(self.total)} of {g(self.gpu)}")
        return rows


def memory_plan(cfg: RunConfig, model_config, params: int, gpu_gib: float = 80.0) -> MemoryPlan:
    """The plan of `cfg` for a model of this config and parameter count on a `gpu_gib` GPU."""
    from pcbench.logprobs import LEAN_LOGPROB_ARCHITECTURES, LOGIT_CHUNK_BYTES

    ec, b = cfg.engine, BYTES[cfg.engine.dtype]
    hidden, layers = model_config.hidden_size, model_config.num_hidden_layers
    inter, vocab = model_config.intermediate_size, model_config.vocab_size
    heads = model_config.num_attention_heads
    kv_heads = getattr(model_config, "num_key_value_heads", None) or heads
    head_dim = getattr(model_config, "head_dim", None) or hidden // heads
    tokens = cfg.update.micro_batch_size * ec.max_model_len  # one micro-batch, worst case
    # One layer's working set in backward with fused (flash / SDPA) attention, no T^2 term:
    # q, k, v, attention out, two residual adds and norms (~8H) and the MLP's gate, up and
    # activation (~4I) per token. Checkpointing keeps each layer's input and recomputes one.
    layer = tokens * (8 * hidden + 4 * inter) * b
    activations = (
        layers * tokens * hidden * b + layer if ec.gradient_checkpointing else layers * layer
    )
    lean = getattr(model_config, "model_type", None) in LEAN_LOGPROB_ARCHITECTURES
    full_logits = tokens * vocab * 4
    # logits, their log-softmax and its gradient: a chunk each, or the whole (B, T, V) each
    logits = 3 * min(full_logits, LOGIT_CHUNK_BYTES) if lean else 3 * full_logits
    on_gpu, cc = ec.device == "cuda", cfg.cluster
    engine = int((ec.gpu_memory_utilization or 0.9) * gpu_gib * GiB) if on_gpu else 0
    kv_per_token = 2 * layers * kv_heads * head_dim * b
    # A replica's weights are split over its tensor-parallel GPUs (the KV cache heads too)
    tp = int(ec.vllm_args.get("tensor_parallel_size", 1))
    engine_weights = params * b // tp
    kv_tokens = (
        max(0, (engine - engine_weights - ENGINE_OVERHEAD) * tp // kv_per_token) if on_gpu else 0
    )
    W = cc.train_workers if cc.sharded else 1
    state = _sharded_state(params, W, b, model_config) if cc.sharded else _whole_state(params, b)
    return MemoryPlan(
        params=params, **state,
        reference=params * b // W if cfg.update.kl_coef > 0 else 0,
        activations=activations, logits=logits, engine=engine if ec.kind == "vllm" else 0,
        kv_per_token=kv_per_token, kv_tokens=kv_tokens if ec.kind == "vllm" else 0,
        gpu=int(gpu_gib * GiB) if on_gpu else 0, shards=W, colocated=not cc.remote_engines,
    )  # fmt: skip


def _whole_state(params: int, b: int) -> dict[str, int]:
    """One process's policy: compute copy, fp32 masters (mixed precision), fp32 gradients at
    the step, AdamW's two moments and its foreach temporaries."""
    return dict(weights=params * b, masters=0 if b == 4 else 4 * params, grads=4 * params,
                optimizer=8 * params, temporaries=4 * params)  # fmt: skip


def _sharded_state(params: int, W: int, b: int, model_config) -> dict[str, int]:
    """One FSDP2 rank's policy (pcbench.cluster.fsdp): fp32 shards of the weights (the
    masters), gradients, AdamW moments and temporaries, 1/W each; the compute-dtype copy is
    what is gathered at a time: the root unit (embeddings, head, final norm), which stays
    gathered through forward and backward, and two decoder layers (one computing, one
    prefetched)."""
    vocab, hidden = model_config.vocab_size, model_config.hidden_size
    tied = getattr(model_config, "tie_word_embeddings", False)
    root = vocab * hidden * (1 if tied else 2)
    layer = (params - root) // model_config.num_hidden_layers
    return dict(weights=(root + 2 * layer) * b, masters=4 * params // W, grads=4 * params // W,
                optimizer=8 * params // W, temporaries=4 * params // W)  # fmt: skip


def rollouts_per_step(cfg: RunConfig, rounds: float = 1.0) -> float:
    """Generated rollouts in one step, at `rounds` rounds per step (Pilot-Commit and DAPO draw
    more rounds when their batch does not fill): the strategy's `rollouts_per_step`."""
    return registry.get(cfg.strategy).rollouts_per_step(cfg, rounds)


def step_seconds(
    cfg: RunConfig,
    params: int,
    *,
    response_share: float = 0.5,
    rounds: float = 1.0,
    generate_tokens_per_s: float = 20_000.0,
    train_flops: float = 0.3 * 989e12,
) -> tuple[float, float]:
    """(generation, training) seconds of one step, a rough estimate for planning.

    Assumed: responses average `response_share` of max_tokens; the colocated engine generates
    `generate_tokens_per_s` (a 1.5B model on one H100 at high concurrency is of this order);
    training runs at 30% of an H100's dense bf16 peak, 8 x params FLOPs per trained token
    (forward, backward, recomputation under checkpointing) plus 2 x params for the old-policy
    log-probs. The training part matched an H100 (bench/gpu_plan.py: 0.81 s per 16,384 tokens
    of a 1.5B model, 31% of peak); the generation rate is not measured (no vLLM on the lent
    GPUs).

    On a cluster ([cluster]) the generation rate is per replica, scaled by 1.5 B / params for
    larger models (decoding at high concurrency is bound by reading the weights) and multiplied
    by the replicas; training divides over the ranks at the same per-GPU rate (FSDP's gathers
    overlapped with compute, an optimistic assumption)."""
    cc = cfg.cluster
    replicas = cc.engines if cc.remote_engines else 1
    rate = generate_tokens_per_s * replicas * (min(1.0, 1.5e9 / params) if cc.uses_ray else 1.0)
    tokens = cfg.sampling.max_tokens * response_share
    generated = rollouts_per_step(cfg, rounds) * tokens
    trained = cfg.batch_prompts * cfg.group_size * tokens
    return generated / rate, 10 * params * trained / (train_flops * cc.train_workers)


def return_freed_memory() -> None:
    """Give the C heap's freed pages back to the OS (glibc `malloc_trim`; elsewhere a no-op).

    A training step frees hundreds of MB of numpy, polars and torch CPU buffers, and glibc keeps
    the freed pages: over 200 steps of the embedded default the process grew 9% (2,510 -> 2,816
    MiB) with no Python object accumulating, and one `malloc_trim(0)` gave ~600 MiB back
    (bench/leak.py, docs/RESULTS.md §4). The loop calls this after every step."""
    import ctypes
    import ctypes.util

    global _malloc_trim
    if _malloc_trim is None:
        name = ctypes.util.find_library("c")
        libc = ctypes.CDLL(name) if name else None
        _malloc_trim = getattr(libc, "malloc_trim", False) if libc else False
    if _malloc_trim:
        _malloc_trim(0)


_malloc_trim = None  # resolved on first use: libc's malloc_trim, or False where there is none
