"""MoPPS's model-predictive prompt selection (arXiv 2507.04632; thu-rllab/MoPPS), pure rules.

Each prompt's success rate has a Beta(alpha, beta) posterior, starting at the prior (1, 1) the
first time the prompt is a candidate. A step takes ratio x B candidates (the next chunk of a
shuffled epoch), draws r_i ~ Beta(alpha_i, beta_i) for each (Thompson sampling) and keeps the B
whose draw is closest to 0.5 (`topk`); the band variant keeps B at random from those drawn in
[0.3, 0.7], or, with fewer inside, all of them plus the nearest outside. Only the kept prompts
are rolled out (n each), and all of their groups are trained on; no pilot rollouts. Then, with
s the success share of a kept prompt over its n rollouts and decay lam (1 on math: none):

    alpha <- lam alpha + (1 - lam) alpha0 + s n
    beta  <- lam beta  + (1 - lam) beta0  + (1 - s) n

Deviations: none in the rules. (The official update reads `... + s*n if n > 1 else 8`, which
Python parses as a constant 8 for n = 1; the README's intended form is used, identical for n > 1.)
"""

from __future__ import annotations

import numpy as np

PRIOR = (1.0, 1.0)
TARGET = 0.5
BAND = (0.3, 0.7)


def select(
    alpha: np.ndarray, beta: np.ndarray, keep: int, rng: np.random.Generator,
    band: tuple[float, float] | None = None,
) -> np.ndarray:  # fmt: skip
    """Indices of the `keep` candidates to roll out: Thompson draws nearest 0.5 (band=None),
    or the band variant."""
    if keep > len(alpha):
        raise ValueError(f"keep {keep} of {len(alpha)} candidates: draw more candidates")
    draws = rng.beta(alpha, beta)
    if band is None:
        return np.argsort((draws - TARGET) ** 2, kind="stable")[:keep]
    lo, hi = band
    inside = (draws >= lo) & (draws <= hi)
    if inside.sum() >= keep:
        return rng.permutation(np.flatnonzero(inside))[:keep]
    distance = np.where(inside, 0.0, np.where(draws < lo, lo - draws, draws - hi))
    return np.argsort(distance, kind="stable")[:keep]


def update_posterior(
    alpha: np.ndarray, beta: np.ndarray, successes: np.ndarray, n: np.ndarray, lam: float = 1.0,
    prior: tuple[float, float] = PRIOR,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The posteriors after observing `successes` of `n` rollouts per prompt."""
    successes, n = np.asarray(successes, float), np.asarray(n, float)
    return (
        lam * np.asarray(alpha, float) + (1 - lam) * prior[0] + successes,
        lam * np.asarray(beta, float) + (1 - lam) * prior[1] + (n - successes),
    )
