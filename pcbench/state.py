"""State: everything a training run mutates, and `setup_state` that builds it from a RunConfig.

Files are checked before any model loads, so a wrong path costs a second, not a minute. One
vLLM engine per process: `setup_state` reuses the engine a previous call made (a notebook kernel
re-running its setup cell gets the same engine, with the new policy's weights synced into it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from pcbench.buffer import PilotBuffer
from pcbench.config import ClusterConfig, ConfigError, EngineConfig, RunConfig, sync_tolerance
from pcbench.engines.protocol import Engine
from pcbench.ledger import Ledger
from pcbench.prior import PassRatePrior
from pcbench.prompt_state import PromptState
from pcbench.schema import PROMPTS
from pcbench.strategies import registry
from pcbench.tasks import PromptStream, load_benchmark, template_for
from pcbench.tasks.files import expand, is_remote

if TYPE_CHECKING:  # heavy imports (torch, workers) only where they are used
    from pcbench.atomic import Unfinished
    from pcbench.policy import Policy
    from pcbench.verify import Verifier

_ENGINES: dict[tuple, Engine] = {}  # one engine per (kind, model, settings) per process

# What a training step may change, declared once: the undo snapshot (pcbench.atomic) and the
# checkpoint (pcbench.run) both walk these State fields through `step_state` and
# `load_step_state`, so a field added here is undone with an undone step and resumed with a
# resumed run, with nothing else to edit. Each speaks state_dict / load_state_dict (plain
# values, DataFrames for tables); `prompt_state` is None for strategies that keep none. The
# rest of what a step changes has its own way back, named where it is handled: the step number
# (both), the policy (atomic: its version, gradients dropped; run: its own directory), the
# step's pending frames (atomic only: a checkpoint is written between steps, when none are).
STEP_STATE = ("stream", "buffer", "prior", "prompt_state", "ledger")


@dataclass
class State:
    engine: Engine  # VLLMEngine or HFEngine (pcbench.engines.protocol)
    verifier: Verifier
    policy: Policy | None  # None: a state that only generates (no updates)
    prompts: pl.DataFrame  # training PROMPTS
    stream: PromptStream
    buffer: PilotBuffer
    ledger: Ledger = field(default_factory=Ledger)
    eval_prompts: pl.DataFrame | None = None  # test split + extra benchmarks
    prior: PassRatePrior = field(default_factory=PassRatePrior)  # sequential pilot's prior
    # what the strategy remembers per prompt (Strategy.new_prompt_state; GRESO's traces, MoPPS's
    # posteriors...; None for GRPO, DAPO and Pilot-Commit without its history gate)
    prompt_state: PromptState | None = None
    step: int = 0  # completed training steps
    pending: dict[str, list[pl.DataFrame]] = field(default_factory=dict)  # this step's frames
    # A step whose update is applied but whose sync, evaluation, logs or checkpoint were cut
    # short (pcbench.atomic.Unfinished): completed before the next step starts.
    unfinished: Unfinished | None = None
    broken: str | None = None  # why this State cannot continue (a half-applied update)

    def stash(self, kind: str, frame: pl.DataFrame) -> None:
        """Keep a frame of the step in flight until the step completes and is logged."""
        self.pending.setdefault(kind, []).append(frame)

    def step_state(self) -> dict[str, dict]:
        """The STEP_STATE fields' state dicts (fields that are None left out)."""
        return {
            name: getattr(self, name).state_dict()
            for name in STEP_STATE
            if getattr(self, name) is not None
        }

    def load_step_state(self, parts: dict[str, dict]) -> None:
        """Load what `step_state` returned into this State's own objects. Only the prior may be
        missing (checkpoints older than the sequential pilot have none: it keeps its value); any
        other part this State keeps must be there, or a run would resume with it empty."""
        unknown = set(parts) - set(STEP_STATE)
        missing = [n for n in STEP_STATE
                   if n not in parts and n != "prior" and getattr(self, n) is not None]  # fmt: skip
        if unknown or missing:
            raise ValueError(
                f"a step's state with parts {sorted(parts)}: "
                + (f"{sorted(unknown)} not in STEP_STATE; " if unknown else "")
                + (f"{missing} missing (this run keeps them)" if missing else "")
            )
        for name, part in parts.items():
            getattr(self, name).load_state_dict(part)

    def __repr__(self):
        owed = f", step {self.unfinished.step} unfinished" if self.unfinished else ""
        kept = f", {self.prompt_state!r}" if self.prompt_state is not None else ""
        return (
            f"State(step={self.step}{owed}, {self.stream!r}, {self.buffer!r}{kept}, "
            f"{self.ledger!r}, policy={self.policy!r})"
        )


def check_files(cfg: RunConfig) -> None:
    """ConfigError naming every missing model or data file, before anything loads."""
    missing = [
        f"{what} = {path!r}"
        for what, path in [("model", cfg.model), ("train", cfg.train), ("test", cfg.test)]
        + [("extra_eval", p) for p in cfg.extra_eval]
        if not is_remote(path) and not (Path(path).exists() if what == "model" else expand(path))
        and not (what == "model" and looks_like_hub_id(path))
    ]  # fmt: skip
    if missing:
        raise ConfigError(
            "missing files: " + "; ".join(missing) + ". Fix the paths in the config (relative "
            "paths are from the directory you run in), or run `make data` for the arith splits."
        )


def looks_like_hub_id(path: str) -> bool:
    parts = str(path).split("/")
    return len(parts) == 2 and not str(path).startswith((".", "/")) and parts[0] != "data"


def load_prompts(path: str, model: str) -> pl.DataFrame:
    """A PROMPTS parquet as is; any other dataset through `load_benchmark` + the model's template."""
    files = expand(path)
    if str(path).endswith(".parquet") and not is_remote(path) and files:
        frame = pl.concat([pl.read_parquet(f) for f in files], how="diagonal_relaxed")
        if set(PROMPTS.required) <= set(frame.columns):
            return PROMPTS.check(frame)
    return load_benchmark(path, template_for(model)).prompts


def make_engine(
    model: str,
    ec: EngineConfig,
    seed: int,
    *,
    seeding: str = "call",
    cluster: ClusterConfig | None = None,
):
    """The engine a run generates with: in this process, or replicas on Ray ([cluster])."""
    where = Path(model).resolve() if Path(model).exists() else model  # same dir, same engine
    remote = cluster is not None and cluster.remote_engines
    # seed: set per call; the pass-through arguments may hold tables, hence repr
    key = (
        ec.kind,
        str(where),
        ec.dtype,
        ec.max_model_len,
        ec.device,
        repr(sorted(ec.vllm_args.items())),
        seeding,
        (cluster.address, cluster.engines, cluster.engine_cpus, cluster.engine_gpus)
        if remote
        else None,  # the replicas' layout; ranks and verifier actors do not change them
    )
    if key in _ENGINES:
        return _ENGINES[key]
    if remote:
        _require_vllm_for_replicas(ec)
        from pcbench.cluster.replicas import ReplicatedEngine

        _ENGINES[key] = ReplicatedEngine(str(model), ec, cluster, seed=seed)
        return _ENGINES[key]
    if ec.kind == "vllm" and any(k[0] == "vllm" and k[-1] is None for k in _ENGINES):
        raise RuntimeError(
            "this process already has a vLLM engine with other settings; vLLM cannot run two "
            "in one process: restart the kernel (or process) to switch models or settings"
        )
    if ec.kind == "vllm":
        import os

        os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")  # per-step weight-reload INFO
        from pcbench.engines import VLLMEngine

        engine = VLLMEngine(
            str(model), dtype=ec.dtype, max_model_len=ec.max_model_len, seed=seed,
            cpu_kv_cache_gb=ec.cpu_kv_cache_gb, gpu_memory_utilization=ec.gpu_memory_utilization,
            engine_args=ec.vllm_args, seeding=seeding,
        )  # fmt: skip
    else:
        from pcbench.engines import HFEngine

        engine = HFEngine(
            str(model), dtype=ec.dtype, device=ec.device, max_model_len=ec.max_model_len, seed=seed
        )
    _ENGINES[key] = engine
    return engine


def with_data_parallel(policy: Policy, cfg: RunConfig) -> None:
    """[cluster] train_workers > 1: ranks 1.. on Ray around `policy`, which is rank 0."""
    if cfg.cluster.train_workers > 1:
        from pcbench.cluster.trainer import DataParallel

        policy.data_parallel = DataParallel(policy, cfg)


def verifier_pool(cfg: RunConfig):
    """[cluster] verifier_actors > 0: the verifier's worker pool as Ray actors; else None (the
    verifier's own worker processes)."""
    cc, vc = cfg.cluster, cfg.verify
    if cc.verifier_actors == 0:
        return None
    from pcbench.cluster.verifier import RayWorkerPool

    return RayWorkerPool(cc.verifier_actors, vc.workers, vc.timeout_s,
                         int(vc.memory_limit_gb * 2**30), address=cc.address,
                         cpus=cc.verifier_cpus)  # fmt: skip


def _require_vllm_for_replicas(ec: EngineConfig) -> None:
    if ec.kind != "vllm":
        raise ConfigError(
            f"engine.kind = {ec.kind!r}: [cluster] replicas run vLLM engines; use "
            "engine.kind = 'vllm' or leave cluster.engines at 1 and cluster.address empty"
        )


def training_prompts(cfg: RunConfig) -> pl.DataFrame:
    """The training split, or its first `train_prompts` prompts in file order: a split small
    enough that a run cycles through it several times (the peers-epochs experiment)."""
    prompts = load_prompts(cfg.train, cfg.model)
    if cfg.train_prompts is None:
        return prompts
    if cfg.train_prompts > prompts.height:
        raise ConfigError(
            f"train_prompts = {cfg.train_prompts}, but train = {cfg.train!r} holds only "
            f"{prompts.height} prompts: use at most {prompts.height} (or None for all)"
        )
    return prompts.head(cfg.train_prompts)


def setup_state(cfg: RunConfig, *, verifier=None, with_policy: bool = True) -> State:
    """Data, engine, verifier, policy, stream, buffer and ledger for a fresh run of `cfg`."""
    from pcbench.cluster.sharded import policy_for
    from pcbench.verify import Verifier

    check_files(cfg)
    prompts = training_prompts(cfg)
    if prompts.height < cfg.min_epoch_prompts:
        held = (f"train = {cfg.train!r} holds" if cfg.train_prompts is None
                else f"train_prompts = {cfg.train_prompts} keeps")  # fmt: skip
        raise ConfigError(
            f"{held} {prompts.height} prompts, fewer than the "
            f"{cfg.min_epoch_prompts} one epoch needs ({cfg.epoch_need}): use more training "
            "prompts or a smaller pool_prompts / batch_prompts"
        )
    evals = [load_prompts(p, cfg.model) for p in (cfg.test, *cfg.extra_eval)]
    eval_prompts = pl.concat(evals, how="diagonal_relaxed")
    ec = cfg.engine
    policy = policy_for(cfg) if with_policy else None
    if cfg.cluster.uses_ray:  # a layout the cluster cannot hold fails here, not by hanging
        from pcbench.cluster import check_resources

        check_resources(cfg.cluster)
    engine = make_engine(cfg.model, ec, cfg.seed, seeding=cfg.seeding, cluster=cfg.cluster)
    engine.sync_check_every = ec.sync_check_every  # a cached engine takes this run's settings
    engine.sync_tolerance = sync_tolerance(ec)
    if policy is not None:
        with_data_parallel(policy, cfg)  # first: a sharded policy computes only on its ranks
        engine.load_weights(policy, check=True)  # a reused engine may hold another run's weights
    if verifier is None:
        verifier = Verifier.from_config(cfg.verify, pool=verifier_pool(cfg))
    return State(
        engine=engine,
        verifier=verifier,
        policy=policy,
        prompts=prompts,
        stream=PromptStream(prompts, seed=cfg.seed),
        buffer=PilotBuffer(cfg.commit.max_staleness, seed=cfg.seed),
        prior=PassRatePrior(cfg.pilot.prior_window, cfg.pilot.prior_min),
        prompt_state=registry.get(cfg.strategy).new_prompt_state(cfg),
        eval_prompts=eval_prompts,
    )
