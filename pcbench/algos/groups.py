"""Per-prompt group statistics and the Pilot-Commit verdict.

A prompt's pilot group is a set of binary correctness values. Its statistics are the ones the
official recipe filters on: the mean correctness a and the population std sqrt(a(1 - a)).

Verdict (DESIGN §4.4, official `recipe/pc/` filter):
    keep      keep_min <= a <= keep_max      -> enters the buffer, gets committed
    too_easy  a > keep_max                   -> skipped this epoch
    too_hard  a < keep_min                   -> deferred to the next epoch
    evict     a >= evict_at (flag, any verdict) -> removed from later epochs at epoch end
Official names: diversity_threshold_lower = keep_min, diversity_threshold_upper = 1 - keep_max
(the code skips when a > 1 - diversity_threshold_upper), exclude_threshold_upper = evict_at.

Comparisons allow EPS of slack so that a threshold written in decimal (0.1) still keeps a mean
computed as a ratio (3/30) that equals it mathematically.
"""

from __future__ import annotations

import numpy as np

EPS = 1e-9


def group_stats(correct: np.ndarray, group: np.ndarray) -> dict[str, np.ndarray]:
    """n, n_correct, mean, var, std (population, ddof 0) per group id, groups in sorted order.

    correct: (N,) 0/1 values; group: (N,) integer group index of each value.
    """
    correct = np.asarray(correct, dtype=np.float64)
    ids, inverse = np.unique(np.asarray(group), return_inverse=True)
    n = np.bincount(inverse, minlength=len(ids)).astype(np.int64)
    n_correct = np.bincount(inverse, weights=correct, minlength=len(ids))
    mean = n_correct / np.maximum(n, 1)
    # Binary values: population variance is exactly a(1 - a); this keeps equal counts tied
    # bit-for-bit, which the max_std buffer order relies on.
    var = mean * (1.0 - mean)
    return {
        "group": ids,
        "n": n,
        "n_correct": np.rint(n_correct).astype(np.int64),
        "mean": mean,
        "var": var,
        "std": np.sqrt(var),
    }


def verdicts(
    mean: np.ndarray, keep_min: float, keep_max: float, evict_at: float
) -> tuple[np.ndarray, np.ndarray]:
    """(verdict strings, evict flags) for pilot mean correctness values."""
    mean = np.asarray(mean, dtype=np.float64)
    verdict = np.where(
        mean > keep_max + EPS, "too_easy", np.where(mean < keep_min - EPS, "too_hard", "keep")
    )
    evict = mean >= evict_at - EPS
    return verdict.astype(object), evict
