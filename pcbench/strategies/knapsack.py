"""Knapsack-RL (arXiv 2509.25849, github.com/liziniu/KnapsackRL): B fresh prompts share B x n
rollouts by their estimated success rates; every group is trained on (groups differ in size;
advantages are per prompt).

The allocation is pure (pcbench.algos.knapsack, matched to the public code's on 106 batches:
tests/golden/); each prompt's recent rewards live on `State.prompt_state`
(pcbench.prompt_state.KnapsackRewards). Probabilities and counts that set an estimate's
precision (the 16-reward window, the 2-rollout floor, the 128 cap) are kept as published.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from pcbench.algos import knapsack
from pcbench.config import positive, require
from pcbench.prompt_state import KnapsackRewards
from pcbench.steps.batch import generate_counted, train_on
from pcbench.strategies.registry import Strategy, register


@dataclass(frozen=True)
class KnapsackConfig:
    min_n: int = 2  # rollouts of a prompt with 0 < p < 1 before its DP extra (MIN_N)
    max_n: int = 128  # most rollouts the DP gives one prompt (MAX_N)
    negative_n: int = 2  # rollouts of a prompt estimated p = 0 (NEGATIVE_N)
    positive_n: int = 2  # rollouts of a prompt estimated p = 1 (POSITIVE_N)
    alpha: float = 0.9  # cost cap: samples to see both outcomes with this probability
    window: int = 16  # p = mean of the last this many rewards (reward_buffer_length)
    known_after: int = 8  # rewards seen before p counts; till then n (min_buffer_length)

    def __post_init__(self):
        for name in ("min_n", "negative_n", "positive_n"):
            value = getattr(self, name)
            require(
                value >= 2,
                f"knapsack.{name} = {value}: must be >= 2 (a group of one has no baseline: its "
                "advantage is 0)",
            )
        require(
            self.max_n >= self.min_n,
            f"knapsack.max_n = {self.max_n} < min_n = {self.min_n}: raise max_n",
        )
        require(0 < self.alpha < 1, f"knapsack.alpha = {self.alpha}: must be in (0, 1)")
        positive(self, "window", "known_after")


@register("knapsack")
class KnapsackRL(Strategy):
    phases = ("knapsack",)
    unselected_phases = ("knapsack",)
    table = KnapsackConfig
    allocation = {
        "filtering_stats/knapsack_informative": "0 < p < 1 (DP extras)",
        "filtering_stats/knapsack_unknown": "not known yet (n each)",
        "filtering_stats/knapsack_hard": "p = 0",
        "filtering_stats/knapsack_easy": "p = 1",
    }

    def step(self, s, cfg, step):
        kc, rewards = cfg.knapsack, s.prompt_state
        pool = s.stream.next_pool(cfg.batch_prompts)
        if pool is None:
            return None
        p_hat = rewards.estimates(pool["prompt_id"])
        counts = knapsack.allocate(
            p_hat, cfg.group_size, min_n=kc.min_n, max_n=kc.max_n, alpha=kc.alpha,
            negative_n=kc.negative_n, positive_n=kc.positive_n,
        )  # fmt: skip
        rollouts = generate_counted(s, cfg, step, 1, pool, "knapsack", counts)
        visits = rollouts.group_by("prompt_id", maintain_order=True).agg(
            pl.col("correct").fill_null(False).cast(pl.Float64)
        )
        rewards.observe(visits["prompt_id"], visits["correct"].to_list())
        _count_split(s.ledger, step, p_hat)
        return train_on(s, cfg, step, rollouts)

    def rollouts_per_step(self, cfg, rounds=1.0):  # B x n, split unevenly
        return cfg.batch_prompts * cfg.group_size

    def budget_violations(self, cfg, col):
        B, n, out = cfg.batch_prompts, cfg.group_size, []
        if not (col("rollout_stats/knapsack") == B * n).all():
            out.append("knapsack did not spend exactly B x n rollouts each step")
        kinds = ("unknown", "informative", "hard", "easy")
        if not (sum(col(f"filtering_stats/knapsack_{k}") for k in kinds) == B).all():
            out.append("Knapsack-RL's prompts by estimate do not add up to B")
        return out

    def validate(self, cfg):
        k, n = cfg.knapsack, cfg.group_size  # unknown prompts get n: the split must fit B x n
        require(
            max(k.min_n, k.negative_n, k.positive_n) <= n,
            f"knapsack min_n / negative_n / positive_n ({k.min_n} / {k.negative_n} / "
            f"{k.positive_n}) exceed the group size n = {n} (n_pilot + n_commit): the budget "
            "B x n could not pay for them; lower them or raise the group size",
        )

    def new_prompt_state(self, cfg):
        return KnapsackRewards(cfg.knapsack.window, cfg.knapsack.known_after)


def _count_split(ledger, step: int, p_hat: list[float | None]) -> None:
    """The prompts of a step by estimate: not known yet (n each), 0 < p < 1 (the DP's extras),
    p = 0 and p = 1."""
    known = [p for p in p_hat if p is not None]
    ledger.add(step, "filtering_stats/knapsack_unknown", len(p_hat) - len(known))
    ledger.add(step, "filtering_stats/knapsack_informative", sum(0 < p < 1 for p in known))
    ledger.add(step, "filtering_stats/knapsack_hard", sum(p <= 0 for p in known))
    ledger.add(step, "filtering_stats/knapsack_easy", sum(p >= 1 for p in known))
