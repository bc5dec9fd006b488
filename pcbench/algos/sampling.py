"""Which rollouts to keep or take: max-variance down-sampling and the buffer's commit order.

Max-variance down-sampling (pilot reuse, n_reuse < n_pilot): keep k of a group's binary rewards
so that their variance is as large as possible, i.e. as close to half correct and half incorrect
as the group allows. Within each class the earliest samples are kept, so the choice is
deterministic and independent of any RNG.

Commit order (DESIGN §4.5, official replay buffer): `max_std` takes the highest pilot std first,
ties to the more recently added, then to the earlier inserted; `random` takes a uniform sample.
When the buffer holds no more than the number needed, all of it is taken in insertion order.
"""

from __future__ import annotations

import numpy as np


def max_variance_subset(rewards: np.ndarray, k: int) -> np.ndarray:
    """Sorted indices of k rewards (0/1) with the largest achievable variance."""
    rewards = np.asarray(rewards)
    if k >= len(rewards):
        return np.arange(len(rewards))
    pos, neg = np.flatnonzero(rewards > 0.5), np.flatnonzero(rewards <= 0.5)
    # As close to k/2 correct as the counts allow: at least k - |neg|, at most |pos|.
    n_pos = int(np.clip(k // 2, k - len(neg), len(pos)))
    return np.sort(np.concatenate([pos[:n_pos], neg[: k - n_pos]]))


def commit_order(
    std: np.ndarray,
    added_step: np.ndarray,
    k: int,
    order: str = "max_std",
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Positions (into insertion order) of the k buffer entries to commit, in commit order."""
    n = len(std)
    if n <= k:
        return np.arange(n)  # all of it, in insertion order
    if order == "max_std":
        # lexsort: last key is primary. Negate to sort descending; insertion index ascending.
        return np.lexsort((np.arange(n), -np.asarray(added_step), -np.asarray(std)))[:k]
    if order == "random":
        if rng is None:
            raise ValueError("order='random' needs an rng")
        return rng.choice(n, size=k, replace=False)
    raise ValueError(f"commit order {order!r}: use max_std or random")
