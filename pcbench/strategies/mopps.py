"""MoPPS (arXiv 2507.04632, github.com/thu-rllab/MoPPS): of ratio x B candidates, the B whose
Thompson draw from their Beta posterior is nearest 0.5 (or inside a band) get n rollouts each,
all trained on; then every rolled-out prompt's posterior takes its successes and failures.

The rules are pure functions in pcbench.algos.mopps; the posteriors live on
`State.prompt_state` (pcbench.prompt_state.MoppsPosteriors). Draws are seeded by (run seed,
step), so a retried or resumed step makes the same ones. Its math runs use B = 256 x n = 8 and
16 B candidates: here B 8 x n 16, 16 B candidates (the ratio kept).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pcbench.algos import mopps
from pcbench.config import require
from pcbench.prompt_state import MoppsPosteriors
from pcbench.steps import call_seed, score
from pcbench.steps.batch import generate_counted, train_on
from pcbench.strategies.registry import Strategy, register

THOMPSON_SALT = 2  # its draws differ from the engine call's of the same round (and GRESO's)
MOPPS_SELECTIONS = ("topk", "band")


@dataclass(frozen=True)
class MoppsConfig:
    candidate_ratio: float = 16.0  # candidates per step = ratio x B, B selected (ts_ratio; math 16)
    selection: str = "topk"  # topk: draws nearest 0.5 | band: draws inside `band` (threshold)
    band: tuple[float, float] = (0.3, 0.7)  # selection = band: the draws it prefers
    decay: float = 1.0  # lambda: 1 keeps all evidence (math); 0.5 on countdown / geo3k
    prior: tuple[float, float] = (1.0, 1.0)  # Beta(alpha0, beta0) of a prompt never rolled out

    def __post_init__(self):
        require(
            self.candidate_ratio >= 1,
            f"mopps.candidate_ratio = {self.candidate_ratio}: must be >= 1 (B of ratio x B "
            "candidates are selected)",
        )
        require(
            self.selection in MOPPS_SELECTIONS,
            f"mopps.selection = {self.selection!r}: use one of {MOPPS_SELECTIONS}",
        )
        lo, hi = self.band
        require(0 <= lo < hi <= 1, f"mopps.band = {list(self.band)}: need 0 <= low < high <= 1")
        require(0 <= self.decay <= 1, f"mopps.decay = {self.decay}: must be in [0, 1]")
        require(all(x > 0 for x in self.prior), f"mopps.prior = {list(self.prior)}: both > 0")

    def candidates(self, batch_prompts: int) -> int:
        return int(self.candidate_ratio * batch_prompts)


@register("mopps")
class MoPPS(Strategy):
    phases = ("mopps",)
    unselected_phases = ("mopps",)
    table = MoppsConfig
    allocation = {
        "filtering_stats/mopps_selected": "selected (all trained)",
        "filtering_stats/mopps_passed_over": "candidates passed over",
    }

    def step(self, s, cfg, step):
        mc, posteriors = cfg.mopps, s.prompt_state
        candidates = s.stream.next_pool(mc.candidates(cfg.batch_prompts))
        if candidates is None:
            return None
        rng = np.random.default_rng(call_seed(cfg.seed, step, 1, THOMPSON_SALT))
        band = mc.band if mc.selection == "band" else None
        chosen = mopps.select(
            *posteriors.get(candidates["prompt_id"]), cfg.batch_prompts, rng, band
        )
        pool = candidates[np.sort(chosen)]  # in stream order
        rollouts = generate_counted(s, cfg, step, 1, pool, "mopps")
        scores = score(rollouts, cfg)
        posteriors.observe(scores["prompt_id"], scores["n_correct"], scores["n"], mc.decay)
        s.ledger.add(step, "filtering_stats/mopps_selected", len(chosen))
        s.ledger.add(step, "filtering_stats/mopps_passed_over", candidates.height - len(chosen))
        return train_on(s, cfg, step, rollouts)

    def rollouts_per_step(self, cfg, rounds=1.0):
        return cfg.batch_prompts * cfg.group_size

    def budget_violations(self, cfg, col):
        B, n, out = cfg.batch_prompts, cfg.group_size, []
        if not (col("rollout_stats/mopps") == B * n).all():
            out.append("mopps did not spend exactly B x n rollouts each step")
        if not (col("filtering_stats/mopps_selected") == B).all():
            out.append("MoPPS did not select B prompts each step")
        return out

    def epoch_need(self, cfg):
        k = cfg.mopps.candidates(cfg.batch_prompts)
        return k, f"one set of mopps.candidate_ratio x batch_prompts = {k} candidates"

    def new_prompt_state(self, cfg):
        return MoppsPosteriors(cfg.mopps.prior)
