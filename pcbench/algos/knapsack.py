"""Knapsack-RL's rollout budget split (arXiv 2509.25849; liziniu/KnapsackRL), as pure rules.

A step's budget W = B x n rollouts is split unevenly over its B prompts by their estimated
success rate p (the mean of a prompt's last 16 rewards; a prompt is known once it has 8):

    unknown prompt            n                 p = 0     negative_n (2)
    p = 1                     positive_n (2)    0 < p < 1 min_n (2) + an extra k chosen below

The extras maximise sum_i V(p_i, min_n + k_i) over whole rollouts, with V(p, N) = (1 - p^N -
(1 - p)^N) p (1 - p)^2 (the chance a group of N is informative times the value of its gradient)
and k_i <= max_n - min_n, by an exact dynamic program that spends its budget exactly where it
can (k = 0 scores 0; ties go to the smallest k). Before it runs, a cap: if the informative
prompts' cost estimate sum_i int(min(max_n, ln(1 - alpha) / ln max(p_i, 1 - p_i))) (samples to
see both outcomes with probability alpha = 0.9) is below the budget left, the DP gets only the
estimate and the excess is split evenly over the p = 0 prompts (or, if none, over the unknown
and p = 1 ones). With no informative prompt the budget left goes to the p = 0 prompts, or every
prompt gets n. A budget the DP cannot fill exactly is spread evenly over the informative ones.

The estimate p of a prompt comes from its visits (one per epoch, the rewards of its group):
unknown until it has seen `known_after` rewards in all; then the mean of its latest visit if
that visit had `window` rewards or more, else the mean of its last `window` rewards.

Deviations: none in the rules; the DP is vectorised over budgets (numpy) instead of numba.
Which rewards of a partly counted older visit make up the last `window` is chronological here
(a visit's rewards are exchangeable samples, so the choice carries no information).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

MIN_N, MAX_N, ALPHA = 2, 128, 0.9
WINDOW, KNOWN_AFTER = 16, 8  # reward_buffer_length, min_buffer_length


def estimate(
    visits: Sequence[Sequence[float]], seen: int, window: int = WINDOW,
    known_after: int = KNOWN_AFTER,
) -> float | None:  # fmt: skip
    """p of a prompt from its visits' rewards (oldest first) and the rewards it has seen in all
    (None: not known yet)."""
    if seen < known_after or not visits:
        return None
    if len(visits[-1]) >= window:  # a visit this large is its own estimate
        return float(np.mean(visits[-1]))
    return float(np.mean([r for visit in visits for r in visit][-window:]))


def recent(visits: Sequence[Sequence[float]], window: int = WINDOW) -> list[list[float]]:
    """The shortest tail of whole visits holding `window` rewards (all, if fewer): all that
    `estimate` can read again, so a prompt's memory stays bounded."""
    held, start = 0, len(visits)
    while start > 0 and held < window:
        start -= 1
        held += len(visits[start])
    return [list(v) for v in visits[start:]]


def value(p: float, n: int) -> float:
    """V(p, N): expected gradient value of a group of N rollouts at success rate p, in float32
    as the public code computes it (its success rates are a float32 array), so that its DP's
    near-ties fall the same way."""
    sr = np.float32(p)
    return float((1 - sr**n - (1 - sr) ** n) * sr * ((1 - sr) ** 2))


def cost(p: float, alpha: float = ALPHA) -> float:
    """Samples needed to see both a success and a failure with probability alpha."""
    if p <= 0.0:
        return math.inf
    if p >= 1.0:
        return 0.0
    return math.log(1.0 - alpha) / math.log(max(p, 1.0 - p))


def solve(ps: Sequence[float], budget: int, min_n: int, max_extra: int) -> list[int]:
    """Extras k_i in [0, max_extra] maximising sum V(p_i, min_n + k_i) (k = 0 scores 0) with
    sum k_i = the largest reachable total <= budget; what is left is spread evenly."""
    items, budget = len(ps), max(0, int(budget))
    if items == 0:
        return []
    best = np.full(budget + 1, -np.inf)
    best[0] = 0.0
    choices = np.zeros((items, budget + 1), dtype=np.int64)
    for i, p in enumerate(ps):
        new = best.copy()  # k = 0: gain 0
        for k in range(1, min(max_extra, budget) + 1):
            candidate = np.full(budget + 1, -np.inf)
            candidate[k:] = best[:-k] + value(p, min_n + k)
            better = candidate > new  # strict: ties keep the smaller k
            new[better], choices[i, better] = candidate[better], k
        best = new
    spent = int(np.flatnonzero(np.isfinite(best)).max())
    extras = [0] * items
    for i in range(items - 1, -1, -1):
        extras[i] = int(choices[i, spent])
        spent -= extras[i]
    left = budget - sum(extras)
    return [k + left // items + (i < left % items) for i, k in enumerate(extras)]


def _spread(counts: list[int], targets: list[int], amount: int) -> None:
    for j, i in enumerate(targets):
        counts[i] += amount // len(targets) + (j < amount % len(targets))


def allocate(
    p_hat: Sequence[float | None], n: int, *, budget: int | None = None, min_n: int = MIN_N,
    max_n: int = MAX_N, alpha: float = ALPHA, negative_n: int | None = None,
    positive_n: int | None = None,
) -> list[int]:  # fmt: skip
    """Rollouts per prompt (None = not known yet) summing to `budget` (default len x n)."""
    negative_n = min_n if negative_n is None else negative_n
    positive_n = min_n if positive_n is None else positive_n
    total = len(p_hat) * n if budget is None else budget
    counts = [n if p is None else negative_n if p <= 0 else positive_n if p >= 1 else min_n
              for p in p_hat]  # fmt: skip
    left = total - sum(counts)
    if left < 0:
        raise ValueError(f"budget {total} is below the base allocation {sum(counts)}")
    informative = [i for i, p in enumerate(p_hat) if p is not None and 0 < p < 1]
    # The public code's success-rate array holds 0 for a prompt not known yet, so what it
    # gives "the p = 0 prompts" goes to the unknown ones as well.
    zeros = [i for i, p in enumerate(p_hat) if p is None or p <= 0]
    if not informative:
        if left and zeros:
            _spread(counts, zeros, left)
        elif left:
            counts = [n] * len(p_hat)
        return counts
    # int() of the float32 cost, as the public code stores it
    estimate = sum(int(min(max_n, np.float32(cost(p_hat[i], alpha)))) for i in informative)
    others = zeros or [i for i in range(len(p_hat)) if i not in set(informative)]
    if estimate < left and others:
        _spread(counts, others, left - estimate)
        left = estimate
    extras = solve([p_hat[i] for i in informative], left, min_n, max_n - min_n)
    for i, k in zip(informative, extras, strict=True):
        counts[i] += k
    return counts
