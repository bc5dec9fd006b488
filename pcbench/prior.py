"""PassRatePrior: the sequential pilot's online Beta prior, per bucket of prompts (state).

It remembers the last `window` pilot pass rates (with their rollout counts) of each bucket (a PROMPTS column such as
`difficulty`; prompts with no value share one bucket) and gives a new prompt of that bucket the
method-of-moments Beta fit of them, binomial noise of small pilots taken out
(`algos.allocation.fit_beta`). A bucket with fewer than
`min_count` rates, or whose rates leave no usable fit, gets the flat prior Beta(1, 1), which can
never stop a prompt before it is piloted. The policy changes as it trains; the window keeps the
prior recent. Part of the checkpoint, so resume is exact.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from pcbench.algos.allocation import fit_beta

FLAT = (1.0, 1.0)
NO_BUCKET = "*"


class PassRatePrior:
    def __init__(self, window: int = 256, min_count: int = 32):
        self.window, self.min_count = window, min_count
        self.rates: dict[str, deque] = {}

    @staticmethod
    def bucket(value) -> str:
        return NO_BUCKET if value is None else str(value)

    def observe(self, buckets, rates, ns=None) -> None:
        """Remember pass rates (k / n) by bucket; `ns` (rollouts behind each rate) lets the fit
        take the binomial noise of small pilots out (None: rates measured exactly)."""
        ns = [0] * len(rates) if ns is None else ns
        for b, r, n in zip(buckets, rates, ns, strict=True):
            self.rates.setdefault(self.bucket(b), deque(maxlen=self.window)).append(
                (float(r), int(n))
            )

    def prior(self, bucket) -> tuple[float, float]:
        seen = self.rates.get(self.bucket(bucket), ())
        if len(seen) < self.min_count:
            return FLAT
        r, n = (np.asarray(x) for x in zip(*seen, strict=True))
        # rates all 0 or all 1 fit a point mass: cap a + b at the number of rates behind the
        # fit, so the prior is never surer than its evidence
        cap = float(len(r))
        m = float(np.clip(r.mean(), 1e-3, 1 - 1e-3))
        try:
            a, b = fit_beta(r, None if (n == 0).all() else np.where(n == 0, 10**6, n))
        except ValueError:  # all rates equal (up to noise): as sure as the evidence allows
            return m * cap, (1 - m) * cap
        total = min(a + b, cap)
        return m * total, (1 - m) * total

    def priors(self, buckets) -> list[tuple[float, float]]:
        """One fit per distinct bucket, not per prompt."""
        buckets = list(buckets)
        fits = {b: self.prior(b) for b in set(map(self.bucket, buckets))}
        return [fits[self.bucket(b)] for b in buckets]

    # ---- the state protocol (state_dict / load_state_dict, as torch) ----------------------
    def state_dict(self) -> dict:
        return {"window": self.window, "min_count": self.min_count,
                "rates": {k: list(v) for k, v in self.rates.items()}}  # fmt: skip

    def load_state_dict(self, state: dict) -> None:
        self.window, self.min_count = state["window"], state["min_count"]
        self.rates = {
            k: deque((tuple(x) for x in v), maxlen=self.window) for k, v in state["rates"].items()
        }

    def __repr__(self) -> str:
        sizes = {k: len(v) for k, v in sorted(self.rates.items())}
        return f"PassRatePrior(window={self.window}, min_count={self.min_count}, rates={sizes})"
