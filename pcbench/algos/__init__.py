"""Pure Pilot-Commit math: no I/O, no config objects, no state. Each module says its method.

The losses (`pcbench.algos.losses`: aggregate, kl_penalty, ppo_clip_loss) are torch's and load
on first use, so the rest of the math, and everything that reads runs, stays light."""

from pcbench.algos.advantages import ADVANTAGE_FNS, drgrpo_advantages, grpo_advantages
from pcbench.algos.groups import group_stats, verdicts
from pcbench.algos.passk import mean_at_k, pass_at_k
from pcbench.algos.sampling import commit_order, max_variance_subset

__all__ = [
    "ADVANTAGE_FNS",
    "aggregate",
    "commit_order",
    "drgrpo_advantages",
    "group_stats",
    "grpo_advantages",
    "kl_penalty",
    "max_variance_subset",
    "mean_at_k",
    "pass_at_k",
    "ppo_clip_loss",
    "verdicts",
]

LOSSES = ("aggregate", "kl_penalty", "ppo_clip_loss")


def __getattr__(name: str):
    if name in LOSSES:
        from pcbench.algos import losses

        return getattr(losses, name)
    raise AttributeError(f"module 'pcbench.algos' has no attribute {name!r}")
