"""Request frames (prompt_id, prompt, n, phase): validated before anything is generated."""

from __future__ import annotations

import polars as pl

from pcbench.schema import PHASES

MAX_PROBLEMS_SHOWN = 10


class RequestError(ValueError):
    """A generation request is invalid; nothing was generated."""


def validate_requests(requests: pl.DataFrame, tokenizer, max_model_len: int) -> list[list[int]]:
    """Token ids of each prompt, or RequestError naming every bad request."""
    missing = {"prompt_id", "prompt", "n", "phase"} - set(requests.columns)
    if missing:
        raise RequestError(f"requests lack columns {sorted(missing)}")
    problems, prompt_ids = [], []
    for row in requests.iter_rows(named=True):
        ids = tokenizer(row["prompt"] or "").input_ids
        prompt_ids.append(ids)
        where = f"request {row['prompt_id']!r}"
        if not row["prompt"]:
            problems.append(f"{where}: empty prompt")
        elif len(ids) >= max_model_len:
            problems.append(
                f"{where}: prompt has {len(ids)} tokens, max_model_len is {max_model_len}"
            )
        if not isinstance(row["n"], int) or row["n"] < 1:
            problems.append(f"{where}: n = {row['n']}, must be >= 1")
        if row["phase"] not in PHASES:
            problems.append(f"{where}: phase {row['phase']!r} not in {sorted(PHASES)}")
    if problems:
        more = " ..." if len(problems) > MAX_PROBLEMS_SHOWN else ""
        raise RequestError("; ".join(problems[:MAX_PROBLEMS_SHOWN]) + more)
    return prompt_ids
