"""Rewards: judge a completion's final answer against the gold answer with math-verify.

`judge` is the single-item, in-process check. Model output is untrusted: math-verify's own
timeouts use SIGALRM (main thread only) and some inputs hang it, so anything that judges many
model outputs must run `judge` in killable worker processes (the Verifier of DESIGN §6).
"""

from __future__ import annotations

from dataclasses import dataclass

from pcbench.tasks.boxed import last_boxed


@dataclass(frozen=True)
class Judgement:
    status: str  # ok / no_answer / error (timeouts are decided by whoever runs judge)
    extracted: str | None  # the final answer the completion gave
    correct: bool


def judge(completion: str, gold: str) -> Judgement:
    """Is the last \\boxed{} answer of `completion` equal to `gold` (math-verify semantics)?"""
    from math_verify import parse, verify

    extracted = last_boxed(completion)
    if extracted is None or not extracted.strip():
        return Judgement("no_answer", extracted, False)
    try:
        # Wrapped back in \boxed{} so math-verify's boxed extraction reads exactly this answer.
        predicted = parse(f"\\boxed{{{extracted}}}", raise_on_error=True)
        target = parse(f"\\boxed{{{gold}}}", raise_on_error=True)
        return Judgement("ok", extracted, bool(verify(target, predicted, raise_on_error=True)))
    except Exception:  # noqa: BLE001 — any failure inside math-verify is an `error` status
        return Judgement("error", extracted, False)
