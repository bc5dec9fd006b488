"""One run's curve and what it says: accuracy curves, rollouts to a target, the target's signal.

The target is the GRPO run's peak eval accuracy (DESIGN §4), after an optional trailing moving
average over `smooth` evaluations (1 = raw evals). A run reaches the target at its first
evaluation whose (smoothed) accuracy is >= target; its cost to target is the cumulative
rollouts and tokens of training at that step (evaluation rollouts are never counted).
"""

from __future__ import annotations

import polars as pl

from pcbench.ledger import CUMULATIVE
from pcbench.run import Run


def accuracy_curve(run: Run, benchmark: str | None = None, smooth: int = 1) -> pl.DataFrame:
    """(step, accuracy, pass@k, cumulative/rollouts, cumulative/tokens, cumulative/seconds) per
    evaluation; seconds are training wall time (evaluations left out), see Ledger."""
    evals = run.read("evals")
    if evals.height == 0:
        return pl.DataFrame(
            schema={"step": pl.Int64, "accuracy": pl.Float64, "pass@k": pl.Float64,
                    "cumulative/rollouts": pl.Float64, "cumulative/tokens": pl.Float64,
                    "cumulative/seconds": pl.Float64}
        )  # fmt: skip
    benchmark = benchmark or evals["benchmark"][0]  # the test split comes first
    acc = (
        evals.filter(pl.col("benchmark") == benchmark)
        .group_by("step")
        .agg(pl.col("mean@k").mean().alias("accuracy"), pl.col("pass@k").mean())
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


def to_target(curve: pl.DataFrame, target: float) -> dict:
    """Step, rollouts, tokens and training seconds at the first evaluation reaching `target`
    (None if never; seconds None too where the curve has no time column)."""
    hit = curve.filter(pl.col("accuracy") >= target - 1e-12).head(1)
    if hit.height == 0:
        return {"step": None, "rollouts": None, "tokens": None, "seconds": None}
    row = hit.row(0, named=True)
    return {
        "step": row["step"],
        "rollouts": row["cumulative/rollouts"],
        "tokens": row["cumulative/tokens"],
        "seconds": row.get("cumulative/seconds"),
    }


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
    number measured against it compares noise."""
    curve = accuracy_curve(run, benchmark, smooth)
    if curve.height < 2:
        raise ValueError(f"{run.name}: needs evaluations after step 0 to have a target")
    evals = run.read("evals")
    evals = evals.filter(pl.col("benchmark") == (benchmark or evals["benchmark"][0]))
    # The earliest peak, as `compare` takes it; a peak at step 0 has gain 0 (nothing learned).
    peak_step = curve.sort("accuracy", descending=True, maintain_order=True)["step"][0]
    window = curve.filter(pl.col("step") <= peak_step)["step"].tail(smooth).to_list()
    gain = paired_gain(evals, window)
    target = float(curve.filter(pl.col("step") == peak_step)["accuracy"][0])
    return {
        "step": int(peak_step), "target": target, "initial": float(curve["accuracy"][0]),
        "gain": gain["gain"], "paired_se": gain["se"], "prompts": gain["prompts"],
    }  # fmt: skip
