"""GRESO's pre-rollout skipping (arXiv 2506.02177; Infini-AI-Lab/GRESO), as pure rules.

Each prompt keeps the trace of its groups' success rates, one entry per time it was rolled out
(skipped prompts add nothing; the trace is unbounded). z is the number of trailing entries
that were all-correct (or all-wrong); the prompt is then skipped with probability

    1 - max(p_easy ** z, 0.01)     trailing all-correct groups
    1 - max(p_hard ** z, 0.01)     trailing all-wrong groups

and a prompt never rolled out is never skipped. After each training step, once past the first
epoch, p_easy and p_hard move by 0.01 (clamped to [0.05, 0.95]): down (more skipping) when that
step's share of all-correct (all-wrong) groups is at or above its target, up otherwise; the
targets are 1/3 and 2/3 of a zero-variance target of 0.25. Survivors get n rollouts each,
zero-variance groups are dropped, and rounds repeat until the batch is full; the next round's
size is the rollouts still missing / (1 - the last round's zero-variance share) / n x 1.25
prompts, clipped to [min_prompts, round_prompts]; a round predicted to suffice is the last.

GRESO's bookkeeping reads its own reward, 1 / 0.1 / 0 (correct / wrong answer / no answer),
which pcbench rebuilds from the verifier's `correct` and `verify_status` (strategies.greso.greso_rewards):
a trace entry is a group's mean reward, "all-correct" is a mean >= 0.98 and "all-wrong" a mean
<= 0.11 (so at groups of 64 or more one wrong rollout still counts as all-correct, as there);
the step's shares count groups whose rewards are all 1 or all 0.1 (an all-no-answer group is
neither). Training rewards stay 0/1 like every strategy's here. A rollout the verifier could
not check (timeout, error) counts as a wrong answer. Matched against the public functions'
outputs in tests/golden/greso.json. Deviation: a round whose groups were all zero-variance (the
official code divides by zero) asks for the largest round.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

FLOOR = 0.01  # a streak never makes a skip certain
EASY_AT, HARD_AT = 0.98, 0.11  # mean rewards the public selector reads as all-correct / -wrong
CORRECT, WRONG, NO_ANSWER = 1.0, 0.1, 0.0  # GRESO's reward
STEP, P_MIN, P_MAX = 0.01, 0.05, 0.95
TARGET_ZERO_VARIANCE = 0.25
TARGET_EASY, TARGET_HARD = TARGET_ZERO_VARIANCE / 3, TARGET_ZERO_VARIANCE * 2 / 3


def trailing_run(trace: Sequence[float], test: Callable[[float], bool]) -> int:
    """How many entries at the end of `trace` pass `test`."""
    z = 0
    for rate in reversed(trace):
        if not test(rate):
            break
        z += 1
    return z


def group_counts(groups: Sequence[Sequence[float]]) -> dict[str, int]:
    """How many groups (lists of GRESO rewards) were all-correct and all-wrong, as the step
    shares that move p_easy and p_hard count them."""
    return {
        "groups": len(groups),
        "easy": sum(all(r == CORRECT for r in g) for g in groups),
        "hard": sum(all(r == WRONG for r in g) for g in groups),
    }


def skip_probability(trace: Sequence[float], p_easy: float, p_hard: float) -> float:
    """Chance that a prompt with this trace of group mean rewards is skipped before rollout."""
    if z := trailing_run(trace, lambda r: r >= EASY_AT):
        return 1.0 - max(p_easy**z, FLOOR)
    if z := trailing_run(trace, lambda r: r <= HARD_AT):
        return 1.0 - max(p_hard**z, FLOOR)
    return 0.0


def targets(zero_variance: float = TARGET_ZERO_VARIANCE) -> tuple[float, float]:
    """(all-correct, all-wrong) target shares of a step's groups: 1/3 and 2/3 of the target."""
    return zero_variance / 3, zero_variance * 2 / 3


def adapt(p: float, share: float, target: float) -> float:
    """One step's move of p_easy (or p_hard) given the step's all-correct (all-wrong) share."""
    return max(p - STEP, P_MIN) if share >= target else min(p + STEP, P_MAX)


def next_round(
    missing_rollouts: int, zero_variance_share: float, n: int, round_prompts: int,
    min_prompts: int,
) -> tuple[int, bool]:  # fmt: skip
    """(prompts to draw for the next round, whether it is predicted to be the last)."""
    if zero_variance_share >= 1.0:
        return round_prompts, False
    estimate = int(missing_rollouts / (1.0 - zero_variance_share) / n * 1.25)
    return max(min(estimate, round_prompts), min_prompts), estimate <= round_prompts
