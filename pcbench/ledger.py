"""Ledger: rollout, token, prompt, buffer and time accounting per training step.

One row per step. Counters are summed within a step (`add`), gauges are overwritten (`set`).
Names follow the official recipe's metric groups so the two logs line up:
    rollout_stats/<phase>                    rollouts generated, by phase (each strategy's
                                             own: pilot and commit for Pilot-Commit, grpo...)
    rollout_stats/interrupted                rollouts an undone (interrupted) attempt generated
    rollout_stats/trained                    rollouts in the trained batch
    rollout_stats/lost                       rollouts a dead engine replica was generating
                                             (regenerated elsewhere; tokens unknown, uncounted)
    token_stats/{<phase>,interrupted}        completion tokens generated, by phase
    filtering_stats/trained_prompts          prompts in the trained batch
    filtering_stats/*                        each strategy's counters (its `allocation` and
                                             `counters`, pcbench.strategies: PC's seen, kept,
                                             too_easy...; dapo_kept...; greso_*; mopps_*...)
    buffer_stats/{add,take,stale_drop,size,age_sum,age_max}   (mean age = age_sum / take)
    verifier/*, rounds, epochs, interrupted (attempts undone, pcbench.atomic)
    time/{generate,score,update,sync,evaluate,log,step}   seconds (generate includes verify;
                                             step = the whole step before its log writes)
Cumulative columns (`cumulative/rollouts`, `cumulative/tokens`) count every generated rollout
and token of training (pilots of skipped prompts and DAPO's discarded groups included;
evaluation excluded), DESIGN §4.9.
"""

from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager

import polars as pl

CUMULATIVE = ("cumulative/rollouts", "cumulative/tokens", "cumulative/seconds")
# What a step's rollouts cost: rollout_stats/<phase> and token_stats/<phase> for every phase a
# strategy generates under (its own names: the ledger lists none), plus what an undone attempt
# generated (interrupted: paid for, never trained on; pcbench.atomic) and, for rollouts only,
# what a dead replica was generating (lost: paid, its tokens unknown). rollout_stats/trained is
# the one rollout count that is not a cost.
NOT_PAID = ("rollout_stats/trained",)
# Every name pcbench counts, so that each step's ledger part has the same columns (0 where a
# step counted nothing) and `pl.read_parquet("runs/x/ledger/*.parquet")` reads a whole run.
# The registered strategies add their phases' and counters' columns (`known_columns`).
COLUMNS = [
    *(f"rollout_stats/{p}" for p in ("interrupted", "lost", "trained")),
    "token_stats/interrupted",
    "filtering_stats/trained_prompts",
    *(f"buffer_stats/{n}" for n in (
        "add", "take", "stale_drop", "size", "age_sum", "age_max", "epoch_clear")),
    *(f"verifier/{n}" for n in (
        "items", "ok", "no_answer", "timeout", "error", "cache_hits", "fast_path", "seconds",
        "timeout_alarm", "worker_restarts", "error_rate", "timeout_rate", "cache_hit_rate")),
    *(f"time/{n}" for n in ("generate", "score", "update", "sync", "evaluate", "log", "step")),
    "rounds", "epochs", "partial_batch", "interrupted",
]  # fmt: skip


def known_columns(names) -> None:
    """Columns every ledger frame carries from now on (a strategy's, at its registration)."""
    COLUMNS.extend(n for n in names if n not in COLUMNS)


def is_paid(name: str) -> bool:
    """A rollout or token count that is part of the cumulative cost."""
    return name.startswith(("rollout_stats/", "token_stats/")) and name not in NOT_PAID


def is_count(name: str) -> bool:
    """A ledger column that counts things (not seconds, rates, or the verifier's seconds)."""
    return not (name.startswith("time/") or name.endswith(("_rate", "seconds")))


class Ledger:
    def __init__(self):
        self.rows: dict[int, dict[str, float]] = {}

    def _row(self, step: int) -> dict[str, float]:
        return self.rows.setdefault(step, defaultdict(float))

    def add(self, step: int, name: str, value: float = 1.0) -> None:
        self._row(step)[name] += float(value)

    def set(self, step: int, name: str, value: float) -> None:
        self._row(step)[name] = float(value)

    def max(self, step: int, name: str, value: float) -> None:
        row = self._row(step)
        row[name] = max(row.get(name, float(value)), float(value))

    def count_verifier(self, step: int, health) -> None:
        """Add one verify() call's counts; rates are recomputed from the step's totals."""
        if health is None:
            return
        for name, value in health.metrics().items():
            if not name.endswith("_rate"):
                self.add(step, name, value)
        row = self._row(step)
        items = max(row["verifier/items"], 1.0)
        row["verifier/error_rate"] = (row["verifier/timeout"] + row["verifier/error"]) / items
        row["verifier/timeout_rate"] = row["verifier/timeout"] / items
        row["verifier/cache_hit_rate"] = row["verifier/cache_hits"] / items

    def count_rollouts(self, step: int, rollouts: pl.DataFrame) -> None:
        """Add generated rollouts and tokens by phase (eval rollouts are not counted)."""
        by_phase = rollouts.filter(pl.col("phase") != "eval").group_by("phase", maintain_order=True)
        for (phase,), part in by_phase:
            self.add(step, f"rollout_stats/{phase}", part.height)
            self.add(step, f"token_stats/{phase}", part["n_tokens"].sum())

    @contextmanager
    def time(self, step: int, stage: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(step, f"time/{stage}", time.perf_counter() - start)

    def generated(self, step: int) -> tuple[float, float]:
        """(rollouts, tokens) generated for training at `step` (interrupted attempts included)."""
        row = self.rows.get(step, {})
        paid = [k for k in row if is_paid(k)]
        rollouts = sum((row[k] for k in paid if k.startswith("rollout_stats/")), 0.0)
        tokens = sum((row[k] for k in paid if k.startswith("token_stats/")), 0.0)
        return rollouts, tokens

    def frame(self) -> pl.DataFrame:
        """One row per step, every name of COLUMNS (and any other counted) a column (missing =
        0), plus the cumulative columns."""
        if not self.rows:
            return pl.DataFrame(schema=dict.fromkeys(CUMULATIVE, pl.Float64) | {"step": pl.Int64})
        names = sorted(set(COLUMNS) | {k for row in self.rows.values() for k in row})
        steps = sorted(self.rows)
        cols = {"step": steps} | {n: [self.rows[s].get(n, 0.0) for s in steps] for n in names}
        frame = pl.DataFrame(cols, schema={"step": pl.Int64} | {n: pl.Float64 for n in names})
        generated = [self.generated(s) for s in steps]
        return frame.with_columns(
            pl.Series("cumulative/rollouts", [g[0] for g in generated]).cum_sum(),
            pl.Series("cumulative/tokens", [g[1] for g in generated]).cum_sum(),
            pl.Series("cumulative/seconds", [self.train_seconds(s) for s in steps]).cum_sum(),
        )

    def readable(self) -> pl.DataFrame:
        """`frame()` for people: counts as integers (rollouts, prompts, rounds; seconds, rates
        and ages stay floats). Computation keeps `frame()`, whose columns are all floats."""
        frame = self.frame()
        counts = [c for c in frame.columns if is_count(c)]
        return frame.with_columns(pl.col(counts).round(0).cast(pl.Int64))

    def train_seconds(self, step: int) -> float:
        """Wall seconds the step spent training: its time/step less its evaluation (which
        measures the method and is the same work for every strategy)."""
        row = self.rows.get(step, {})
        if not row.get("time/step"):  # step 0: the initial evaluation alone, no training
            return 0.0
        return row["time/step"] - row.get("time/evaluate", 0.0)

    def long(self) -> pl.DataFrame:
        """The same numbers in METRICS long format (step, name, value)."""
        wide = self.frame()
        if wide.height == 0:
            return pl.DataFrame(schema={"step": pl.Int64, "name": pl.String, "value": pl.Float64})
        return wide.unpivot(index="step", variable_name="name", value_name="value")

    # ---- the state protocol (state_dict / load_state_dict, as torch) ----------------------
    def state_dict(self) -> dict:
        return {"frame": self.frame()}

    def load_state_dict(self, state: dict) -> None:
        """Rows from a ledger frame (cumulative columns are recomputed, not read)."""
        frame, self.rows = state["frame"], {}
        for row in frame.drop([c for c in frame.columns if c.startswith("cumulative/")]).iter_rows(
            named=True
        ):
            step = row.pop("step")
            for name, value in row.items():
                if value is not None:
                    self.set(step, name, value)

    @classmethod
    def from_frame(cls, frame: pl.DataFrame) -> Ledger:
        """A ledger over logged ledger rows (what `Run.ledger` reads back)."""
        ledger = cls()
        ledger.load_state_dict({"frame": frame})
        return ledger

    def __repr__(self):
        if not self.rows:
            return "Ledger(empty)"
        last = self.frame().row(-1, named=True)
        return (
            f"Ledger({len(self.rows)} steps, cumulative rollouts {last['cumulative/rollouts']:,.0f}"
            f", tokens {last['cumulative/tokens']:,.0f})"
        )

    def _repr_html_(self):
        return f"<b>{self!r}</b>" + self.readable().tail(10)._repr_html_()
