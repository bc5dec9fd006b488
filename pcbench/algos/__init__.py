"""Pure Pilot-Commit math: no I/O, no config objects, no state. Each module says its method."""

from pcbench.algos.advantages import ADVANTAGE_FNS, drgrpo_advantages, grpo_advantages
from pcbench.algos.groups import group_stats, verdicts
from pcbench.algos.losses import aggregate, kl_penalty, ppo_clip_loss
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
