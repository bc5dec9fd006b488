"""Beyond the paper's allocation: sequential pilots and value-per-cost commits (pure).

Sequential pilot. The paper pilots every fresh prompt with the same n_pilot rollouts. Here the
pilot runs in stages of cumulative sizes s_1 < ... < s_m = n_pilot; after every stage but the
last, a prompt stops when its Beta posterior (prior Beta(a, b), k correct of n) puts its pass
rate outside the keep band with confidence >= 1 - delta:

    too easy:  P(p > keep_max | k, n) >= 1 - delta   (the delta-quantile is above the band)
    too hard:  P(p < keep_min | k, n) >= 1 - delta   (the (1 - delta)-quantile is below it)

i.e. the central interval [q_delta, q_{1-delta}] does not overlap [keep_min, keep_max]. With a
flat prior and 4 samples nothing is that certain (4/4 gives P(p > 0.75) = 0.76), so a prior fit
to the policy's pass rates (`fit_beta`, method of moments; pass rates of a trained policy pile up
at 0 and 1, a U-shaped Beta) is what lets 2 samples decide. A stopped prompt keeps its verdict
(too_easy / too_hard); the others go on to the next stage and get the paper's verdict at the
last.

Value-per-cost commit. The paper gives every kept prompt n_commit rollouts. Here a round's commit
budget, R = k * n_commit rollouts for its k taken prompts (or, in tokens, T = R * mean cost), is
split in proportion to value / cost with per-prompt bounds [lo, hi]:

    value_i = p_i (1 - p_i)   (Bernoulli variance of the pilot pass rate: how much a group of
                               this prompt's rollouts is expected to vary, i.e. carry advantage)
    cost_i  = mean completion tokens of its pilot (rollouts budget: 1 per rollout)

Shares are n_i = clip(lam * value_i / cost_i, lo, hi) with lam set so the budget is spent (water
filling), then rounded down and topped up by largest remainder without exceeding the budget.
With equal values and costs every prompt gets exactly n_commit: the paper's allocation.
"""

from __future__ import annotations

import numpy as np


def beta_cdf(x: float, a: float, b: float) -> float:
    """P(p <= x) for p ~ Beta(a, b) (regularized incomplete beta, mpmath: exact to 1e-15)."""
    from mpmath import betainc  # sympy's dependency, so math-verify brings it

    return float(betainc(a, b, 0, x, regularized=True))


def stop_verdicts(
    n_correct,
    n,
    keep_min: float,
    keep_max: float,
    delta: float,
    prior=(1.0, 1.0),
) -> np.ndarray:
    """Per prompt: "too_easy" / "too_hard" if its posterior is confidently outside the band,
    else "" (go on piloting). `prior` is one (a, b) for all prompts or one per prompt."""
    priors = [prior] * len(n) if np.ndim(prior) == 1 else list(prior)
    out = np.full(len(n), "", dtype=object)
    for i, (k, m, (a0, b0)) in enumerate(zip(n_correct, n, priors, strict=True)):
        a, b = a0 + k, b0 + m - k
        if 1.0 - beta_cdf(keep_max, a, b) >= 1.0 - delta:
            out[i] = "too_easy"
        elif beta_cdf(keep_min, a, b) >= 1.0 - delta:
            out[i] = "too_hard"
    return out


def explore_draw(verdict: np.ndarray, share: float, seed: int) -> np.ndarray:
    """Clear the stop verdict of a random `share` of the stopped prompts (pure, seeded)."""
    if share <= 0 or len(verdict) == 0:
        return verdict
    keep_going = np.random.default_rng(seed).random(len(verdict)) < share
    return np.where(keep_going, "", verdict).astype(object)


def fit_beta(pass_rates, ns=None, shrink: float = 1e-3) -> tuple[float, float]:
    """Method-of-moments Beta(a, b) for a set of pass rates (mean m, variance v):
    a + b = m (1 - m) / v - 1. Rates are pulled `shrink` away from 0 and 1 so that v < m (1 - m).

    With `ns` (the rollouts behind each rate), v is the variance of the true pass rates: the
    binomial noise of k/n is taken out, v = var(k/n) - mean(r (1 - r) / (n - 1)) (unbiased per
    rate). Without it, 2- and 4-sample pilots look far more all-or-nothing than the prompts
    are, and the prior stops prompts it should not."""
    raw = np.asarray(pass_rates, dtype=np.float64)
    if raw.size < 2:
        raise ValueError("fit_beta needs at least two pass rates")
    r = np.clip(raw, shrink, 1 - shrink)
    m, v = float(r.mean()), float(r.var())
    if ns is not None:
        n = np.asarray(ns, dtype=np.float64)
        noise = np.where(n > 1, raw * (1 - raw) / np.maximum(n - 1, 1), m * (1 - m))
        v -= float(noise.mean())
    if v <= 1e-9:
        raise ValueError("fit_beta: the pass rates are all equal (up to sampling noise)")
    total = m * (1 - m) / v - 1
    return m * total, (1 - m) * total


def _water_fill(
    weights: np.ndarray, units: np.ndarray, budget: float, lo: float, hi: float
) -> np.ndarray:
    """Real n_i = clip(lam * weights_i, lo, hi) with lam found by bisection so that
    sum(n * units) = budget (or as close as the bounds allow): proportional where no bound
    binds. The spend is monotone in lam, so bisection finds it."""

    def spend(lam: float) -> float:
        return float((np.clip(lam * weights, lo, hi) * units).sum())

    if spend(0.0) >= budget or not (weights > 0).any():
        return np.clip(np.zeros_like(weights), lo, hi)
    lam_hi = 1.0
    while spend(lam_hi) < budget and lam_hi < 1e12:
        lam_hi *= 2
    lam_lo = 0.0
    for _ in range(100):
        mid = (lam_lo + lam_hi) / 2
        lam_lo, lam_hi = (mid, lam_hi) if spend(mid) < budget else (lam_lo, mid)
    return np.clip(lam_lo * weights, lo, hi)


def commit_allocation(
    values, costs, budget: float, lo: int, hi: int, *, budget_in_tokens: bool = False
) -> np.ndarray:
    """Integer commit counts n_i in [lo, hi], n_i proportional to values_i / costs_i where no
    bound binds, spending at most `budget`: rollouts (sum n_i) or tokens (sum n_i * costs_i)."""
    values, costs = np.asarray(values, np.float64), np.asarray(costs, np.float64)
    if len(values) == 0:
        return np.zeros(0, dtype=np.int64)
    if lo > hi or lo < 0 or (costs <= 0).any() or (values < 0).any():
        raise ValueError("commit_allocation: need 0 <= lo <= hi, costs > 0 and values >= 0")
    units = costs if budget_in_tokens else np.ones_like(costs)
    if lo * units.sum() > budget + 1e-9:
        raise ValueError(f"commit_allocation: the minimum ({lo} each) exceeds the budget {budget}")
    real = _water_fill(values / costs, units, budget, lo, hi)
    n = np.clip(np.floor(real + 1e-9), lo, hi).astype(np.int64)
    left = budget - float((n * units).sum())
    for i in np.argsort(-(real - n), kind="stable"):  # largest remainder first, one each
        if n[i] < hi and units[i] <= left + 1e-9:
            n[i] += 1
            left -= units[i]
    return n
