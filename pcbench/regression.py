"""The regression checks notebook 03 runs in CI, as functions over run directories.

Each returns what it found rather than asserting, so the notebook states the verdicts and
fails on them, and a test can call the same code:

    ledger_violations(run)        accounting invariants of one run's ledger (what must hold by
                                  construction: a broken one means the counting is wrong),
                                  each strategy's own budget identity included
    mechanism_violations(table)   seeds where Pilot-Commit spent no fewer generated rollouts
                                  per informative trained rollout than GRPO (the mechanism)
    cost_verdicts(table, ...)     per seed: is the GRPO target above noise, did GRPO peak inside
                                  the run, and did Pilot-Commit reach it within the tolerance
"""

from __future__ import annotations

import polars as pl

from pcbench.ledger import is_paid
from pcbench.results import first_of_seed
from pcbench.run import Run
from pcbench.strategies import registry


def ledger_violations(run: Run) -> list[str]:
    """The accounting invariants `run`'s ledger breaks (empty: none): the ones every strategy
    keeps, then its own budget identity (`Strategy.budget_violations`)."""
    cfg, ledger = run.config, run.ledger().filter(pl.col("step") > 0)
    col = lambda name: ledger[name] if name in ledger.columns else pl.Series([0.0] * ledger.height)  # noqa: E731
    n, B, out = cfg.group_size, cfg.batch_prompts, []
    strategy = registry.get(cfg.strategy)
    if ledger.height != cfg.steps:
        out.append(f"{ledger.height} ledger rows for {cfg.steps} steps")
    generated = sum(col(c) for c in ledger.columns if is_paid(c) and c.startswith("rollout_stats/"))
    if not (ledger["cumulative/rollouts"] == generated.cum_sum()).all():
        out.append("cumulative rollouts are not the sum of generated rollouts")
    partial = "partial_batch" in ledger.columns and (ledger["partial_batch"] > 0).any()
    if not partial and not (col("filtering_stats/trained_prompts") == B).all():
        out.append(f"a batch without {B} prompts")
    exact = strategy.trains_b_by_n(cfg)
    if not partial and exact and not (col("rollout_stats/trained") == B * n).all():
        out.append(f"a trained prompt without {n} rollouts")
    if col("verifier/error_rate").max() > 0:
        out.append(f"verifier errors (max rate {col('verifier/error_rate').max():.3f})")
    return out + strategy.budget_violations(cfg, col)


def cost_verdicts(
    table: pl.DataFrame, *, tolerance: float, require_signal: bool, variant: str = "pc"
) -> dict[int, str]:
    """Per seed of `table` (`results.measure` rows with a GRPO run and `variant`), one verdict:

    - "no signal": GRPO's target is within one paired SE of step 0 (an error when
      `require_signal`): every cost below it would compare noise;
    - "GRPO still climbing": its peak is its last evaluation, so "rollouts to target" would
      measure the price of a step, not rollouts to a plateau: costs not compared;
    - "PC within tolerance": `variant` reached the target within (1 + tolerance) x GRPO's
      rollouts; anything else raises AssertionError with both costs."""
    out = {}
    for seed, g, p in _pairs(table, variant):
        why = (f"GRPO's target beats step 0 by {g['target_gain']:+.4f}; the evaluation's paired "
               f"standard error is {g['target_se']:.4f}")  # fmt: skip
        if not g["target_gain"] > g["target_se"]:
            if require_signal:
                raise AssertionError(f"seed {seed}: no signal to compare costs on: {why}")
            out[seed] = f"no signal ({why}): costs not compared"
        elif g["target_censored"]:
            out[seed] = (f"GRPO still climbing at its last evaluation (step {g['steps']}; {why}): "
                         "costs not compared, run the default length for them")  # fmt: skip
        else:
            budget = (1 + tolerance) * g["rollouts_to_target"]
            if p["rollouts_to_target"] is None or p["rollouts_to_target"] > budget:
                raise AssertionError(
                    f"seed {seed}: PC needed {p['rollouts_to_target']} rollouts to the GRPO "
                    f"target, GRPO {g['rollouts_to_target']} (tolerance {tolerance:.0%})"
                )
            out[seed] = f"PC within tolerance ({why})"
    return out


def mechanism_violations(table: pl.DataFrame, variant: str = "pc") -> list[str]:
    """Seeds where `variant` spent at least as many generated rollouts per informative trained
    rollout (non-zero advantage) as GRPO: the one thing Pilot-Commit exists to improve."""
    out = []
    for seed, grpo, pc in _pairs(table, variant):
        g, p = grpo["per_informative"], pc["per_informative"]
        if g is None or p is None or not p < g:
            out.append(f"seed {seed}: {variant} spends {p} rollouts per informative one, "
                       f"GRPO {g}")  # fmt: skip
    return out


def _pairs(table: pl.DataFrame, variant: str):
    """(seed, GRPO row, `variant` row) per seed that has both, by results.first_of_seed."""
    grpo = {r["seed"]: r for r in first_of_seed(table, pl.col("strategy") == "grpo").to_dicts()}
    mine = {r["seed"]: r for r in first_of_seed(table, pl.col("variant") == variant).to_dicts()}
    for seed in sorted(grpo.keys() & mine.keys()):
        yield seed, grpo[seed], mine[seed]
