"""Declared polars schemas for every frame passed between steps, and a cheap `check()`.

A step validates its output frame before returning it, so a missing or mistyped column fails at
the step that produced it, with a message naming the column, instead of as a late KeyError.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl


class SchemaError(ValueError):
    """A frame does not have the columns, dtypes or values its schema declares."""


@dataclass(frozen=True)
class Schema:
    """Required and optional columns with dtypes; `values` restricts enum-like string columns."""

    name: str
    required: dict[str, pl.DataType]
    optional: dict[str, pl.DataType] = field(default_factory=dict)
    values: dict[str, frozenset[str]] = field(default_factory=dict)
    non_null: frozenset[str] = frozenset()
    names: frozenset[str] = frozenset()  # string columns whose values are names (is_phase_name)

    @property
    def columns(self) -> dict[str, pl.DataType]:
        return {**self.required, **self.optional}

    def check(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Return `frame` unchanged if it conforms; raise SchemaError saying what is wrong."""
        if not isinstance(frame, pl.DataFrame):
            raise SchemaError(
                f"{self.name}: expected a polars DataFrame, got {type(frame).__name__}"
            )
        problems = []
        if missing := [c for c in self.required if c not in frame.columns]:
            problems.append(f"missing columns {missing}")
        for col, dtype in self.columns.items():
            if col in frame.columns and frame.schema[col] != dtype:
                problems.append(f"column {col!r} has dtype {frame.schema[col]}, expected {dtype}")
        for col in self.non_null:
            if col in frame.columns and (n := frame[col].null_count()):
                problems.append(f"column {col!r} has {n} nulls")
        for col, allowed in self.values.items():
            if col in frame.columns and frame.schema[col] == pl.String:
                bad = set(frame[col].drop_nulls().unique().to_list()) - allowed
                if bad:
                    problems.append(
                        f"column {col!r} has values {sorted(bad)}, allowed {sorted(allowed)}"
                    )
        for col in self.names:
            if col in frame.columns and frame.schema[col] == pl.String:
                bad = [
                    v for v in frame[col].drop_nulls().unique().to_list() if not is_phase_name(v)
                ]
                if bad:
                    problems.append(f"column {col!r} has values {sorted(bad)}, not names")
        if problems:
            raise SchemaError(f"{self.name} frame: " + "; ".join(problems))
        return frame

    def frame(self, rows: list[dict[str, Any]] | dict[str, list]) -> pl.DataFrame:
        """Build a frame of this schema from rows (or columns); optional columns given are kept."""
        if isinstance(rows, dict):
            present = [c for c in self.columns if c in rows]
        else:
            present = [c for c in self.columns if c in rows[0]] if rows else list(self.required)
        schema = {c: self.columns[c] for c in present}
        return self.check(
            pl.DataFrame(rows, schema=schema, orient="row" if isinstance(rows, list) else None)
        )

    def empty(self) -> pl.DataFrame:
        return pl.DataFrame(schema=self.required)


# Rollout phases are names, not a closed list: evaluation's ("eval") and whatever the registered
# strategies generate under (pcbench.strategies: each declares its own). The ledger pays for
# every phase but "eval" (rollout_stats/<phase>), so a phase no list knows is still counted.


def is_phase_name(value: str) -> bool:
    """A phase is a lowercase Python identifier (it names ledger columns and config keys)."""
    return value.isidentifier() and value == value.lower()


FINISH = frozenset({"stop", "length"})
VERIFY_STATUS = frozenset({"ok", "no_answer", "timeout", "error"})
VERDICTS = frozenset({"keep", "too_easy", "too_hard"})

PROMPTS = Schema(
    "PROMPTS",
    required={
        "prompt_id": pl.String,  # unique within a task, e.g. "arith/train/00042", "math500/test/..."
        "prompt": pl.String,  # the exact text fed to the model (template already applied)
        "answer": pl.String,  # gold final answer, checked by the verifier
        "source": pl.String,  # task or benchmark name
        "difficulty": pl.Int32,  # graded level where known (arith 1-5, MATH level), else null
    },
    optional={"solution": pl.String},  # a reference solution, where the source has one
    non_null=frozenset({"prompt_id", "prompt", "answer", "source"}),
)

ROLLOUTS = Schema(
    "ROLLOUTS",
    required={
        "step": pl.Int64,
        "round": pl.Int64,
        "phase": pl.String,
        "prompt_id": pl.String,
        "sample": pl.Int64,  # index of the completion within its prompt's request
        "policy_version": pl.Int64,  # Policy.version the engine generated with
        "completion": pl.String,
        "token_ids": pl.List(pl.Int64),
        "logprobs": pl.List(pl.Float64),  # sampling log-probs, one per token
        "n_tokens": pl.Int64,
        "finish": pl.String,
    },
    optional={
        "reward": pl.Float64,
        "correct": pl.Boolean,
        "verify_status": pl.String,
        "extracted": pl.String,
    },
    values={"finish": FINISH, "verify_status": VERIFY_STATUS},
    names=frozenset({"phase"}),
    non_null=frozenset({"step", "phase", "prompt_id", "sample", "token_ids"}),
)

SCORES = Schema(
    "SCORES",
    required={
        "step": pl.Int64,
        "prompt_id": pl.String,
        "n": pl.Int64,
        "n_correct": pl.Int64,
        "mean": pl.Float64,
        "var": pl.Float64,
        "std": pl.Float64,
        "verdict": pl.String,
        "evict": pl.Boolean,
    },
    values={"verdict": VERDICTS},
    non_null=frozenset({"step", "prompt_id", "verdict"}),
)

PLAN = Schema("PLAN", required={"step": pl.Int64, "prompt_id": pl.String, "n_commit": pl.Int64})

EVALS = Schema(
    "EVALS",
    required={
        "step": pl.Int64,
        "benchmark": pl.String,
        "prompt_id": pl.String,
        "k": pl.Int64,
        "mean@k": pl.Float64,
        "pass@k": pl.Float64,
    },
)

METRICS = Schema("METRICS", required={"step": pl.Int64, "name": pl.String, "value": pl.Float64})
