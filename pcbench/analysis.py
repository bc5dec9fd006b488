"""One run's numbers: its accuracy curve, rollouts to a target, the target's signal, and where
its rollouts went (informative rollouts, the pilots' shares, spend by pass rate). Comparing runs
(targets per seed, ratios, seeds folded) is pcbench.results'; text is pcbench.tables'.

The target is the GRPO run's peak eval accuracy (DESIGN §4), read with a `Crossing` rule, the
same for the target and for every run:

- `INTERPOLATED` (the rule from issue 31 on): raw evaluations, no smoothing; the target is
  GRPO's highest raw evaluation (its earliest, on a tie), and a run's cost to it is read on the
  straight line between the last evaluation below it and the first at or above it, in
  cumulative rollouts (tokens, seconds and steps alike). Its lag does not grow with a
  strategy's rollouts per step, which a trailing mean's does (one evaluation interval × the
  rollouts of a step: twice as much for Pilot-Commit as for GRPO). Its uncertainty: the same
  reading on the curve shifted by ± z standard errors of (evaluation − target), each
  evaluation's SE over its prompts, independent of the target's (conservative: the two share
  prompts).
- `FIRST_EVAL_SMOOTHED` (the rule of RESULTS §1–§9 before issue 31): a trailing mean over 2
  evaluations, a run reaching the target at its first evaluation at or above it.

Costs are cumulative training rollouts and tokens (evaluation rollouts are never counted). A
target at GRPO's last evaluation is censored: GRPO was still rising when its budget ended, so the
ratio compares runs at GRPO's end-of-budget accuracy, not at its peak (`target_signal` says so).
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from pcbench.ledger import CUMULATIVE
from pcbench.run import Run


@dataclass(frozen=True)
class Crossing:
    """How a curve's crossing of a target is read (module docstring): a trailing mean over
    `smooth` evaluations (1: raw), read at the first evaluation at or above the target or
    `interpolate`d between evaluations, with an interval of ± `z` standard errors."""

    smooth: int = 1
    interpolate: bool = True
    z: float = 1.0

    def __post_init__(self):
        if self.smooth < 1 or self.z < 0:
            raise ValueError(f"crossing: smooth must be >= 1 and z >= 0, got {self}")

    def describe(self) -> str:
        curve = "raw evaluations" if self.smooth == 1 else f"a {self.smooth}-eval trailing mean"
        if self.interpolate:
            return f"{curve}, interpolated between evaluations (± {self.z:g} SE)"
        return f"{curve}, at the first evaluation at or above the target"


INTERPOLATED = Crossing()
FIRST_EVAL_SMOOTHED = Crossing(smooth=2, interpolate=False)
CROSSINGS = {"interpolated": INTERPOLATED, "first-eval": FIRST_EVAL_SMOOTHED}


def run_evals(run: Run, benchmark: str | None = None) -> pl.DataFrame:
    """A run's evaluation rows on one benchmark: `benchmark`, else its test split (the first
    benchmark it evaluates)."""
    evals = run.read("evals")
    if evals.height == 0:
        return evals
    return evals.filter(pl.col("benchmark") == (benchmark or evals["benchmark"][0]))


def accuracy_at(curve: pl.DataFrame, rollouts: float) -> float:
    """The curve's accuracy after `rollouts` cumulative rollouts: on the straight line between
    its evaluations (the same reading as `crossing_point`, the other way round), held at its
    ends."""
    import numpy as np

    return float(np.interp(rollouts, curve["cumulative/rollouts"], curve["accuracy"]))


def accuracy_curve(run: Run, benchmark: str | None = None, smooth: int = 1) -> pl.DataFrame:
    """(step, accuracy, se, pass@k, cumulative/rollouts, cumulative/tokens, cumulative/seconds)
    per evaluation; `se` is the raw evaluation's standard error over its prompts (sd of per-prompt
    mean@k / sqrt(prompts)); seconds are training wall time (evaluations left out), see Ledger."""
    evals = run_evals(run, benchmark)
    if evals.height == 0:
        return pl.DataFrame(
            schema={"step": pl.Int64, "accuracy": pl.Float64, "se": pl.Float64,
                    "pass@k": pl.Float64, "cumulative/rollouts": pl.Float64,
                    "cumulative/tokens": pl.Float64, "cumulative/seconds": pl.Float64}
        )  # fmt: skip
    acc = (
        evals.group_by("step")
        .agg(
            pl.col("mean@k").mean().alias("accuracy"),
            (pl.col("mean@k").std() / pl.len().sqrt()).fill_null(0.0).alias("se"),
            pl.col("pass@k").mean(),
        )
        .sort("step")
        .with_columns(pl.col("accuracy").rolling_mean(smooth, min_samples=1))
    )
    ledger = run.ledger()
    cumulative = pl.DataFrame({"step": [0]} | dict.fromkeys(CUMULATIVE, [0.0]))
    if ledger.height:
        cumulative = pl.concat([cumulative, ledger.select("step", *CUMULATIVE)]).unique(
            "step", keep="last"
        )
    return acc.join(cumulative, on="step", how="left").sort("step")


_AT = {"step": "step", "rollouts": "cumulative/rollouts", "tokens": "cumulative/tokens",
       "seconds": "cumulative/seconds"}  # fmt: skip


def crossing_point(accuracy, at: dict[str, list], target: float, interpolate: bool) -> dict:
    """Where the curve `accuracy` (one value per evaluation) first reaches `target`: each
    column of `at` (cumulative rollouts, ...) at that evaluation, or on the straight line from
    the evaluation before it (`interpolate`). None everywhere if it never does. Pure."""
    hit = next((i for i, a in enumerate(accuracy) if a >= target - 1e-12), None)
    if hit is None:
        return dict.fromkeys(at)
    if not interpolate or hit == 0:
        return {k: v[hit] for k, v in at.items()}
    below, above = accuracy[hit - 1], accuracy[hit]
    frac = (target - below) / (above - below)  # in (0, 1]: below < target <= above
    return {
        k: None
        if v[hit] is None or v[hit - 1] is None
        else v[hit - 1] + frac * (v[hit] - v[hit - 1])
        for k, v in at.items()
    }


def to_target(
    curve: pl.DataFrame, target: float, crossing: Crossing = INTERPOLATED, target_se: float = 0.0
) -> dict:
    """Step, rollouts, tokens and training seconds where `curve` reaches `target` by the
    `crossing` rule (None if never; seconds None where the curve has no time column), and
    `rollouts_lo` / `rollouts_hi`: the rollouts read on the curve ± z standard errors of
    (evaluation − target) (hi None: not reached within z SE)."""
    at = {k: curve[c].to_list() if c in curve.columns else [None] * curve.height
          for k, c in _AT.items()}  # fmt: skip
    acc = curve["accuracy"].to_list()
    point = crossing_point(acc, at, target, crossing.interpolate)
    if "se" in curve.columns and crossing.z > 0:
        band = [crossing.z * (s * s + target_se * target_se) ** 0.5 for s in curve["se"]]
    else:
        band = [0.0] * len(acc)
    rollouts = {"rollouts": at["rollouts"]}
    lo = crossing_point([a + b for a, b in zip(acc, band, strict=True)], rollouts, target,
                        crossing.interpolate)  # fmt: skip
    hi = crossing_point([a - b for a, b in zip(acc, band, strict=True)], rollouts, target,
                        crossing.interpolate)  # fmt: skip
    return point | {"rollouts_lo": lo["rollouts"], "rollouts_hi": hi["rollouts"]}


def paired_gain(evals: pl.DataFrame, window: list[int]) -> dict:
    """Per prompt, mean@k averaged over the `window` evaluation steps minus its step-0 mean@k:
    the mean of that difference over prompts (`gain`), its standard error sd / sqrt(prompts),
    and the two means. Paired, so prompt difficulty cancels out of the noise."""
    per_prompt = (
        evals.filter(pl.col("step").is_in(window))
        .group_by("prompt_id")
        .agg(pl.col("mean@k").mean().alias("end"))
        .join(
            evals.filter(pl.col("step") == 0).select("prompt_id", pl.col("mean@k").alias("start")),
            on="prompt_id",
        )  # fmt: skip
        .with_columns(diff=pl.col("end") - pl.col("start"))
    )
    n = per_prompt.height
    return {
        "prompts": n, "start": float(per_prompt["start"].mean()),
        "end": float(per_prompt["end"].mean()), "gain": float(per_prompt["diff"].mean()),
        "se": float(per_prompt["diff"].std() / n**0.5) if n > 1 else float("inf"),
    }  # fmt: skip


def target_signal(run: Run, smooth: int = 1, benchmark: str | None = None) -> dict:
    """Is a run's peak (the GRPO target) real? Its gain over step 0 and the paired standard error
    of that gain: per prompt, the mean@k over the peak's smoothing window minus the step-0 mean@k,
    SE = sd / sqrt(prompts). A gain within ~1 SE is evaluation noise, and every rollouts-to-target
    number measured against it compares noise. Also the peak evaluation's own SE (`se`, for the
    crossing's interval) and `censored`: the peak is the run's last evaluation."""
    curve = accuracy_curve(run, benchmark, smooth)
    if curve.height < 2:
        raise ValueError(f"{run.name}: needs evaluations after step 0 to have a target")
    evals = run_evals(run, benchmark)
    # The earliest peak, as `compare` takes it; a peak at step 0 has gain 0 (nothing learned).
    peak_step = curve.sort("accuracy", descending=True, maintain_order=True)["step"][0]
    window = curve.filter(pl.col("step") <= peak_step)["step"].tail(smooth).to_list()
    gain = paired_gain(evals, window)
    peak = curve.filter(pl.col("step") == peak_step).row(0, named=True)
    return {
        "step": int(peak_step), "target": float(peak["accuracy"]),
        "initial": float(curve["accuracy"][0]), "gain": gain["gain"], "paired_se": gain["se"],
        "prompts": gain["prompts"], "se": float(peak["se"]) / len(window) ** 0.5,
        "censored": bool(peak_step == curve["step"].max()),
    }  # fmt: skip


# ---- where a run's rollouts went -------------------------------------------------------------


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


def per_informative(rollouts: float, informative: float) -> float | None:
    """Rollouts generated per informative trained rollout (`informative_rollouts`) over a whole
    run: the cost of one rollout that can move the policy. None with none. Pure."""
    return rollouts / informative if informative else None


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
