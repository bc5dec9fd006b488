"""DataParallel: the policy update on W ranks -- this process's Policy is rank 0, ranks 1..W-1
are Ray actors each holding a replica of it; gradients are summed with torch.distributed (gloo
on CPU, NCCL on GPU).

Every rank builds the same batch and advantages (groups are whole on every rank), trains on
rows rank, rank + W, ... of each mini-batch with the loss weighted by the whole mini-batch's
totals, and the policy's `reduce_gradients` all-reduces (sums) the gradients, flattened into
one buffer, before clipping and AdamW. The sum over ranks is then the single-process gradient
up to float summation order, every rank takes the identical optimizer step, and the weights
stay equal, which is checked after every update (a checksum per rank).

This is DDP's algorithm (one bucket, reduced after backward) without its module wrapper: DDP
hooks gradients through the wrapped module's forward, and the log-probs here come from the
decoder and the head called separately (memory-lean chunks, `logprobs.token_logprobs`). The
process group is made directly on a TCPStore (no global default group), so a notebook kernel
can hold several runs' groups and drop one without restarting.

Rank 0 stays the one copy that matters: the engine syncs from it, checkpoints save it, resume
loads it. The other ranks get its full state (weights, optimizer, scheduler, masters) through
the object store whenever it changed other than by an update (start, resume, Run.open).

With `train_sharding = "fsdp"` the ranks hold shards instead of replicas (FSDP2, `fsdp.py`):
weights, gradients and AdamW state are divided among them, which is what lets the 4B-14B
settings train at all. Then every use of the policy that needs whole weights is a collective:
the driver's calls (`named_weights` for the engine sync, the sync probe's `logprobs`,
`state_dict`, `load_state_dict`, `save`) run on every rank (`Policy`'s `collective`, through
`everywhere` here), and every rank runs the same number of forwards and backwards in an update
(`update_shard` pads the shorter ranks with zero-weight micro-batches). The sharded group uses
the process's default torch.distributed group (FSDP's device mesh needs one), so a process holds
one sharded group at a time; a new one (resume, Run.open) retires the last.

A rank lost during an update (its process killed, its node gone) fails the collective: the
update raises `TrainWorkerLost`, nothing is applied where it failed before the first optimizer
step (the step is undone, pcbench.atomic), and this group refuses every later update: resume
the run from its last checkpoint (`pcbench run --resume`, `Run.open`), which builds a new one.
"""

from __future__ import annotations

import datetime
import os
import socket
from collections import Counter
from collections.abc import Callable

import torch


class TrainWorkerLost(RuntimeError):
    """A data-parallel rank died or stopped answering during an update."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def process_group(host: str, port: int, rank: int, world: int, backend: str, timeout_s: float):
    """A gloo / NCCL process group of `world` ranks meeting at host:port (rank 0 hosts it)."""
    from torch import distributed as dist

    timeout = datetime.timedelta(seconds=timeout_s)
    store = dist.TCPStore(host, port, world, rank == 0, timeout=timeout)
    if backend == "nccl":
        return dist.ProcessGroupNCCL(store, rank, world)
    return dist.ProcessGroupGloo(store, rank, world, timeout)


def default_group(host: str, port: int, rank: int, world: int, backend: str, timeout_s: float):
    """This process's default torch.distributed group (a sharded group's; see the module)."""
    from torch import distributed as dist

    timeout = datetime.timedelta(seconds=timeout_s)
    store = dist.TCPStore(host, port, world, rank == 0, timeout=timeout)
    dist.init_process_group(backend, store=store, rank=rank, world_size=world, timeout=timeout)


def summed_gradients(group, device: str) -> Callable[[list[torch.Tensor]], None]:
    """`Policy.reduce_gradients` for a group: every parameter's gradient (zeros where a rank
    had no rows) replaced by the sum over ranks, in one flat all-reduce."""

    def reduce(params: list[torch.Tensor]) -> None:
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads]).to(device)
        group.allreduce([flat]).wait()
        offset = 0
        for p in params:
            n = p.numel()
            p.grad = flat[offset : offset + n].view_as(p).to(p.dtype)
            offset += n

    return reduce


def checksum(policy) -> float:
    """Sum of |w| over the fp32 weights: equal on every rank after an update (0 for a shard,
    which holds weights no other rank has)."""
    if policy.sharded and policy.root is not None:
        return 0.0
    with torch.no_grad():
        return float(sum(m.detach().double().abs().sum() for m in policy.masters))


class TrainRank:
    """Rank r >= 1: a Policy replica in a Ray actor's process (made an actor by DataParallel)."""

    def __init__(self, cfg_values: dict, rank: int, world: int, host: str, port: int):
        from pcbench.cluster.sharded import policy_for
        from pcbench.config import from_dict

        torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
        cfg = from_dict(cfg_values, saved=True)
        ec, cc = cfg.engine, cfg.cluster
        self.policy = policy_for(cfg)
        self.rank, self.world, self.address = rank, world, (host, port)
        backend = "nccl" if ec.device == "cuda" else "gloo"
        self.args = (backend, cc.collective_timeout_s, ec.device)

    def join(self) -> int:
        """Meet the other ranks (blocks until all have joined) and, sharded, take this rank's
        shards; returns this process's pid."""
        backend, timeout_s, device = self.args
        if self.policy.sharded:
            default_group(*self.address, self.rank, self.world, backend, timeout_s)
            self.policy.shard()
        else:
            group = process_group(*self.address, self.rank, self.world, backend, timeout_s)
            self.policy.reduce_gradients = summed_gradients(group, device)
        return os.getpid()

    def load_state(self, state: dict) -> int:
        self.policy.load_state_dict(state)
        return self.policy.version

    def call(self, name: str, arguments: tuple[tuple, dict]) -> int:
        """This rank's part of a collective call the driver makes on its policy (sharded):
        the same method with the same (args, kwargs); what it returns stays here."""
        args, kwargs = arguments
        getattr(self.policy, name)(*args, **kwargs)
        return self.policy.version

    def update(self, rollouts, prompts, uc) -> tuple[Counter, list[float], float]:
        """(totals, loss shares, weights' checksum) of this rank's part of the update."""
        from pcbench.steps.update import update_shard

        self.policy.discard_gradients()  # a failed earlier attempt may have left some
        _, totals, losses, _ = update_shard(
            self.policy, rollouts, prompts, uc, self.rank, self.world
        )
        return totals, losses, checksum(self.policy)


class DataParallel:
    """`cluster.train_workers` ranks around `policy` (rank 0); `update` trains all of them."""

    def __init__(self, policy, cfg):
        from pcbench.cluster import connect

        ray = connect(cfg.cluster.address)
        cc, ec = cfg.cluster, cfg.engine
        self.policy, self.world = policy, cc.train_workers
        host = ray.util.get_node_ip_address()
        port = free_port()
        actor = ray.remote(TrainRank).options(
            num_cpus=cc.worker_cpus, num_gpus=cc.worker_gpus, max_restarts=0
        )
        values = cfg.to_dict()
        self.ranks = [actor.remote(values, r, self.world, host, port) for r in range(1, self.world)]
        self.synced: tuple[int, int] | None = None  # (version, state_loads) the ranks hold
        self.broken: str | None = None
        self.after_dispatch: Callable[[list], None] | None = None  # fault tests kill here
        self.in_step = False  # inside a call every rank makes anyway (sharded: not dispatched)
        if policy.sharded and (policy.version or policy.state_loads):
            self._send_state()  # whole, before sharding (a fresh policy: the ranks load it too)
        joined = [r.join.remote() for r in self.ranks]
        backend = "nccl" if ec.device == "cuda" else "gloo"
        if policy.sharded:
            _retire_default_group_owner()
            default_group(host, port, 0, self.world, backend, cc.collective_timeout_s)
            policy.shard()
            _owner[0] = self
        else:
            group = process_group(host, port, 0, self.world, backend, cc.collective_timeout_s)
            policy.reduce_gradients = summed_gradients(group, ec.device)
        self.pids = ray.get(joined)
        policy.peers = self if policy.sharded else None

    def update(self, rollouts, prompts, uc) -> dict[str, float]:
        from pcbench.steps.update import _metrics, update_shard

        if self.broken:
            raise TrainWorkerLost(self.broken)
        if not self.policy.sharded:  # a sharded group's state changes only collectively
            self._send_state()
        refs = [r.update.remote(rollouts, prompts, uc) for r in self.ranks]
        if self.after_dispatch is not None:
            self.after_dispatch(self.ranks)
        local, remote = self._together(
            refs, lambda: update_shard(self.policy, rollouts, prompts, uc, 0, self.world),
            f"the update to version {self.policy.version + 1}",
        )  # fmt: skip
        self.synced = (self.policy.version, self.policy.state_loads)
        mine = checksum(self.policy)
        for rank, (_, _, theirs) in enumerate(remote, start=1):
            if abs(theirs - mine) > 1e-9 * max(1.0, abs(mine)):
                self.broken = f"rank {rank}'s weights drifted from rank 0's ({theirs} vs {mine})"
                raise TrainWorkerLost(self.broken)
        adv, totals, losses, norms = local  # norms: the same on every rank (summed gradients)
        for other_totals, other_losses, _ in remote:
            totals.update(other_totals)  # adds (Counter's + would drop non-positive entries)
            losses = [a + b for a, b in zip(losses, other_losses, strict=True)]
        return _metrics(rollouts, adv, totals, losses, norms, self.policy)

    def everywhere(self, name: str, args: tuple, kwargs: dict, local: Callable):
        """Run policy.`name` on every rank (a sharded policy's collective call from the driver);
        returns this rank's result."""
        import ray

        if self.broken:
            raise TrainWorkerLost(self.broken)
        sent = ray.put((args, kwargs))  # one copy in the object store, read by every rank
        refs = [r.call.remote(name, sent) for r in self.ranks]
        result, _ = self._together(refs, local, f"the policy's {name}")
        return result

    def _together(self, refs: list, local: Callable, what: str):
        """`local()` here while the ranks run their part (`refs`); a lost rank breaks the group.
        Calls every rank makes anyway inside it are not dispatched again (`in_step`)."""
        import ray

        from pcbench.cluster import actor_failure_types

        self.in_step = True
        try:
            return local(), ray.get(refs)
        except (RuntimeError, *actor_failure_types()) as error:
            self.broken = (
                f"a data-parallel rank was lost during {what} at version {self.policy.version} "
                f"({type(error).__name__}: {str(error)[:200]}); this training group cannot "
                "continue: resume the run from its last checkpoint (pcbench run --resume, or "
                "Run.open)"
            )
            for ref in refs:
                ray.cancel(ref, force=True)
            raise TrainWorkerLost(self.broken) from error
        finally:
            self.in_step = False

    def _send_state(self) -> None:
        """The ranks get rank 0's whole state when it changed other than by an update."""
        import ray

        now = (self.policy.version, self.policy.state_loads)
        if self.synced == now:
            return
        state = ray.put(self.policy.state_dict())
        versions = ray.get([r.load_state.remote(state) for r in self.ranks])
        if any(v != self.policy.version for v in versions):
            raise TrainWorkerLost(f"ranks loaded versions {versions}, not {self.policy.version}")
        self.synced = now

    def shutdown(self) -> None:
        import ray

        for r in self.ranks:
            ray.kill(r, no_restart=True)
        self.ranks = []
        self.policy.reduce_gradients = None
        self.policy.data_parallel = self.policy.peers = None
        if _owner[0] is self:  # a sharded policy without its group holds only its own shards
            from torch import distributed as dist

            dist.destroy_process_group()
            _owner[0] = None
            self.broken = "shut down"


_owner: list[DataParallel | None] = [None]  # the sharded group holding the default group


def _retire_default_group_owner() -> None:
    if _owner[0] is not None:
        _owner[0].shutdown()

    def __repr__(self):
        state = "broken" if self.broken else "ok"
        return f"DataParallel({self.world} ranks, {state})"
