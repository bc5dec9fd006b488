"""ReplicatedEngine: the Engine protocol over N generation replicas, each a Ray actor.

A call's requests are split across the replicas, balanced by expected tokens (n x (prompt
tokens + the prompt's mean completion length so far)), generated in parallel, and merged back
into the one ROLLOUTS frame a single engine would return: same rows, same order. Requests carry
per-request seeds (`engines.requests.request_seeds`, computed here on the whole call), so a
request's samples do not depend on which replica ran it or what else was in its batch: a single
VLLMEngine with `seeding = "request"` returns the identical frame.

Weights go to every replica through Ray's object store (one `ray.put` per sync, read by all)
and each replica answers the self-check's probe, compared here against the policy: a replica
whose weights differ fails the sync. Every call names the policy version the replicas must hold;
a replica behind it raises instead of generating.

Faults: a replica that dies mid-call (its process killed, its node lost) is restarted by Ray;
its share is regenerated on the restarted replica after its weights are synced and checked
again, with the same seeds, so the merged frame is what it would have been. The dead share's
rollouts were being paid for and died with the process: they are counted once, as
`rollouts_lost` (the ledger's `rollout_stats/lost`, part of cumulative/rollouts; an evaluation's
lost share is not training cost and is not counted there); their tokens cannot be known and are
not counted. A share that fails twice in one call raises.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import polars as pl

from pcbench.config import ClusterConfig, EngineConfig, SamplingConfig
from pcbench.engines.requests import request_seeds, validate_requests
from pcbench.engines.vllm_engine import WeightSyncError, probe_gap


class StaleReplicaError(RuntimeError):
    """A replica holds other weights than the policy version the call was made for."""


def balance(costs: list[float], k: int) -> list[list[int]]:
    """Row indices split into k shares of near-equal total cost (longest first, each to the
    least-loaded share; ties to the lowest share); each share keeps the rows' order."""
    shares: list[list[int]] = [[] for _ in range(k)]
    loads = [0.0] * k
    for i in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
        target = min(range(k), key=lambda s: (loads[s], s))
        shares[target].append(i)
        loads[target] += costs[i]
    return [sorted(share) for share in shares]


def expected_costs(
    n: list[int], prompt_tokens: list[int], completion_tokens: list[float]
) -> list[float]:
    """Tokens a request is expected to cost: n x (prompt + expected completion)."""
    return [k * (p + c) for k, p, c in zip(n, prompt_tokens, completion_tokens, strict=True)]


def cpu_binding(cc: ClusterConfig, replica: int) -> dict[str, str]:
    """On a Ray instance started here for CPU replicas, replica i's sampling threads on cores
    of its own. vLLM's CPU backend binds its threads to every core by default, so two replicas
    on one machine would spin on the same cores (3.5x slower than one engine on 2 cores,
    bench/cluster.py). On a cluster the nodes' cores are not known here: vLLM's default."""
    cores, per = os.cpu_count() or 1, max(1, int(cc.engine_cpus))
    if cc.engine_gpus or cc.address not in ("", "local") or cc.engines * per > cores:
        return {}
    first = replica * per
    return {"VLLM_CPU_OMP_THREADS_BIND": f"{first}-{first + per - 1}" if per > 1 else str(first)}


def wait_restarted(actor, timeout_s: float = 600.0) -> dict:
    """The actor's `info()` once Ray has restarted it (a restart re-runs its __init__: for a
    replica, loading vLLM, ~20-30 s on CPU); raises after `timeout_s`."""
    import time

    import ray

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return ray.get(actor.info.remote())
        except ray.exceptions.ActorUnavailableError:  # still restarting
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


class EngineReplica:
    """One replica: a VLLMEngine in a Ray actor's process (made a Ray actor by ReplicatedEngine)."""

    def __init__(self, model: str, engine_kwargs: dict, env: dict[str, str]):
        os.environ.update(env)
        from pcbench.engines import VLLMEngine

        self.engine = VLLMEngine(model, **engine_kwargs)

    def generate(self, requests, sampling, step, round, expected_version):
        if self.engine.policy_version != expected_version:
            raise StaleReplicaError(
                f"replica (pid {os.getpid()}) holds policy version "
                f"{self.engine.policy_version}, the call is for version {expected_version}"
            )
        return self.engine.generate(requests, sampling, step=step, round=round)

    def reload(self, weights: dict, version: int) -> int:
        self.engine.reload(weights.items(), version)
        return os.getpid()

    def probe(self):
        return self.engine.probe()

    def info(self) -> dict:
        return {"pid": os.getpid(), "policy_version": self.engine.policy_version}

    def abort_unfinished(self) -> int:
        return self.engine.abort_unfinished()

    def sleep(self) -> None:
        self.engine.sleep()

    def wake(self) -> None:
        self.engine.wake()


class ReplicatedEngine:
    """`cluster.engines` VLLMEngine replicas on Ray behind the Engine protocol."""

    def __init__(self, model: str, ec: EngineConfig, cc: ClusterConfig, *, seed: int):
        from transformers import AutoTokenizer

        from pcbench.cluster import connect

        ray = connect(cc.address)
        self.model, self.max_model_len = model, ec.max_model_len
        self.tokenizer = AutoTokenizer.from_pretrained(model)  # validation happens here
        kwargs = dict(
            dtype=ec.dtype, max_model_len=ec.max_model_len, seed=seed,
            cpu_kv_cache_gb=ec.cpu_kv_cache_gb, gpu_memory_utilization=ec.gpu_memory_utilization,
            engine_args=ec.vllm_args, seeding="request",
        )  # fmt: skip
        env = {k: v for k, v in os.environ.items() if k.startswith(("VLLM_", "PCBENCH_"))}
        env.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
        actor = ray.remote(EngineReplica).options(
            num_cpus=cc.engine_cpus, num_gpus=cc.engine_gpus, max_restarts=-1, max_task_retries=0
        )
        self.replicas = [
            actor.remote(model, kwargs, env | cpu_binding(cc, i)) for i in range(cc.engines)
        ]
        self.pids = [info["pid"] for info in ray.get([r.info.remote() for r in self.replicas])]
        self.policy_version, self.syncs = 0, 0
        self.sync_check_every, self.sync_tolerance = ec.sync_check_every, 1e-3
        self.rollouts_generated = self.tokens_generated = self.rollouts_lost = 0
        self.replica_restarts = 0
        self._weights = None  # the last sync's object ref, for a restarted replica
        self._policy = None
        self._lengths: dict[str, tuple[float, int]] = {}  # prompt_id -> (tokens, completions)
        self._all_lengths = (0.0, 0)  # the same over every prompt (a new prompt's expectation)
        # called with (replicas asked, the call's requests) once a call is dispatched: the
        # fault tests kill a replica there
        self.after_dispatch: Callable[[list, pl.DataFrame], None] | None = None

    # ---- the Engine protocol --------------------------------------------------------------
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
        """One call across the replicas; the frame a single request-seeded engine returns."""
        import ray

        prompt_ids = self.validate(requests)  # RequestError before any replica is asked
        if seed is not None:
            requests = requests.with_columns(seed=pl.Series(request_seeds(seed, requests)))
        costs = expected_costs(
            requests["n"].to_list(),
            [len(ids) for ids in prompt_ids],
            [self._expected_length(p, sampling.max_tokens) for p in requests["prompt_id"]],
        )
        # share i runs on replica i; with fewer requests than replicas, on the first ones
        shares = [rows for rows in balance(costs, len(self.replicas)) if rows]

        def dispatch(i: int):
            part = requests[shares[i]]
            return self.replicas[i].generate.remote(
                part, sampling, step, round, self.policy_version
            )

        pending = {i: dispatch(i) for i in range(len(shares))}
        if self.after_dispatch is not None:
            self.after_dispatch(self.replicas[: len(shares)], requests)
        frames: dict[int, pl.DataFrame] = {}
        try:
            for i in range(len(shares)):
                frames[i] = self._collect(i, pending, dispatch, shares[i], requests)
        except BaseException:
            for ref in pending.values():  # an interrupt or a failure: stop the other shares
                ray.cancel(ref)
            raise
        return self._merge(shares, frames, requests)

    def _collect(self, i, pending, dispatch, rows, requests) -> pl.DataFrame:
        """Share i's frame from replica i; a replica that died is restarted and asked again."""
        import ray

        from pcbench.cluster import actor_failure_types

        try:
            frame = ray.get(pending.pop(i))
        except actor_failure_types() as error:
            share = requests[rows]
            lost = int(share["n"].sum())
            # training's cost only: an evaluation's lost share is not a training rollout
            self.rollouts_lost += int(share.filter(pl.col("phase") != "eval")["n"].sum())
            self.replica_restarts += 1
            try:
                self._recover(i)
                frame = ray.get(dispatch(i))
            except BaseException as again:
                again.add_note(
                    f"pcbench: replica {i} died generating {lost} rollouts "
                    f"({type(error).__name__}) and its share could not be regenerated"
                )
                raise
        except ray.exceptions.RayTaskError as error:  # raised inside the replica: its cause
            raise error.as_instanceof_cause() from None
        self.rollouts_generated += frame.height
        self.tokens_generated += int(frame["n_tokens"].sum()) if frame.height else 0
        return frame

    def _recover(self, replica: int) -> None:
        """A restarted replica: wait for it, then give it the current weights (checked)."""
        import ray

        info = wait_restarted(self.replicas[replica])
        self.pids[replica] = info["pid"]
        if self._weights is not None and info["policy_version"] != self.policy_version:
            ray.get(self.replicas[replica].reload.remote(self._weights, self.policy_version))
            if self._policy is not None:
                probe = ray.get(self.replicas[replica].probe.remote())
                probe_gap(probe, self._policy, self.sync_tolerance, f"restarted replica {replica}")

    def _merge(self, shares, frames, requests) -> pl.DataFrame:
        """The shares' rows back in request order (row, then sample), as one engine's."""
        from pcbench.schema import ROLLOUTS

        parts = []
        for i, rows in enumerate(shares):
            counts = requests[rows]["n"].to_list()
            order = [row for row, n in zip(rows, counts, strict=True) for _ in range(n)]
            frame = frames[i]
            if frame.height != len(order):
                raise RuntimeError(
                    f"replica share {i} returned {frame.height} rollouts for {len(order)} asked"
                )
            parts.append(frame.with_columns(_row=pl.Series(order, dtype=pl.Int64)))
        if not parts:
            return ROLLOUTS.empty()
        merged = pl.concat(parts).sort("_row", "sample", maintain_order=True).drop("_row")
        stale = merged.filter(pl.col("policy_version") != self.policy_version)
        if stale.height:
            raise StaleReplicaError(
                f"{stale.height} rollouts carry policy version "
                f"{sorted(set(stale['policy_version']))}, the call was for {self.policy_version}"
            )
        for pid, tokens, count in (
            merged.group_by("prompt_id").agg(pl.col("n_tokens").sum(), pl.len()).iter_rows()
        ):
            old_tokens, old_count = self._lengths.get(pid, (0.0, 0))
            self._lengths[pid] = (old_tokens + tokens, old_count + count)
        all_tokens, all_count = self._all_lengths
        self._all_lengths = (all_tokens + merged["n_tokens"].sum(), all_count + merged.height)
        return merged

    def _expected_length(self, prompt_id: str, max_tokens: int) -> float:
        """The prompt's mean completion so far; a new prompt's: every prompt's mean (half of
        max_tokens before anything was generated)."""
        tokens, count = self._lengths.get(prompt_id) or self._all_lengths
        return tokens / count if count else max_tokens / 2

    def load_weights(self, policy, check: bool | None = None) -> float:
        """The policy's weights to every replica (one object-store copy), then each replica's
        probe against the policy; returns the largest gap (NaN when unchecked)."""
        import ray

        weights = ray.put({k: v.detach().cpu() for k, v in policy.named_weights()})
        ray.get([r.reload.remote(weights, policy.version) for r in self.replicas])
        self._weights, self._policy = weights, policy
        self.policy_version = policy.version
        self.syncs += 1
        if check is None:
            check = (self.syncs - 1) % max(1, self.sync_check_every) == 0
        return self.check(policy) if check else float("nan")

    def check(self, policy) -> float:
        """Every replica's probe against the policy; WeightSyncError naming a replica that
        differs; returns the largest gap."""
        import ray

        probes = ray.get([r.probe.remote() for r in self.replicas])
        gaps = [
            probe_gap(p, policy, self.sync_tolerance, f"replica {i}") for i, p in enumerate(probes)
        ]
        versions = [p.policy_version for p in probes]
        if any(v != policy.version for v in versions):
            raise WeightSyncError(f"replicas hold versions {versions}, the policy {policy.version}")
        return max(gaps)

    def abort_unfinished(self) -> int:
        import ray

        return sum(ray.get([r.abort_unfinished.remote() for r in self.replicas]))

    def sleep(self) -> None:
        import ray

        ray.get([r.sleep.remote() for r in self.replicas])

    def wake(self) -> None:
        import ray

        ray.get([r.wake.remote() for r in self.replicas])

    def shutdown(self) -> None:
        """Stop the replicas (their processes and memory)."""
        import ray

        for r in self.replicas:
            ray.kill(r, no_restart=True)
        self.replicas = []

    def __repr__(self):
        return (
            f"ReplicatedEngine({self.model!r}, {len(self.replicas)} replicas, "
            f"policy_version={self.policy_version})"
        )
