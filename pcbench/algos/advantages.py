"""Group-relative advantages: every rollout is compared with the other rollouts of its prompt.

    grpo    A_i = (r_i - mean(r)) / (std(r) + 1e-6), std with ddof = 1 (verl's torch.std)
    drgrpo  A_i = r_i - mean(r)   (Dr. GRPO: no std division, no length bias from it)

Pilot-Commit's training group is the prompt's (possibly down-sampled) pilot rollouts plus its
commit rollouts, so group sizes differ between prompts; both functions take any sizes.

Deviation: a group of one rollout gets advantage 0 here. verl sets mean 0 and std 1 for it,
which turns the raw reward into the advantage (no baseline). No preset produces such groups.
"""

from __future__ import annotations

import numpy as np

STD_EPS = 1e-6


def _group_moments(rewards: np.ndarray, group: np.ndarray):
    _, inverse = np.unique(np.asarray(group), return_inverse=True)
    n = np.bincount(inverse).astype(np.float64)
    mean = np.bincount(inverse, weights=rewards) / n
    sq = np.bincount(inverse, weights=(rewards - mean[inverse]) ** 2)
    std = np.sqrt(sq / np.maximum(n - 1, 1))  # ddof = 1
    return inverse, n, mean, std


def grpo_advantages(rewards: np.ndarray, group: np.ndarray) -> np.ndarray:
    """(N,) z-scored rewards within each group; 0 for groups of one."""
    rewards = np.asarray(rewards, dtype=np.float64)
    inverse, n, mean, std = _group_moments(rewards, group)
    adv = (rewards - mean[inverse]) / (std[inverse] + STD_EPS)
    return np.where(n[inverse] > 1, adv, 0.0)


def drgrpo_advantages(rewards: np.ndarray, group: np.ndarray) -> np.ndarray:
    """(N,) rewards minus their group mean; 0 for groups of one."""
    rewards = np.asarray(rewards, dtype=np.float64)
    inverse, n, mean, _ = _group_moments(rewards, group)
    return np.where(n[inverse] > 1, rewards - mean[inverse], 0.0)


ADVANTAGE_FNS = {"grpo": grpo_advantages, "drgrpo": drgrpo_advantages}
