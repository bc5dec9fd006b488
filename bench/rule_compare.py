"""One experiment's runs read by both crossing rules, side by side: what re-reading a table of
RESULTS §1-§9 under issue 31's rule changes.

    python bench/rule_compare.py EXPERIMENT [--runs runs/results] [--seeds 0 1 2] [--write MD]

With --write, the reading goes into MD's block `rule-EXPERIMENT` (markers as for every table),
so a section of RESULTS carries its re-reading beside the table the old rule wrote.

The new rule (`analysis.INTERPOLATED`: raw evaluations, the crossing interpolated in rollouts)
and the old one (`analysis.FIRST_EVAL_SMOOTHED`: a 2-evaluation trailing mean, read at its first
evaluation at or above the target) read the same finished runs; each rule picks its own targets
(GRPO's peak of the curve it reads), so the targets are printed for both. The columns are the
experiment table's own (`results.measure`, `results.summarize`); only the layout is new: one row
per variant, the new reading first and the old ratio beside it.
"""

from __future__ import annotations

import polars as pl
from common import experiment_args, publish_reading

from pcbench import experiments as ex
from pcbench.analysis import FIRST_EVAL_SMOOTHED, INTERPOLATED
from pcbench.results import summarize

HEADER = ("| variant | reached | rollouts to target | ± 1 SE | × fewer than GRPO (new rule) "
          "| old rule | per seed (new) | reached (old) | best acc (raw) |")  # fmt: skip


def _num(x, fmt: str = ",.0f") -> str:
    return "—" if x is None else format(x, fmt)


def _ratio(x, ci) -> str:
    return _num(x, ".2f") + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")


def per_seed(runs: pl.DataFrame, variant: str) -> str:
    """The variant's x against GRPO, seed by seed ('—' where it did not reach the target)."""
    rows = runs.filter(pl.col("variant") == variant).sort("seed")
    return ", ".join(_num(x, ".2f") for x in rows["x_vs_grpo"])


def side_by_side(new_runs: pl.DataFrame, old_runs: pl.DataFrame) -> str:
    """Markdown: one row per variant (the new summary's order) with the new rule's reading and
    the old rule's ratio and reach beside it."""
    new, old = summarize(new_runs), summarize(old_runs)
    by_old = {row["variant"]: row for row in old.iter_rows(named=True)}
    lines = [HEADER, "|" + "---|" * HEADER.count(" | ") + "---|"]
    for row in new.iter_rows(named=True):
        was = by_old.get(row["variant"], {})
        reached = f"{row['reached']}/{row['seeds']}"
        cost = "not reached" if row["rollouts_to_target"] is None else (
            f"{_num(row['rollouts_to_target'])} [{_num(row['rollouts_to_target_min'])}–"
            f"{_num(row['rollouts_to_target_max'])}]")  # fmt: skip
        se = f"{_num(row['rollouts_to_target_lo'])}–{_num(row['rollouts_to_target_hi'])}"
        old_reached = f"{was['reached']}/{was['seeds']}" if was else "—"
        lines.append(
            f"| `{row['variant']}` | {reached} | {cost} | {se} "
            f"| **{_ratio(row['x_vs_grpo'], row['x_vs_grpo_ci'])}** "
            f"| {_ratio(was.get('x_vs_grpo'), was.get('x_vs_grpo_ci'))} "
            f"| {per_seed(new_runs, row['variant'])} | {old_reached} | {_num(row['best_acc'], '.3f')} |"
        )  # fmt: skip
    return "\n".join(lines)


def targets(runs: pl.DataFrame) -> str:
    """Each seed's target (GRPO's peak on the curve the rule reads), its step, and censoring."""
    grpo = runs.filter(pl.col("strategy") == "grpo").unique("seed", keep="first").sort("seed")
    return "; ".join(
        f"seed {r['seed']}: {r['target']:.3f} at step {r['target_step']}"
        + (" (censored)" if r["target_censored"] else "")
        for r in grpo.iter_rows(named=True)
    )


def main() -> None:
    args = experiment_args(__doc__, "rule")
    exp = ex.EXPERIMENTS[args.experiment]
    new = ex.per_run(exp, args.runs, args.seeds, INTERPOLATED)
    old = ex.per_run(exp, args.runs, args.seeds, FIRST_EVAL_SMOOTHED)
    if new.height == 0:
        raise SystemExit(f"no finished runs of {args.experiment} under {args.runs}")
    text = "\n".join([
        side_by_side(new, old),
        f"\nTargets, new rule (raw peaks): {targets(new)}.",
        f"Targets, old rule (2-evaluation trailing mean): {targets(old)}.",
    ])  # fmt: skip
    publish_reading(text, exp, args, "rule")


if __name__ == "__main__":
    main()
