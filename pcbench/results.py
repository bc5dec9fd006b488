"""Comparing runs, used by `pcbench compare`, `pcbench report`, `pcbench experiment`, the plan's
validation and the notebooks. One run's own numbers are pcbench.analysis'; text is
pcbench.tables'.

`measure(runs)` gives one row per run against its seed's target (DESIGN §4 per seed): the peak
of that seed's reference GRPO run (`first_of_seed`: the first GRPO run of the seed, in the
order given) read by a `Crossing` rule (analysis: raw evaluations, the crossing interpolated,
by default; or one given target for every run). Costs to target are cumulative training
rollouts, tokens and seconds where the run reaches it (`analysis.to_target`); ratios
`x_vs_grpo`, `x_vs_dapo`, `x_vs_pc` are per seed (the baseline's rollouts to target ÷ this
run's; > 1: this run is cheaper), where both reached it, the baseline chosen by the same rule.
`summarize` folds seeds per variant with bootstrap intervals, `mean_curves` averages curves over
seeds, `predicted_vs_measured` sets the plan's predictions beside what runs measured. Runs are
read from their directories only (no model).
"""

from __future__ import annotations

import re

import polars as pl

from pcbench.analysis import (
    INTERPOLATED,
    MECHANISM,
    Crossing,
    accuracy_curve,
    informative_rollouts,
    mechanism,
    pass_rate_spend,
    per_informative,
    target_signal,
    to_target,
)
from pcbench.run import Run, totals
from pcbench.tables import RATIOS

__all__ = ["bootstrap_interval", "first_of_seed", "measure", "mean_curves",
           "predicted_vs_measured", "rollouts_by_phase", "spend_by_pass_rate", "summarize",
           "variant_name"]  # fmt: skip
PAPER_PC = "pc"  # the variant `x_vs_pc` is measured against (the paper preset's runs)
_SEED_SUFFIX = re.compile(r"-s\d+$")


def variant_name(run: Run) -> str:
    """A run's variant: its name without the `-s<seed>` suffix experiments give it."""
    return _SEED_SUFFIX.sub("", run.name)


def measure(
    runs: list[Run], *, crossing: Crossing = INTERPOLATED, target: float | None = None,
    labels: dict[str, str] | None = None, benchmark: str | None = None,
) -> pl.DataFrame:  # fmt: skip
    """One row per run: its seed's target (that target's paired gain and SE, its evaluation's
    SE, whether it is censored at GRPO's last evaluation), costs to it (rollouts with the
    crossing's ± z SE reading), accuracy, rollouts per informative rollout, where its pilots
    went, and per-seed ratios."""
    labels, smooth = labels or {}, crossing.smooth
    configs = {r.path: r.config for r in runs}  # each run's config.json, read once
    signals = {}  # seed -> the target's signal, from the seed's reference GRPO run
    for seed, r in _first_runs(runs, configs, "grpo").items():
        try:
            signals[seed] = target_signal(r, smooth=smooth, benchmark=benchmark)
        except ValueError:  # no evaluation after step 0 yet: no target for this seed yet
            pass
    rows = []
    for r in runs:
        cfg = configs[r.path]
        seed, signal = cfg.seed, signals.get(cfg.seed, {})
        goal = target if target is not None else signal.get("target")
        curve, ledger = accuracy_curve(r, benchmark, smooth), r.ledger()
        summary, informative = totals(ledger), informative_rollouts(r)
        goal_se = signal.get("se", 0.0) if target is None else 0.0
        hit = to_target(curve, goal, crossing, goal_se) if goal is not None else {}
        rows.append(
            {
                "run": r.name, "variant": variant_name(r), "label": labels.get(variant_name(r), ""),
                "strategy": cfg.strategy, "seed": seed,
                "pilot_fraction": cfg.pilot_fraction if cfg.strategy == "pilot_commit" else None,
                "target": goal, "target_step": signal.get("step"), "target_gain": signal.get("gain"),
                "target_censored": signal.get("censored") if target is None else None,
                "target_se": signal.get("paired_se"), "eval_prompts": signal.get("prompts"),
                "eval_k": cfg.eval.k,
                "steps": summary["steps"], "rollouts": summary["rollouts"],
                "tokens": summary["tokens"],
                "initial_acc": curve["accuracy"][0] if curve.height else None,
                "best_acc": curve["accuracy"].max() if curve.height else None,
                "final_acc": curve["accuracy"][-1] if curve.height else None,
                "rollouts_to_target": hit.get("rollouts"), "tokens_to_target": hit.get("tokens"),
                "rollouts_to_target_lo": hit.get("rollouts_lo"),
                "rollouts_to_target_hi": hit.get("rollouts_hi"),
                "seconds_to_target": hit.get("seconds"), "informative": informative,
                "per_informative": per_informative(summary["rollouts"], informative),
                **mechanism(r, ledger),
            }
        )  # fmt: skip
    table = pl.DataFrame(rows, infer_schema_length=None)
    return _with_seed_ratios(table) if table.height else table


def first_of_seed(table: pl.DataFrame, which: pl.Expr) -> pl.DataFrame:
    """Per seed, the first row of `table` (runs in the order given) that `which` selects: the one
    rule for a seed's reference run -- the GRPO run holding its target, each ratio's baseline,
    the rows regression compares."""
    return table.filter(which).unique("seed", keep="first", maintain_order=True)


def _first_runs(runs: list[Run], configs: dict, strategy: str) -> dict[int, Run]:
    """`first_of_seed` over runs not yet measured: seed -> its first run of `strategy`."""
    out: dict[int, Run] = {}
    for r in runs:
        if configs[r.path].strategy == strategy:
            out.setdefault(configs[r.path].seed, r)
    return out


def _with_seed_ratios(table: pl.DataFrame) -> pl.DataFrame:
    """Per seed, the baseline's rollouts to target ÷ this run's: the seed's first GRPO run, its
    first DAPO run, and its paper-PC run (variant `pc`)."""
    refs = {
        "grpo": first_of_seed(table, pl.col("strategy") == "grpo"),
        "dapo": first_of_seed(table, pl.col("strategy") == "dapo"),
        "pc": first_of_seed(table, pl.col("variant") == PAPER_PC),
    }
    for base, ref in refs.items():
        ref = ref.select("seed", pl.col("rollouts_to_target").alias("_ref"))
        table = (
            table.join(ref, on="seed", how="left", maintain_order="left")
            .with_columns(  # a target met at step 0 (no rollouts yet) has no ratio
                pl.when(pl.col("rollouts_to_target") > 0)
                .then(pl.col("_ref") / pl.col("rollouts_to_target"))
                .alias(f"x_vs_{base}")
            )
            .drop("_ref")
        )
    return table


def rollouts_by_phase(runs: list[Run]) -> pl.DataFrame:
    """Mean rollouts per step by phase (pilot, commit, grpo, dapo), one row per variant (the
    mean over its runs): where each strategy's budget goes."""
    rows = []
    for r in runs:
        led = r.ledger().filter(pl.col("step") > 0)
        rows.append({"variant": variant_name(r)} | {
            c.split("/")[1]: led[c].mean() for c in led.columns
            if c.startswith("rollout_stats/") and c != "rollout_stats/trained"
        })  # fmt: skip
    if not rows:
        return pl.DataFrame({"variant": []}, schema={"variant": pl.String})
    return (
        pl.DataFrame(rows, infer_schema_length=None).group_by("variant", maintain_order=True).mean()
    )


def spend_by_pass_rate(runs: list[Run]) -> pl.DataFrame:
    """`pass_rate_spend` per variant, the mean over its runs (one row per variant)."""
    rows = [{"variant": variant_name(r)} | pass_rate_spend(r.read("rollouts")) for r in runs]
    if not rows:
        return pl.DataFrame({"variant": []}, schema={"variant": pl.String})
    return pl.DataFrame(rows).group_by("variant", maintain_order=True).mean()


# ---- over seeds ------------------------------------------------------------------------------


def summarize(runs: pl.DataFrame, order: list[str] | None = None) -> pl.DataFrame:
    """One row per variant (in `order`, else first seen): seeds run and reaching the target,
    mean [min, max] costs, mean ratios with bootstrap 95% intervals over seeds."""
    order = {v: i for i, v in enumerate(order or runs["variant"].unique(maintain_order=True))}
    reached = pl.col("rollouts_to_target").is_not_null()
    return (
        runs.group_by("variant", "label")
        .agg(
            pl.len().alias("seeds"),
            pl.col("rollouts_to_target").is_not_null().sum().alias("reached"),
            *[
                e
                for c in ("rollouts_to_target", "tokens_to_target", "seconds_to_target")
                for e in (
                    pl.col(c).mean().alias(c),
                    pl.col(c).min().alias(c + "_min"),
                    pl.col(c).max().alias(c + "_max"),
                )  # fmt: skip
            ],
            # the reading's interval over the seeds the point is averaged over (those that
            # reached the target); a reached seed whose lower curve never did leaves hi undefined
            pl.col("rollouts_to_target_lo").filter(reached).mean(),
            pl.when(pl.col("rollouts_to_target_hi").filter(reached).null_count() == 0)
            .then(pl.col("rollouts_to_target_hi").filter(reached).mean())
            .alias("rollouts_to_target_hi"),
            pl.col("pilot_fraction").first(),
            pl.col("rollouts").mean(),
            pl.col("tokens").mean(),
            pl.col("best_acc").mean(),
            pl.col("final_acc").mean(),
            pl.col("final_acc").std().alias("final_acc_sd"),
            *[e for c in RATIOS for e in (pl.col(c).mean(), pl.col(c).alias(c + "_seeds"))],
            pl.col("per_informative").mean(),
            *[pl.col(c).mean() for c in MECHANISM],
        )
        .with_columns(
            pl.col(c + "_seeds")
            .map_elements(_interval, return_dtype=pl.List(pl.Float64))
            .alias(c + "_ci")
            for c in RATIOS
        )
        .drop([c + "_seeds" for c in RATIOS])
        .sort(pl.col("variant").replace_strict(order, default=len(order)))
    )


def bootstrap_interval(
    values, level: float = 0.95, resamples: int = 10_000, seed: int = 0
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the mean of `values` (e.g. per-seed ratios): resample
    the values with replacement. With 3 seeds it is coarse (it cannot be wider than their
    range); None for fewer than 2 values."""
    import numpy as np

    x = np.asarray([v for v in values if v is not None], dtype=float)
    if x.size < 2:
        return None
    means = np.random.default_rng(seed).choice(x, size=(resamples, x.size)).mean(axis=1)
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(means, [tail, 100 - tail])
    return float(lo), float(hi)


def _interval(values: pl.Series) -> list[float] | None:
    """Bootstrap 95% interval over seeds of the mean per-seed ratio (None below 2 seeds)."""
    ci = bootstrap_interval(values.drop_nulls().to_list())
    return list(ci) if ci else None


def mean_curves(runs: list[Run], smooth: int = 1) -> dict[str, pl.DataFrame]:
    """Per variant: accuracy and cumulative cost averaged over its runs (seeds) per eval step."""
    by_variant: dict[str, list[pl.DataFrame]] = {}
    for r in runs:
        by_variant.setdefault(variant_name(r), []).append(accuracy_curve(r, smooth=smooth))
    return {
        name: pl.concat(curves)
        .group_by("step")
        .agg(
            pl.col("accuracy", "cumulative/rollouts", "cumulative/tokens").mean(),
            pl.len().alias("seeds"),
        )
        .sort("step")
        for name, curves in by_variant.items()
    }


# ---- the plan's predictions beside what runs measured ----------------------------------------

VALIDATED = ("rollouts_per_step", "rounds_per_step", "per_informative", "keep_share")


def predicted_vs_measured(runs: list[Run]) -> pl.DataFrame:
    """For each finished run, `plan.predict` from the pass rates of its reference GRPO run (the
    first of its seed in its own runs folder, `first_of_seed`'s rule: its own groups over all
    its steps, the profile the run met, drift averaged) beside what the run measured, with the
    relative error of each quantity. Runs without such a GRPO run are profiled from their own
    unselected groups (`profile` column says which)."""
    from pcbench.plan import predict
    from pcbench.profile import profile_run

    if not runs:  # an empty table has none of the columns a reader indexes: say why instead
        raise ValueError("predicted_vs_measured: no runs given (is the runs folder empty?)")
    references: dict = {}
    for folder in dict.fromkeys(r.path.parent for r in runs):
        mine = [r for r in runs if r.path.parent == folder]
        configs = {r.path: r.config for r in mine}
        references |= {(folder, s): r for s, r in _first_runs(mine, configs, "grpo").items()}
    mixtures: dict = {}
    rows = []
    for run in runs:
        cfg = run.config
        source = references.get((run.path.parent, cfg.seed), run)
        if source.path not in mixtures:
            mixtures[source.path] = profile_run(source).mixture
        predicted = predict(cfg, mixtures[source.path]).as_dict()
        ledger = run.ledger().filter(pl.col("step") > 0)  # step 0 is the start, no rollouts
        steps = ledger.height
        total = float(ledger["cumulative/rollouts"][-1]) if steps else 0.0
        measured = {
            "rollouts_per_step": total / steps if steps else None,
            "rounds_per_step": float(ledger["rounds"].mean()) if "rounds" in ledger.columns else None,
            "per_informative": per_informative(total, informative_rollouts(run)),
            "keep_share": mechanism(run, ledger)["kept_share"],
        }  # fmt: skip
        row = {"run": f"{run.path.parent.name}/{run.name}", "strategy": cfg.strategy,
               "profile": source.name,
               "method": predicted["method"]}  # fmt: skip
        for q in VALIDATED:
            p, m = predicted[q], measured[q]
            row |= {f"{q}_predicted": p, f"{q}_measured": m,
                    f"{q}_error": (p - m) / m if p is not None and m else None}  # fmt: skip
        rows.append(row)
    return pl.DataFrame(rows, infer_schema_length=None)
