"""The results layer: one comparison of runs, used by `pcbench compare`, `pcbench report`,
`pcbench experiment` and the notebooks.

`measure(runs)` gives one row per run against its seed's target (DESIGN §4 per seed): the peak
of that seed's GRPO run read by a `Crossing` rule (analysis: raw evaluations, the crossing
interpolated, by default; or one given target for every run). Costs to target are cumulative
training rollouts, tokens and seconds where the run reaches it (`analysis.to_target`); ratios `x_vs_grpo`, `x_vs_dapo`,
`x_vs_pc` are per seed (the baseline's rollouts to target ÷ this run's; > 1: this run is
cheaper), where both reached it. `summarize` folds seeds per variant with bootstrap intervals,
`markdown` writes the table docs/RESULTS.md carries, `mean_curves` averages curves over seeds.
Runs are read from their directories only (no model).
"""

from __future__ import annotations

import json
import re

import polars as pl

from pcbench.analysis import (
    INTERPOLATED,
    Crossing,
    accuracy_curve,
    bootstrap_interval,
    target_signal,
    to_target,
)
from pcbench.run import Run

RATIOS = ("x_vs_grpo", "x_vs_dapo", "x_vs_pc")
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
    signals = {}  # seed -> the target's signal (from that seed's first GRPO run)
    for r in runs:
        seed = configs[r.path].seed
        if configs[r.path].strategy == "grpo" and seed not in signals:
            try:
                signals[seed] = target_signal(r, smooth=smooth, benchmark=benchmark)
            except ValueError:  # no evaluation after step 0 yet: no target from this run
                pass
    rows = []
    for r in runs:
        cfg = configs[r.path]
        seed, signal = cfg.seed, signals.get(cfg.seed, {})
        goal = target if target is not None else signal.get("target")
        curve, ledger = accuracy_curve(r, benchmark, smooth), r.ledger()
        last = ledger.row(-1, named=True) if ledger.height else {}
        summary = {"steps": int(last.get("step", 0)),
                   "rollouts": last.get("cumulative/rollouts", 0.0),
                   "tokens": last.get("cumulative/tokens", 0.0)}  # fmt: skip
        goal_se = signal.get("se", 0.0) if target is None else 0.0
        hit = to_target(curve, goal, crossing, goal_se) if goal is not None else {}
        informative = informative_rollouts(r)
        rows.append(
            {
                "run": r.name, "variant": variant_name(r), "label": labels.get(variant_name(r), ""),
                "strategy": cfg.strategy, "seed": seed,
                "pilot_fraction": cfg.pilot_fraction if cfg.strategy == "pilot_commit" else None,
                "target": goal, "target_step": signal.get("step"), "target_gain": signal.get("gain"),
                "target_censored": signal.get("censored") if target is None else None,
                "target_se": signal.get("paired_se"), "eval_prompts": signal.get("prompts"),
                "steps": summary["steps"], "rollouts": summary["rollouts"],
                "tokens": summary["tokens"],
                "initial_acc": curve["accuracy"][0] if curve.height else None,
                "best_acc": curve["accuracy"].max() if curve.height else None,
                "final_acc": curve["accuracy"][-1] if curve.height else None,
                "rollouts_to_target": hit.get("rollouts"), "tokens_to_target": hit.get("tokens"),
                "rollouts_to_target_lo": hit.get("rollouts_lo"),
                "rollouts_to_target_hi": hit.get("rollouts_hi"),
                "seconds_to_target": hit.get("seconds"), "informative": informative,
                "per_informative": summary["rollouts"] / informative if informative else None,
                **mechanism(r, ledger),
            }
        )  # fmt: skip
    table = pl.DataFrame(rows, infer_schema_length=None)
    return _with_seed_ratios(table) if table.height else table


def _with_seed_ratios(table: pl.DataFrame) -> pl.DataFrame:
    """Per seed, the baseline's rollouts to target ÷ this run's: the seed's first GRPO run, its
    first DAPO run, and its paper-PC run (variant `pc`)."""
    first = lambda cond: table.filter(cond).unique("seed", keep="first", maintain_order=True)  # noqa: E731
    refs = {
        "grpo": first(pl.col("strategy") == "grpo"),
        "dapo": first(pl.col("strategy") == "dapo"),
        "pc": first(pl.col("variant") == PAPER_PC),
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


def informative_rollouts(run: Run) -> float:
    """Trained rollouts with a non-zero advantage (their group's rewards differ), summed over
    steps: what a rollout budget buys that can move the policy."""
    m = run.read("metrics")
    if m.height == 0:
        return 0.0
    names = ("update/rollouts", "update/zero_advantage_frac")
    wide = m.filter(pl.col("name").is_in(names)).pivot(on="name", index="step", values="value")
    if not set(names) <= set(wide.columns):
        return 0.0
    return float((wide[names[0]] * (1 - wide[names[1]])).sum())


MECHANISM = {  # measure column: (ledger numerator, denominator), summed over the run's steps
    "too_easy_share": ("filtering_stats/too_easy", "filtering_stats/seen"),
    "too_hard_share": ("filtering_stats/too_hard", "filtering_stats/seen"),
    "kept_share": ("filtering_stats/kept", "filtering_stats/seen"),
    "evicted_share": ("filtering_stats/evict_marked", "filtering_stats/seen"),
    "buffer_age": ("buffer_stats/age_sum", "buffer_stats/take"),
    "stale_share": ("buffer_stats/stale_drop", "buffer_stats/add"),
}


def mechanism(run: Run, ledger: pl.DataFrame | None = None) -> dict[str, float | None]:
    """Where a Pilot-Commit run's pilots went: shares of piloted prompts skipped as too easy,
    deferred as too hard, kept and marked for eviction; the mean age (updates) of a buffered
    pilot when committed, and the share of buffered pilots dropped as stale. None where the
    run has no pilots (GRPO, DAPO). `ledger`: the run's, when the caller has read it already."""
    totals = (run.ledger() if ledger is None else ledger).sum()
    value = lambda c: float(totals[c][0]) if c in totals.columns else 0.0  # noqa: E731
    return {
        name: (value(num) / value(den)) if value(den) else None
        for name, (num, den) in MECHANISM.items()
    }


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


PASS_RATE_BUCKETS = ("0", "(0, 0.25]", "(0.25, 0.5]", "(0.5, 0.75]", "(0.75, 1)", "1")


def pass_rate_spend(rollouts: pl.DataFrame) -> dict[str, float]:
    """Share of the rollouts generated at each pass rate, a prompt's pass rate being that of
    its rollouts in the same step: "0" and "1" are groups that teach nothing, whatever the
    strategy meant to do with them (a Pilot-Commit pilot that ruled a prompt out is in them)."""
    p = pl.col("p")
    bucket = (
        pl.when(p == 0).then(pl.lit(PASS_RATE_BUCKETS[0])).when(p == 1).then(pl.lit("1"))
        .when(p <= 0.25).then(pl.lit(PASS_RATE_BUCKETS[1]))
        .when(p <= 0.5).then(pl.lit(PASS_RATE_BUCKETS[2]))
        .when(p <= 0.75).then(pl.lit(PASS_RATE_BUCKETS[3]))
        .otherwise(pl.lit(PASS_RATE_BUCKETS[4]))
    )  # fmt: skip
    groups = rollouts.group_by("step", "prompt_id").agg(
        pl.len().alias("n"), pl.col("correct").cast(pl.Float64).mean().alias("p")
    )
    counts = dict(groups.group_by(bucket.alias("bucket")).agg(pl.col("n").sum()).iter_rows())
    total = sum(counts.values()) or 1
    return {b: counts.get(b, 0) / total for b in PASS_RATE_BUCKETS}


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
            pl.col("rollouts_to_target_lo").mean(),
            # a seed whose lower curve never reached the target leaves the mean undefined
            pl.when(pl.col("rollouts_to_target_hi").null_count() == 0)
            .then(pl.col("rollouts_to_target_hi").mean())
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


def _interval(values: pl.Series) -> list[float] | None:
    """Bootstrap 95% interval over seeds of the mean per-seed ratio (None below 2 seeds)."""
    ci = bootstrap_interval(values.drop_nulls().to_list())
    return list(ci) if ci else None


def mean_curves(runs: list[Run], smooth: int = 1) -> dict[str, pl.DataFrame]:
    """Per variant: accuracy and cumulative cost averaged over its runs (seeds) per eval step."""
    by_variant: dict[str, list[pl.DataFrame]] = {}
    for r in runs:
        curve = accuracy_curve(r, smooth=smooth).with_columns(pl.lit(r.config.seed).alias("seed"))
        by_variant.setdefault(variant_name(r), []).append(curve)
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


# ---- text ------------------------------------------------------------------------------------

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
    targets = table.select("seed", "target").unique().drop_nulls().sort("seed")
    head = (
        "target accuracy: "
        + ", ".join(f"{t:.4f} (seed {s})" for s, t in targets.iter_rows())
        + f" (peak GRPO mean@k per seed)\ncrossing: {crossing.describe()}"
        if targets.height
        else "target: none (no GRPO run)"
    )
    # every column stays in csv / json; the text drops ratios whose baseline is absent (the
    # demo has no paper-preset "pc" variant), which keeps the table within 120 characters
    kept = [c for c in SHORT if c not in RATIOS or shown[c].null_count() < shown.height]
    shown = shown.select(kept)
    cells = [[_cell(v, c) for v, c in zip(row, shown.columns, strict=True)]
             for row in shown.iter_rows()]  # fmt: skip
    names = [SHORT[c] for c in kept]
    if fmt == "markdown":
        rows = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
        return head + "\n\n" + "\n".join(rows + ["| " + " | ".join(r) + " |" for r in cells])
    widths = [max(len(n), *(len(r[i]) for r in cells)) for i, n in enumerate(names)]
    line = lambda r: "  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True))  # noqa: E731
    return "\n".join([head, line(names), *map(line, cells)])


def _cell(v, column: str) -> str:
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
    censored = [str(s) for s, c in targets.select("seed", "target_censored").iter_rows() if c]
    lines = [
        f"Target per seed = that seed's GRPO peak of eval mean@4 ({prompts} test prompts); "
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
