"""RayWorkerPool: the Verifier's worker pool spread over Ray actors (other cores, other nodes).

Each actor holds an ordinary `verify.workers.WorkerPool`, so every item is judged as before:
in a killable process, under the per-item timeout and the memory limit, with the same
statuses. The Verifier in the driver keeps its cache, fast path and health checks; only the
jobs that need math-verify travel. An actor that dies mid-batch (its node lost, its process
killed) is restarted by Ray and its part judged again once on it; it counts as a worker
restart in the health (`verifier/worker_restarts`). A part that fails twice raises.
"""

from __future__ import annotations


class VerifyActor:
    """One actor: a WorkerPool in its process (made a Ray actor by RayWorkerPool)."""

    def __init__(self, workers: int, timeout_s: float, memory_limit: int):
        from pcbench.verify.workers import WorkerPool

        self.pool = WorkerPool(workers, timeout_s, memory_limit)

    def run(self, jobs: list[tuple]) -> tuple[dict, int]:
        before = self.pool.replaced
        return self.pool.run(jobs), self.pool.replaced - before

    def info(self) -> dict:
        import os

        return {"pid": os.getpid()}


def split(jobs: list, parts: int) -> list[list]:
    """Contiguous, near-equal parts (the first ones one longer), empty parts dropped."""
    size, extra = divmod(len(jobs), parts)
    out, start = [], 0
    for i in range(parts):
        end = start + size + (i < extra)
        out.append(jobs[start:end])
        start = end
    return [p for p in out if p]


class RayWorkerPool:
    """`actors` Ray actors of `workers` judging processes each, behind WorkerPool's interface
    (`run`, `replaced`, `size`, `close`)."""

    def __init__(
        self,
        actors: int,
        workers: int,
        timeout_s: float,
        memory_limit: int,
        address: str = "",
        cpus: float = 1.0,
    ):
        from pcbench.cluster import connect

        ray = connect(address)
        actor = ray.remote(VerifyActor).options(num_cpus=cpus, max_restarts=-1, max_task_retries=0)
        self.actors = [actor.remote(workers, timeout_s, memory_limit) for _ in range(actors)]
        self.pids = [info["pid"] for info in ray.get([a.info.remote() for a in self.actors])]
        self.size, self.timeout_s, self.replaced = actors * workers, timeout_s, 0
        self.after_dispatch = None  # fault tests kill an actor here

    def run(self, jobs: list[tuple]) -> dict:
        import ray

        from pcbench.cluster import actor_failure_types
        from pcbench.cluster.replicas import wait_restarted

        parts = split(jobs, len(self.actors))
        refs = {i: self.actors[i].run.remote(part) for i, part in enumerate(parts)}
        results: dict = {}
        if self.after_dispatch is not None:
            self.after_dispatch(self.actors)
        try:
            for i, part in enumerate(parts):
                try:
                    found, replaced = ray.get(refs.pop(i))
                except actor_failure_types():
                    self.replaced += 1  # a lost actor is a restarted worker; its part again
                    self.pids[i] = wait_restarted(self.actors[i])["pid"]
                    found, replaced = ray.get(self.actors[i].run.remote(part))
                results.update(found)
                self.replaced += replaced
        except BaseException:
            for ref in refs.values():
                ray.cancel(ref)
            raise
        return results

    def close(self) -> None:
        import ray

        for a in self.actors:
            ray.kill(a, no_restart=True)
        self.actors = []
