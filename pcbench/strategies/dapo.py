"""DAPO's dynamic sampling: rounds of G fresh prompts x n; groups whose rewards differ fill B,
the surplus and the all-equal groups are discarded (their rollouts stay paid for)."""

from __future__ import annotations

import polars as pl

from pcbench import accounting
from pcbench.steps import score
from pcbench.steps.batch import generate_counted, keep_informative, max_rounds_reached, train_on
from pcbench.strategies.registry import Strategy, register


@register("dapo")
class DAPO(Strategy):
    phases = ("dapo",)
    unselected_phases = ("dapo",)
    allocation = {
        "filtering_stats/dapo_kept": "kept",
        "filtering_stats/dapo_discarded": "all-equal (discarded)",
        "filtering_stats/dapo_surplus": "surplus (discarded)",
    }

    def step(self, s, cfg, step):
        kept: list[pl.DataFrame] = []
        for r in range(1, cfg.max_rounds + 1):
            pool = s.stream.next_pool(cfg.pool_prompts)
            if pool is None:
                return None
            rollouts = generate_counted(s, cfg, step, r, pool, "dapo")
            scores = score(rollouts, cfg)
            room = cfg.batch_prompts - len(kept)
            informative = keep_informative(kept, rollouts, scores, room)
            accounting.count_dynamic_filter(
                s.ledger, step, "dapo", scores.height, informative, room
            )
            if len(kept) >= cfg.batch_prompts:
                break
        else:
            max_rounds_reached(s, cfg, step, len(kept))
        return train_on(s, cfg, step, pl.concat(kept)) if kept else {}

    def rollouts_per_step(self, cfg, rounds=1.0):
        return rounds * cfg.pool_prompts * cfg.group_size

    def budget_violations(self, cfg, col):
        return accounting.dynamic_filter_violations(cfg, col, "dapo")

    def epoch_need(self, cfg):
        return cfg.pool_prompts, f"one pool of pool_prompts = {cfg.pool_prompts}"
