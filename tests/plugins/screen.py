"""A strategy defined outside the library (issue 32's "must show"): SPEED-RL-style screening.

Each round screens G fresh prompts with a few rollouts; only prompts whose screening rewards
differ get the rest of their group, until B are trained. A config names this file in its
`plugins`, so `pcbench run` and `--resume` find the strategy without pcbench knowing it.
"""

from dataclasses import dataclass

import polars as pl

from pcbench import strategies
from pcbench.steps import score
from pcbench.steps.batch import generate_counted, max_rounds_reached, train_on


@dataclass(frozen=True)
class ScreenConfig:
    n_screen: int = 4  # screening rollouts per prompt; the rest of the group n follows


@strategies.register("screen")
class Screen(strategies.Strategy):
    phases = ("screen", "continue")
    table = ScreenConfig
    allocation = {
        "filtering_stats/screen_passed": "mixed: continued",
        "filtering_stats/screen_surplus": "mixed: no room",
        "filtering_stats/screen_equal": "all-equal: dropped",
    }

    def step(self, s, cfg, step):
        kept, k, B = [], cfg.screen.n_screen, cfg.batch_prompts
        for r in range(1, cfg.max_rounds + 1):
            pool = s.stream.next_pool(cfg.pool_prompts)
            if pool is None:
                return None
            screened = generate_counted(s, cfg, step, r, pool, "screen", k)
            mixed = score(screened, cfg).filter(pl.col("std") > 0)["prompt_id"].to_list()
            go_on = pool.filter(pl.col("prompt_id").is_in(mixed[: B - len(kept)]))
            if go_on.height:
                rest = generate_counted(s, cfg, step, r, go_on, "continue", cfg.group_size - k,
                                        salt=1)  # fmt: skip
                groups = pl.concat([screened, rest])
                kept += [groups.filter(pl.col("prompt_id") == p) for p in go_on["prompt_id"]]
            for what, count in [("passed", go_on.height), ("surplus", len(mixed) - go_on.height),
                                ("equal", pool.height - len(mixed))]:  # fmt: skip
                s.ledger.add(step, f"filtering_stats/screen_{what}", count)
            if len(kept) >= B:
                break
        else:
            max_rounds_reached(s, cfg, step, len(kept))
        return train_on(s, cfg, step, pl.concat(kept)) if kept else {}

    def rollouts_per_step(self, cfg, rounds=1.0):
        k = cfg.screen.n_screen
        return rounds * cfg.pool_prompts * k + cfg.batch_prompts * (cfg.group_size - k)

    def budget_violations(self, cfg, col):
        k, n, out = cfg.screen.n_screen, cfg.group_size, []
        screened = sum(col(f"filtering_stats/screen_{w}") for w in ("passed", "surplus", "equal"))
        if not (col("rollout_stats/screen") == screened * k).all():
            out.append("screening rollouts are not n_screen x screened prompts")
        if not (
            col("rollout_stats/continue") == col("filtering_stats/screen_passed") * (n - k)
        ).all():
            out.append("continued rollouts are not (n - n_screen) x continued prompts")
        return out

    def epoch_need(self, cfg):
        return cfg.pool_prompts, f"one pool of pool_prompts = {cfg.pool_prompts}"
