"""Past one process: engine replicas, a data-parallel update and the verifier on Ray.

Everything here is opt-in through `[cluster]` (`config.ClusterConfig`); without it pcbench
never imports Ray and runs in one process exactly as before. The pieces, each behind the seam
the single-process code already has:

    replicas.ReplicatedEngine   the Engine protocol over N Ray actors, each holding a VLLMEngine
    trainer.DataParallel        rank 0 is this process's Policy, ranks 1.. are Ray actors; the
                                gradients are all-reduced (torch.distributed: gloo / NCCL)
    verifier.RayWorkerPool      the Verifier's worker pool as Ray actors (same statuses, timeouts)

Ray is the distributed engine (scheduling, placement, restarts, the object store for weights);
torch.distributed does the collectives; no process plumbing of our own.
"""

from __future__ import annotations


def connect(address: str = ""):
    """`ray` connected to `address` ("" or "local": a Ray instance on this machine, started
    once per process; "auto", "host:port" or "ray://host:10001": a running cluster)."""
    import ray

    if not ray.is_initialized():  # no dashboard: nothing here serves it
        ray.init(address=None if address in ("", "local") else address, include_dashboard=False)
    return ray


def actor_failure_types() -> tuple[type[BaseException], ...]:
    """What Ray raises when an actor died or could not be reached mid-call."""
    from ray import exceptions

    names = ("ActorDiedError", "RayActorError", "ActorUnavailableError", "ActorUnschedulableError")
    return tuple(getattr(exceptions, n) for n in names if hasattr(exceptions, n))


def check_resources(cc) -> None:
    """ConfigError when the cluster has fewer CPUs or GPUs than `[cluster]` asks for: Ray
    would otherwise leave the actors pending, and the run would wait forever."""
    from pcbench.config import ConfigError

    ray = connect(cc.address)
    have = ray.cluster_resources()
    short = [
        f"{need:g} {kind} (the cluster has {have.get(kind, 0):g})"
        for kind, need in cc.resources().items()
        if need > have.get(kind, 0) + 1e-9
    ]
    if short:
        raise ConfigError(
            "[cluster] asks for " + " and ".join(short) + ": engines x engine_cpus/gpus + "
            "(train_workers - 1) x worker_cpus/gpus + verifier_actors x verifier_cpus; lower "
            "them (fractions are allowed) or add nodes"
        )
