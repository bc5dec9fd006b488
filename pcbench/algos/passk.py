"""Unbiased pass@k and mean@k from n samples of which c are correct (Chen et al., 2021).

pass@k = 1 - C(n - c, k) / C(n, k), computed as a product so large n never overflows.
mean@k = c / n, the expected accuracy of one sample (reported over k samples per prompt).
"""

from __future__ import annotations

import numpy as np


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn without replacement is correct."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def mean_at_k(n: int, c: int) -> float:
    if not 0 <= c <= n or n < 1:
        raise ValueError(f"mean@k needs 0 <= c <= n and n >= 1, got n={n}, c={c}")
    return c / n
