"""Pass-rate profiles: how often the current policy solves each training prompt, and what
that means for every group size (`pcbench profile`, `pcbench.plan` reads them).

A profile is the counts k correct of N rollouts per prompt, sampled once at a large N, from:
- a config (`profile_config`: its model, its training split, its sampling settings),
- a live `State` (`profile_state`: the engine holds the policy as trained so far), or
- a run's own rollouts (`profile_run`: every group a strategy generated before it chose
  anything, so pilots, GRPO's and DAPO's groups; never commits, which are selected).

From the counts: the shares of prompts at 0, at 1 and between; the fitted pass-rate
distribution (`algos.passrates.fit_mixture`); and the share of groups with all-equal rewards at
every group size n ≤ N, by exact subsampling arithmetic (`algos.passrates.all_equal_share`),
the fitted distribution extending it beyond N. Saved as one JSON file with a plotly figure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import polars as pl

from pcbench.algos.passrates import Mixture, all_equal_share, fit_mixture
from pcbench.config import RunConfig, SamplingConfig
from pcbench.strategies import registry

COUNTS = {"prompt_id": pl.String, "n": pl.Int64, "n_correct": pl.Int64}


@dataclass(frozen=True)
class PassRateProfile:
    counts: pl.DataFrame  # one row per profiled group: prompt_id, n, n_correct (+ difficulty...)
    source: str  # what was profiled, in words (the config or run, N, prompts, seed, steps)
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        missing = set(COUNTS) - set(self.counts.columns)
        if missing or self.counts.height == 0:
            raise ValueError(f"a profile needs rows with {sorted(COUNTS)}; missing {missing}")
        bad = self.counts.filter((pl.col("n_correct") < 0) | (pl.col("n_correct") > pl.col("n")))
        if bad.height:
            raise ValueError(f"counts outside 0 <= n_correct <= n: {bad.head(3).to_dicts()}")

    @property
    def k(self) -> np.ndarray:
        return self.counts["n_correct"].to_numpy()

    @property
    def N(self) -> np.ndarray:
        return self.counts["n"].to_numpy()

    @cached_property
    def mixture(self) -> Mixture:
        return fit_mixture(self.k, self.N)

    def summary(self) -> dict:
        rate = self.k / self.N
        return {
            "groups": int(self.counts.height), "prompts": int(self.counts["prompt_id"].n_unique()),
            "samples_min": int(self.N.min()), "samples_max": int(self.N.max()),
            "mean_pass_rate": round(float(rate.mean()), 4),
            "share_0": round(float((self.k == 0).mean()), 4),
            "share_1": round(float((self.k == self.N).mean()), 4),
            "share_between": round(float(((self.k > 0) & (self.k < self.N)).mean()), 4),
        }  # fmt: skip

    def all_equal_curve(self, up_to: int = 128) -> pl.DataFrame:
        """Per group size n = 1..up_to: the share of groups with all-equal rewards, exact from
        the counts where every group was sampled at least n times (`measured`), and from the
        fitted distribution (`fitted`, every n); `mixed` = 1 − the best of the two."""
        floor = int(self.N.min())
        rows = []
        for n in range(1, up_to + 1):
            measured = all_equal_share(self.k, self.N, n) if n <= floor else None
            fitted = self.mixture.all_equal(n)
            best = measured if measured is not None else fitted
            rows.append({"n": n, "measured": measured, "fitted": fitted, "mixed": 1 - best})
        return pl.DataFrame(rows, schema={"n": pl.Int64, "measured": pl.Float64,
                                          "fitted": pl.Float64, "mixed": pl.Float64})  # fmt: skip

    # ---- files --------------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """One JSON file: the counts, the source, the fitted mixture and the curve to n = 128."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        m = self.mixture
        body = {
            "format": "pcbench-profile/1", "source": self.source, "meta": self.meta,
            "summary": self.summary(),
            "mixture": {"atoms": list(m.atoms), "weights": list(m.weights)},
            "all_equal": self.all_equal_curve().to_dicts(), "counts": self.counts.to_dicts(),
        }  # fmt: skip
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(body, indent=1))
        tmp.replace(path)  # a killed write leaves the old file, never half a profile
        return path

    @classmethod
    def load(cls, path: str | Path) -> PassRateProfile:
        try:
            body = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise ValueError(f"{path}: not a readable profile file ({error})") from error
        if body.get("format") != "pcbench-profile/1":
            raise ValueError(f"{path}: not a pcbench profile (format {body.get('format')!r})")
        counts = pl.DataFrame(body["counts"], infer_schema_length=None)
        return cls(counts.with_columns(pl.col("n", "n_correct").cast(pl.Int64)), body["source"],
                   body.get("meta", {}))  # fmt: skip

    def figure(self, up_to: int = 128):
        """Two panels: the histogram of per-prompt pass rates k/N (0 and 1 in bins of their
        own), and the share of groups with all-equal rewards against group size."""
        from plotly.subplots import make_subplots

        rate = self.k / self.N
        labels = ["0", *(f"({a:.2f}, {a + 0.1:.2f}]" for a in np.arange(0, 1, 0.1)), "1"]
        inner = np.clip(np.ceil(rate * 10) - 1, 0, 9).astype(int)
        bins = np.where(rate == 0, 0, np.where(rate == 1, 11, inner + 1))
        counts = np.bincount(bins, minlength=12) / len(rate)
        curve = self.all_equal_curve(up_to)
        fig = make_subplots(rows=1, cols=2, subplot_titles=(
            "per-prompt pass rate k/N", "groups with all-equal rewards"))  # fmt: skip
        fig.add_bar(x=labels, y=counts, name="share of prompts", row=1, col=1)
        measured = curve.drop_nulls("measured")
        fig.add_scatter(x=measured["n"], y=measured["measured"], mode="lines+markers",
                        name="measured (exact subsampling)", row=1, col=2)  # fmt: skip
        fig.add_scatter(x=curve["n"], y=curve["fitted"], mode="lines", line={"dash": "dot"},
                        name="fitted distribution", row=1, col=2)  # fmt: skip
        fig.update_xaxes(title_text="group size n", type="log", row=1, col=2)
        fig.update_yaxes(title_text="share", range=[0, 1], row=1, col=2)
        fig.update_layout(title=f"Pass-rate profile: {self.source}", height=420)
        return fig


# ---- making one ---------------------------------------------------------------------------------


def counts_of(rollouts: pl.DataFrame, by: tuple[str, ...] = ("prompt_id",)) -> pl.DataFrame:
    """Per group (`by`): n rollouts, n_correct, n_boxed (an answer was found), and the prompt's
    difficulty where the rollouts carry one."""
    extra = [pl.col("difficulty").first()] if "difficulty" in rollouts.columns else []
    return rollouts.group_by(*by, maintain_order=True).agg(
        pl.len().alias("n"), pl.col("correct").sum().cast(pl.Int64).alias("n_correct"),
        (pl.col("verify_status") != "no_answer").sum().cast(pl.Int64).alias("n_boxed"), *extra,
    )  # fmt: skip


def sample_counts(
    engine, verifier, prompts: pl.DataFrame, n: int, sampling: SamplingConfig, seed: int = 0
) -> pl.DataFrame:
    """Generate `n` rollouts of every prompt in `prompts` (one engine call, phase `eval`, so no
    run's rollout count is charged) and judge them: per-prompt counts, in `prompts`' order."""
    from pcbench.steps.rollouts import call_seed, generate, requests

    reqs = requests(prompts["prompt_id"], n, "eval")
    rollouts = generate(engine, verifier, reqs, prompts, sampling, step=0,
                        seed=call_seed(seed, 0, 0, salt=7))  # fmt: skip
    counts = counts_of(rollouts)
    keep = [c for c in ("prompt_id", "difficulty") if c in prompts.columns]
    return prompts.select(keep).join(counts.drop("difficulty", strict=False), on="prompt_id",
                                     maintain_order="left")  # fmt: skip


def profile_state(state, cfg: RunConfig, *, n: int = 64, prompts: int = 500) -> PassRateProfile:
    """Profile the policy a live `State`'s engine holds (a notebook mid-run, or `profile_config`'s
    fresh one) on the first `prompts` prompts of its training split, `n` rollouts each."""
    if n < 1 or prompts < 1:
        raise ValueError(f"profile: n and prompts must be >= 1, got n={n}, prompts={prompts}")
    chosen = state.prompts.head(prompts)
    counts = sample_counts(state.engine, state.verifier, chosen, n, cfg.sampling, cfg.seed)
    source = (f"{cfg.name} at step {state.step}: {chosen.height} prompts of {cfg.train} x "
              f"{n} rollouts, T {cfg.sampling.temperature:g}")  # fmt: skip
    meta = {"config": cfg.name, "model": cfg.model, "train": cfg.train, "step": state.step,
            "n": n, "prompts": chosen.height, "seed": cfg.seed}  # fmt: skip
    return PassRateProfile(counts, source, meta)


def profile_config(cfg: RunConfig, *, n: int = 64, prompts: int = 500) -> PassRateProfile:
    """Profile a config's model before training: its own engine, verifier and training split."""
    from pcbench.state import setup_state

    state = setup_state(cfg, with_policy=False)
    try:
        return profile_state(state, cfg, n=n, prompts=prompts)
    finally:
        state.verifier.close()


def profile_run(run, steps: tuple[int, int] | None = None) -> PassRateProfile:
    """A run's profile from its own rollouts: every unselected group (pilots, GRPO's, DAPO's,
    the peers') of the steps in `steps` (inclusive; None: all), one row per (step, prompt)."""
    rollouts = run.read("rollouts")
    if rollouts.height:
        # groups drawn before the strategy picked anything by their rewards: an unbiased sample
        # of the pass rates the run met (Strategy.unselected_phases: never PC's commits)
        phases = registry.get(run.config.strategy).unselected_phases
        rollouts = rollouts.filter(pl.col("phase").is_in(list(phases)))
        if steps is not None:
            rollouts = rollouts.filter(pl.col("step").is_between(*steps))
    if rollouts.height == 0:
        raise ValueError(f"{run.path}: no pilot or unfiltered groups in those steps to profile")
    counts = counts_of(rollouts, by=("step", "prompt_id"))
    first, last = int(counts["step"].min()), int(counts["step"].max())
    sizes = sorted(set(counts["n"].to_list()))
    source = f"run {run.name}, steps {first}-{last}: {counts.height} groups of {sizes} rollouts"
    return PassRateProfile(counts, source, {"run": run.name, "steps": [first, last]})


def mixed_split(profile: PassRateProfile, train: pl.DataFrame, test: pl.DataFrame) -> pl.DataFrame:
    """The training prompts `profile` found strictly between always and never solved (0 < k < N),
    minus any whose text is also a test prompt: the analogue of the paper's "binary filter",
    in `train`'s order."""
    between = profile.counts.filter((pl.col("n_correct") > 0) & (pl.col("n_correct") < pl.col("n")))
    ids = between["prompt_id"].unique()
    kept = train.filter(pl.col("prompt_id").is_in(ids.implode()))
    return kept.filter(~pl.col("prompt").is_in(test["prompt"].implode()))
