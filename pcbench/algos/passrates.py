"""Pass-rate distributions: what a profile measures and what the plan computes from.

Pure math on counts (k correct of N rollouts per prompt), no state:

- `all_equal_share(k, N, n)`: the share of groups of n rollouts whose rewards are all equal, by
  exact subsampling arithmetic from one sample of N ≥ n per prompt: a group of n drawn without
  replacement from a prompt's N rollouts is all correct with probability C(k, n) / C(N, n) and
  all wrong with C(N − k, n) / C(N, n). Unbiased for E[p^n + (1 − p)^n] at every n ≤ N, with no
  model of p at all.
- `fit_mixture(k, N)`: the nonparametric maximum-likelihood pass-rate distribution (a mixture of
  point masses on a grid that includes 0 and 1, by EM on the binomial likelihoods): what the
  plan extrapolates from to group sizes above N.
- `Mixture`: that distribution, with the binomial sums the plan needs (mixed share at n,
  probability that a pilot of n lands in a band).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _log_choose(a, b) -> np.ndarray:
    """log C(a, b) for integer arrays 0 <= b <= a, from a table of log factorials."""
    a, b = np.asarray(a, int), np.asarray(b, int)
    top = int(a.max(initial=0))
    log_fact = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, top + 1)))])
    return log_fact[a] - log_fact[b] - log_fact[a - b]


def binomial_pmf(k, n, p) -> np.ndarray:
    """P(K = k) for K ~ Binomial(n, p), broadcast over arrays; exact at p = 0 and p = 1."""
    k, n, p = np.broadcast_arrays(np.asarray(k, int), np.asarray(n, int), np.asarray(p, float))
    with np.errstate(divide="ignore", invalid="ignore"):
        log = _log_choose(n, k) + np.where(k > 0, k * np.log(p), 0.0)
        log = log + np.where(n - k > 0, (n - k) * np.log1p(-p), 0.0)
    return np.exp(log)


def all_equal_share(k, N, n: int) -> float:
    """Share of groups of `n` rollouts with all-equal rewards, averaged over prompts, from each
    prompt's `k` correct of `N` (arrays; every N >= n). Exact: the hypergeometric chance that a
    subsample of n is all correct or all wrong."""
    k, N = np.asarray(k, int), np.asarray(N, int)
    if n < 1 or (N < n).any():
        raise ValueError(f"group size {n} needs every prompt sampled at least {n} times")
    total = _log_choose(N, np.full_like(N, n))
    right = np.where(k >= n, np.exp(_log_choose(np.maximum(k, n), np.full_like(k, n)) - total), 0)
    rest = np.maximum(N - k, n)
    wrong = np.where(N - k >= n, np.exp(_log_choose(rest, np.full_like(rest, n)) - total), 0)
    return float((right + wrong).mean())


@dataclass(frozen=True)
class Mixture:
    """A pass-rate distribution: `weights` on the pass rates `atoms` (summing to 1)."""

    atoms: tuple[float, ...]
    weights: tuple[float, ...]

    def __post_init__(self):
        if len(self.atoms) != len(self.weights) or not self.atoms:
            raise ValueError("a mixture needs one weight per atom, and at least one atom")
        if abs(sum(self.weights) - 1) > 1e-6 or min(self.weights) < 0:
            raise ValueError(f"mixture weights must be >= 0 and sum to 1, got {sum(self.weights)}")

    @property
    def p(self) -> np.ndarray:
        return np.asarray(self.atoms)

    @property
    def w(self) -> np.ndarray:
        return np.asarray(self.weights)

    def mean(self) -> float:
        return float(self.p @ self.w)

    def share(self, lo: float, hi: float) -> float:
        """Weight on pass rates in [lo, hi]."""
        return float(self.w[(self.p >= lo - 1e-12) & (self.p <= hi + 1e-12)].sum())

    def all_equal(self, n: int) -> float:
        """P(a group of n has all-equal rewards) = E[p^n + (1 − p)^n]."""
        return float(self.w @ (self.p**n + (1 - self.p) ** n))

    def mixed(self, n: int) -> float:
        return 1.0 - self.all_equal(n)

    def pilot_counts(self, n: int) -> np.ndarray:
        """P(k correct of a pilot of n), k = 0..n: the binomial mixed over the pass rates."""
        return binomial_pmf(np.arange(n + 1)[:, None], n, self.p[None, :]) @ self.w

    def in_band(self, n: int, lo: float, hi: float) -> float:
        """P(lo <= k / n <= hi) for a pilot of n (the keep verdict, 1e-9 of slack as the code)."""
        k = np.arange(n + 1) / n
        return float(self.pilot_counts(n)[(k >= lo - 1e-9) & (k <= hi + 1e-9)].sum())

    def given_band(self, n: int, lo: float, hi: float) -> Mixture:
        """The pass-rate distribution of prompts whose pilot of n landed in [lo, hi] (Bayes)."""
        k = np.arange(n + 1)
        ok = (k / n >= lo - 1e-9) & (k / n <= hi + 1e-9)
        like = binomial_pmf(k[ok][:, None], n, self.p[None, :]).sum(axis=0) * self.w
        if like.sum() <= 0:
            raise ValueError(f"no prompt's pilot of {n} lands in [{lo}, {hi}]")
        return Mixture(self.atoms, tuple(like / like.sum()))


def fit_mixture(k, N, grid: int = 101, iterations: int = 2000, tol: float = 1e-10) -> Mixture:
    """The nonparametric MLE of the pass-rate distribution behind counts `k` of `N` (arrays,
    N may differ per prompt): weights on `grid` evenly spaced pass rates from 0 to 1, by EM.
    Point masses at exactly 0 and 1 are on the grid, so never-solved and always-solved prompts
    are represented as such, not smeared into the band."""
    k, N = np.asarray(k, int), np.asarray(N, int)
    if k.size == 0 or (k < 0).any() or (k > N).any():
        raise ValueError("counts must be 0 <= k <= N, and at least one prompt")
    atoms = np.linspace(0.0, 1.0, grid)
    like = binomial_pmf(k[:, None], N[:, None], atoms[None, :])  # prompts x atoms
    w = np.full(grid, 1.0 / grid)
    for _ in range(iterations):
        joint = like * w
        post = joint / joint.sum(axis=1, keepdims=True)
        new = post.mean(axis=0)
        if np.abs(new - w).max() < tol:
            w = new
            break
        w = new
    w = np.where(w < 1e-9, 0.0, w)
    return Mixture(tuple(atoms.tolist()), tuple((w / w.sum()).tolist()))
