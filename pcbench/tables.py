"""Result frames as text: the aligned table, Markdown, csv and json of `pcbench compare`, the
summary table docs/RESULTS.md carries, the stopped-runs and predicted-vs-measured tables, and
the one way a value is written (`cell_text`), which the HTML report shares. Nothing here
computes a result: the frames come from pcbench.results and pcbench.experiments.
"""

from __future__ import annotations

import json

import polars as pl

from pcbench.analysis import INTERPOLATED, Crossing

RATIOS = ("x_vs_grpo", "x_vs_dapo", "x_vs_pc")  # results.measure's ratio columns

TABLE_COLUMNS = ("run", "strategy", "seed", "steps", "rollouts", "tokens", "initial_acc",
                 "best_acc", "final_acc", "rollouts_to_target", "tokens_to_target",
                 "seconds_to_target", *RATIOS, "per_informative")  # fmt: skip
COUNTS = ("rollouts", "tokens", "rollouts_to_target", "tokens_to_target")
FORMATS = ("table", "markdown", "csv", "json")
SHORT = {  # the text table's columns and headers: within 120 characters for a few runs
    "run": "run", "seed": "seed", "steps": "steps", "rollouts": "rollouts",
    "final_acc": "final acc", "rollouts_to_target": "rollouts→target",
    "tokens_to_target": "tokens→target", "seconds_to_target": "s→target",
    "x_vs_grpo": "×GRPO", "x_vs_dapo": "×DAPO", "x_vs_pc": "×PC",
    "per_informative": "per inform.",
}  # fmt: skip


def readable(table: pl.DataFrame) -> pl.DataFrame:
    """The columns a person reads: counts as integers, rates and ratios rounded."""
    floats = [c for c in TABLE_COLUMNS if c not in ("run", "strategy", "seed", "steps")]
    # all-null columns get a dtype; 0 / 0 ratios (a target met at step 0) read as missing
    table = table.select(TABLE_COLUMNS).with_columns(pl.col(floats).cast(pl.Float64).fill_nan(None))
    return table.with_columns(
        *(pl.col(c).round(0).cast(pl.Int64) for c in COUNTS),
        pl.col("seconds_to_target").round(1),
        *(pl.col(c).round(3) for c in ("initial_acc", "best_acc", "final_acc")),
        *(pl.col(c).round(2) for c in (*RATIOS, "per_informative")),
    )


def format_table(table: pl.DataFrame, crossing: Crossing = INTERPOLATED, fmt: str = "table") -> str:
    """`measure`'s main columns, with the targets stated: an aligned text table ("not
    reached" where a run missed its target), Markdown, csv or json (nulls as null)."""
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r}: use one of {FORMATS}")
    shown = readable(table)
    if fmt == "csv":
        return shown.write_csv()
    if fmt == "json":
        return json.dumps(shown.to_dicts(), indent=1)
    head = f"target accuracy: {targets_stated(table)}\ncrossing: {crossing.describe()}"
    # every column stays in csv / json; the text drops ratios whose baseline is absent (the
    # demo has no paper-preset "pc" variant), which keeps the table within 120 characters
    kept = [c for c in SHORT if c not in RATIOS or shown[c].null_count() < shown.height]
    shown = shown.select(kept)
    cells = [[cell_text(v, c) for v, c in zip(row, shown.columns, strict=True)]
             for row in shown.iter_rows()]  # fmt: skip
    names = [SHORT[c] for c in kept]
    if fmt == "markdown":
        rows = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
        return head + "\n\n" + "\n".join(rows + ["| " + " | ".join(r) + " |" for r in cells])
    widths = [max(len(n), *(len(r[i]) for r in cells)) for i, n in enumerate(names)]
    line = lambda r: "  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True))  # noqa: E731
    return "\n".join([head, line(names), *map(line, cells)])


def targets_stated(table: pl.DataFrame) -> str:
    """The per-seed targets of `measure` rows, in words."""
    targets = table.select("seed", "target").unique().drop_nulls().sort("seed")
    if targets.height == 0:
        return "none (no GRPO run)"
    stated = ", ".join(f"{t:.4f} (seed {s})" for s, t in targets.iter_rows())
    return f"{stated} (the seed's peak GRPO eval mean@k)"


def cell_text(v, column: str) -> str:
    """One value of a `readable` table as text (the text table's, Markdown's and the report's)."""
    if v is None:  # a cost to a target the run missed; a ratio without its baseline run
        return "not reached" if column.endswith("_to_target") else "—"
    if isinstance(v, float):
        return f"{v:,.3f}".rstrip("0").rstrip(".") if abs(v) < 100 else f"{v:,.1f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def _num(x, fmt: str = ",.0f") -> str:
    return "—" if x is None else format(x, fmt)


def _range(row: dict, col: str, fmt: str = ",.0f") -> str:
    if row[col] is None:
        return "not reached"
    lo, hi = row[col + "_min"], row[col + "_max"]
    return f"{_num(row[col], fmt)} [{_num(lo, fmt)}–{_num(hi, fmt)}]"


def _ratio(row: dict, col: str) -> str:
    ci = row[col + "_ci"]
    interval = f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else ""
    return _num(row[col], ".2f") + interval


def markdown(
    summary: pl.DataFrame,
    runs: pl.DataFrame,
    crossing: Crossing = INTERPOLATED,
    skipped: list[str] = (),
) -> str:
    """The summary as a Markdown table, with the per-seed targets stated above it and the runs
    it leaves out (`experiments.left_out`) below it."""
    targets = (
        runs.select("seed", "target", "target_gain", "target_se", "target_censored")
        .unique()
        .sort("seed")
        .drop_nulls(["target", "target_gain", "target_se"])
    )
    prompts = ", ".join(str(n) for n in runs["eval_prompts"].drop_nulls().unique().sort())
    k = "/".join(str(n) for n in runs["eval_k"].drop_nulls().unique().sort())
    censored = [str(s) for s, c in targets.select("seed", "target_censored").iter_rows() if c]
    lines = [
        f"Target per seed = that seed's GRPO peak of eval mean@{k} ({prompts} test prompts); "
        f"crossings read on {crossing.describe()}; the target's gain over step 0 ± the "
        "paired standard error (per prompt, peak window minus step 0): "
        + ", ".join(
            f"seed {s}: {t:.3f} ({g:+.3f} ± {se:.3f})" for s, t, g, se, _ in targets.iter_rows()
        )
        + ". "
        + (
            f"Censored (GRPO's peak is its last evaluation, so the target is GRPO's accuracy at "
            f"the end of its budget, not a peak): seed {', '.join(censored)}. "
            if censored
            else ""
        )
        + "Costs count training rollouts only; mean [min–max] over the seeds that reached "
        "the target; seconds are training wall time on this machine (evaluations left out). "
        "Ratios are per-seed (GRPO, DAPO or paper-PC rollouts ÷ this variant's, seeds where "
        "both reached the target), averaged, with a bootstrap 95% interval over those seeds "
        "(coarse with 3 seeds: never wider than their range). "
        "Rollouts per informative rollout: all rollouts generated ÷ trained rollouts whose "
        "group's rewards differ (non-zero advantage), mean over seeds.",
        "",
        "| variant | what | reached | rollouts to target | tokens to target | seconds to target "
        "| rollouts (all steps) | best acc | final acc (± sd) | × fewer than GRPO "
        "| × fewer than DAPO | × fewer than paper-PC | rollouts per informative rollout |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    if crossing.interpolate:  # the reading's uncertainty, in its own column
        lines[0] = lines[0].replace(". Ratios are", f"; ± {crossing.z:g} SE: the mean rollouts "
                                      "read on the curves ± z SE of (evaluation − target) "
                                      "(— where the lower curve never reaches it). Ratios are")  # fmt: skip
        lines[-2] = lines[-2].replace(
            " | tokens to target", f" | ± {crossing.z:g} SE | tokens to target"
        )
        lines[-1] += "---|"
    for r in summary.iter_rows(named=True):
        sd = "" if r["final_acc_sd"] is None else f" ± {r['final_acc_sd']:.3f}"
        lines.append(
            f"| `{r['variant']}` | {r['label']} | {r['reached']}/{r['seeds']} "
            f"| {_range(r, 'rollouts_to_target')} "
            + (
                f"| {_num(r['rollouts_to_target_lo'])}–{_num(r['rollouts_to_target_hi'])} "
                if crossing.interpolate
                else ""
            )  # fmt: skip
            + f"| {_range(r, 'tokens_to_target')} "
            f"| {_range(r, 'seconds_to_target', ',.1f')} "
            f"| {_num(r['rollouts'])} | {r['best_acc']:.3f} | {r['final_acc']:.3f}{sd} "
            f"| {_ratio(r, 'x_vs_grpo')} | {_ratio(r, 'x_vs_dapo')} "
            f"| {_ratio(r, 'x_vs_pc')} | {_num(r['per_informative'], '.2f')} |"
        )
    piloted = [r for r in summary.iter_rows(named=True) if r["kept_share"] is not None]
    if piloted:
        lines += [
            "",
            "Where the pilots went (Pilot-Commit variants, mean over seeds): shares of piloted "
            "prompts skipped as too easy, deferred as too hard, kept, and marked for eviction "
            "(solved by every pilot rollout); a buffered pilot's mean age in updates when "
            "committed, and the share of buffered pilots dropped as stale.",
            "",
            "| variant | too easy | too hard | kept | evict-marked | buffer age at commit "
            "| stale-dropped |",
            "|---|---|---|---|---|---|---|",
            *(f"| `{r['variant']}` | {_num(r['too_easy_share'], '.1%')} "
              f"| {_num(r['too_hard_share'], '.1%')} | {_num(r['kept_share'], '.1%')} "
              f"| {_num(r['evicted_share'], '.1%')} | {_num(r['buffer_age'], '.2f')} "
              f"| {_num(r['stale_share'], '.1%')} |" for r in piloted),
        ]  # fmt: skip
    unfinished = [x for x in skipped if "(stopped by " not in x]
    stopped = [x for x in skipped if "(stopped by " in x]
    if unfinished:
        lines += ["", "**Not in this table** (finish them with `pcbench experiment` without "
                  "`--table-only`): " + "; ".join(unfinished) + "."]  # fmt: skip
    if stopped:
        lines += ["", "**Stopped before their last step**, so not compared (the variant cannot go "
                  "on on its split; `stopped.txt` in the run says why): " + "; ".join(stopped)
                  + "."]  # fmt: skip
    return "\n".join(lines)


def stopped_markdown(stops: pl.DataFrame) -> str:
    """`experiments.stopped_runs` as the paragraph and table under an experiment's summary."""
    head = ("Where the stopped runs stood at their last evaluation (GRPO: the same seed's "
            "accuracy after as many rollouts, linear between its evaluations, its last when "
            "it spent fewer in all):\n\n| run | stopped after step | last eval step | "
            "rollouts by then | accuracy | GRPO at those rollouts |\n|---|---|---|---|---|---|\n")  # fmt: skip
    return head + "\n".join(
        f"| `{r['run']}` | {r['steps']} | {r['eval_step']} | {r['rollouts']:,.0f} | "
        f"{r['accuracy']:.3f} | {r['grpo_accuracy']:.3f} |"
        for r in stops.iter_rows(named=True)
    )


def validation_markdown(table: pl.DataFrame) -> str:
    """`results.predicted_vs_measured` for docs/RESULTS.md: predicted / measured (error)."""

    def cell(r, q, fmt):
        p, m, e = r[f"{q}_predicted"], r[f"{q}_measured"], r[f"{q}_error"]
        if p is None or m is None:
            return "—" if m is None else f"— / {format(m, fmt)}"
        return f"{format(p, fmt)} / {format(m, fmt)} ({e:+.1%})"

    lines = ["| run | profile from | rollouts a step | rounds a step | rollouts per informative "
             "| keep share |", "|---|---|---|---|---|---|"]  # fmt: skip
    for r in table.iter_rows(named=True):
        lines.append(
            f"| `{r['run']}` | `{r['profile']}` | {cell(r, 'rollouts_per_step', ',.1f')} "
            f"| {cell(r, 'rounds_per_step', '.2f')} | {cell(r, 'per_informative', '.2f')} "
            f"| {cell(r, 'keep_share', '.3f')} |"
        )
    errors = [abs(e) for q in ("rollouts_per_step", "per_informative")
              for e in table[f"{q}_error"].drop_nulls()]  # fmt: skip
    if errors:
        lines.append(f"\nLargest error on rollouts a step and per informative rollout: "
                     f"{max(errors):.1%} (target ≤ 5%).")  # fmt: skip
    return "\n".join(lines)
