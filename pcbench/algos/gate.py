"""The history gate: which prompts of a fresh pool Pilot-Commit pilots at all (pcbench's own
combination of GRESO's pre-rollout skip and MoPPS's posteriors with Pilot-Commit's band), pure.

Each prompt keeps a Beta(alpha, beta) posterior of its success rate from every rollout it has had
(pilots and commits; MoPPS's update with lambda = 1, `algos.mopps.update_posterior`). When a prompt comes up
in a fresh pool:

- a prompt never rolled out is piloted (GRESO never skips one it has not seen);
- one seen before is piloted iff a draw r ~ Beta(alpha, beta) lies in the keep band
  [keep_min, keep_max] its pilot must then pass; a draw above the band skips it as likely too
  easy, one below as likely too hard, for this epoch, at no rollout cost.

Thompson sampling makes a seen prompt's skip probability its posterior mass outside the band
(for Beta(a, 1), 1 - hi^a + lo^a): it grows with the evidence and never reaches 1, so a prompt written off
is looked at again now and then and can come back as the policy changes. That is what replaces
Pilot-Commit's eviction (permanent, from one all-correct pilot) in configs that use the gate.
"""

from __future__ import annotations

import numpy as np

PILOT, SKIP_EASY, SKIP_HARD = 0, 1, -1


def decide(
    alpha: np.ndarray, beta: np.ndarray, seen: np.ndarray, band: tuple[float, float],
    rng: np.random.Generator,
) -> np.ndarray:  # fmt: skip
    """PILOT, SKIP_EASY or SKIP_HARD for each prompt (one draw per prompt, unseen ones too, so
    the draws a prompt gets do not depend on which others were seen)."""
    lo, hi = band
    draws = rng.beta(np.asarray(alpha, float), np.asarray(beta, float))
    out = np.where(draws > hi, SKIP_EASY, np.where(draws < lo, SKIP_HARD, PILOT))
    return np.where(np.asarray(seen, bool), out, PILOT)
