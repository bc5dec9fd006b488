"""Request frames (prompt_id, prompt, n, phase): validated before anything is generated."""

from __future__ import annotations

import polars as pl

from pcbench.schema import is_phase_name

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
        if not isinstance(row["phase"], str) or not is_phase_name(row["phase"]):
            problems.append(
                f"{where}: phase {row['phase']!r} is not a phase name (a lowercase identifier)"
            )
    if problems:
        more = " ..." if len(problems) > MAX_PROBLEMS_SHOWN else ""
        raise RequestError("; ".join(problems[:MAX_PROBLEMS_SHOWN]) + more)
    return prompt_ids


def request_seeds(call_seed: int, requests: pl.DataFrame) -> list[int]:
    """One sampling seed per request row, from (call seed, prompt_id, phase, occurrence).

    A request's samples then depend on nothing else in the call, so the same requests give the
    same rollouts however they are batched or split across engine replicas. vLLM gives the
    i-th of a request's n samples seed + i, so seeds are drawn below 2**62 (no overflow).
    """
    import hashlib

    import numpy as np

    seen: dict[tuple[str, str], int] = {}
    seeds = []
    for prompt_id, phase in zip(requests["prompt_id"], requests["phase"], strict=True):
        k = seen[(prompt_id, phase)] = seen.get((prompt_id, phase), -1) + 1
        digest = hashlib.blake2b(f"{prompt_id}\0{phase}\0{k}".encode(), digest_size=8).digest()
        words = [call_seed, *divmod(int.from_bytes(digest, "little"), 2**32)]
        state = np.random.SeedSequence(words).generate_state(1, dtype=np.uint64)
        seeds.append(int(state[0]) % 2**62)
    return seeds
