"""Benchmark loaders: MATH-500, AIME, AMC and Minerva-style files into PROMPTS frames.

A file is JSON lines, a JSON array, or parquet, on local disk or at an `hf://datasets/...`
path (read by polars on machines with hub access); a glob names sharded files (`train-*.parquet`). The format is recognised from the fields:

| fields present                     | gold answer                            | prompt_id              |
|------------------------------------|----------------------------------------|------------------------|
| problem or question, answer        | `answer` (floats become clean text)    | unique_id, id, idx, line |
| question, final_answer (DeepMath)  | `final_answer`                         | unique_id, id, idx, line |
| problem, solution only (Minerva)   | last \\boxed{} of `solution`           | idx, id or line        |

A malformed row raises DatasetError naming the file, the line and the problem; with
`lenient=True` it is skipped and counted in `Benchmark.skipped` (and a warning says so).
"""

from __future__ import annotations

import json
import math
import re
import warnings
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl

from pcbench.schema import PROMPTS
from pcbench.tasks.boxed import last_boxed
from pcbench.tasks.files import describe_missing, expand, is_remote


class DatasetError(ValueError):
    """A dataset file or row cannot be turned into a prompt."""


@dataclass(frozen=True)
class Benchmark:
    name: str
    path: str
    prompts: pl.DataFrame  # PROMPTS schema
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (line, problem)

    def __len__(self) -> int:
        return len(self.prompts)

    def __repr__(self) -> str:
        return f"Benchmark({self.name!r}, {len(self)} prompts, {len(self.skipped)} skipped, {self.path})"


def clean_answer(value: Any) -> str:
    """Gold answers as text: 27.0 -> '27', 0.5 -> '0.5', 1e-05 -> '0.00001', ' 3 ' -> '3'."""
    if isinstance(value, bool) or value is None:
        raise DatasetError(f"answer {value!r} is not a number or text")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise DatasetError(f"answer {value!r} is not finite")
        if value.is_integer():
            return str(int(value))
        return format(Decimal(repr(value)).normalize(), "f")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value.strip()
    raise DatasetError(f"answer of type {type(value).__name__} is not a number or text")


def read_records(path: str) -> list[tuple[int, Any]]:
    """(line number, record) pairs; line numbers are 1-based (row numbers for parquet/JSON arrays),
    counted across shards when `path` is a glob (see pcbench.tasks.files)."""
    files = expand(path)
    if not files:
        raise DatasetError(describe_missing(path))
    if len(files) == 1:
        return _read_file(files[0])  # line numbers as in the file
    records: list[tuple[int, Any]] = []
    for file in files:
        start = len(records) + 1
        records += [(start + i, record) for i, (_, record) in enumerate(_read_file(file))]
    return records


def _read_file(path: str) -> list[tuple[int, Any]]:
    if path.endswith(".parquet") or is_remote(path):
        frame = pl.read_parquet(path) if path.endswith(".parquet") else pl.read_ndjson(path)
        return list(enumerate(frame.iter_rows(named=True), start=1))
    p = Path(path)
    text = p.read_text(encoding="utf-8", errors="replace")
    if p.suffix == ".json" and text.lstrip().startswith("["):
        return list(enumerate(json.loads(text), start=1))
    records = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append((line_no, json.loads(line)))
        except json.JSONDecodeError as e:
            records.append((line_no, DatasetError(f"not valid JSON ({e.msg} at column {e.colno})")))
    return records


def to_prompt_row(record: Any, line: int, name: str, template) -> dict[str, Any]:
    """One PROMPTS row from a raw record; raises DatasetError naming the problem."""
    if isinstance(record, Exception):
        raise record
    if not isinstance(record, dict):
        raise DatasetError(f"expected a JSON object, got {type(record).__name__}")
    problem = record.get("problem") or record.get("question")
    if not isinstance(problem, str) or not problem.strip():
        raise DatasetError("no 'problem' text")
    given = record.get("answer", record.get("final_answer"))  # final_answer: DeepMath-103K
    if given is not None:
        answer = clean_answer(given)
    elif isinstance(record.get("solution"), str):
        answer = last_boxed(record["solution"])
        if answer is None:
            raise DatasetError("no 'answer' field and no \\boxed{} answer in 'solution'")
        answer = answer.strip()
    else:
        raise DatasetError("no 'answer' field and no 'solution' to take it from")
    if not answer:
        raise DatasetError("empty answer")
    key = next((record[k] for k in ("unique_id", "id", "idx") if record.get(k) is not None), line)
    level = record.get("level")
    return {
        "prompt_id": f"{name}/{key}",
        "prompt": template.render(problem.strip()),
        "answer": answer,
        "source": name,
        "difficulty": level if isinstance(level, int) and not isinstance(level, bool) else None,
        "solution": record.get("solution") if isinstance(record.get("solution"), str) else None,
    }


def load_benchmark(
    path: str | Path, template, *, name: str | None = None, lenient: bool = False
) -> Benchmark:
    """Read a benchmark file into PROMPTS rows rendered with `template` (see module docstring)."""
    path = str(path)
    # "data/deepmath/data/train-*.parquet" -> "train": the shard pattern is not part of the name
    name = name or re.sub(r"[-_.]*[*?\[].*$", "", Path(path).name.split(".")[0]) or "data"
    rows, skipped = [], []
    for line, record in read_records(path):
        try:
            rows.append(to_prompt_row(record, line, name, template))
        except DatasetError as e:
            if not lenient:
                raise DatasetError(f"{path}, line {line}: {e}") from None
            skipped.append((line, str(e)))
    if skipped:
        shown = "; ".join(f"line {ln}: {why}" for ln, why in skipped[:3])
        warnings.warn(f"{path}: skipped {len(skipped)} malformed rows ({shown})", stacklevel=2)
    if not rows:
        raise DatasetError(f"{path}: no usable rows")
    if len(ids := [r["prompt_id"] for r in rows]) != len(set(ids)):
        raise DatasetError(f"{path}: duplicate prompt ids")
    return Benchmark(name, path, PROMPTS.frame(rows), skipped)
