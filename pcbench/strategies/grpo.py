"""GRPO: B fresh prompts x n rollouts a step, every group trained on (no filtering)."""

from __future__ import annotations

from pcbench.steps.batch import generate_counted, train_on
from pcbench.strategies.registry import Strategy, register


@register("grpo")
class GRPO(Strategy):
    phases = ("grpo",)
    unselected_phases = ("grpo",)
    allocation = {"filtering_stats/trained_prompts": "trained"}

    def step(self, s, cfg, step):
        pool = s.stream.next_pool(cfg.batch_prompts)
        if pool is None:
            return None
        rollouts = generate_counted(s, cfg, step, 1, pool, "grpo")
        return train_on(s, cfg, step, rollouts)

    def rollouts_per_step(self, cfg, rounds=1.0):
        return cfg.batch_prompts * cfg.group_size

    def budget_violations(self, cfg, col):
        if not (col("rollout_stats/grpo") == cfg.batch_prompts * cfg.group_size).all():
            return ["GRPO did not generate exactly B x n rollouts each step"]
        return []
