"""What the ledger counts, for every strategy and both paths: the one place that decides it.

`pcbench.ledger.Ledger` is the store (counters, gauges, timers, cumulative columns); these
functions say which event adds what. The loop's Pilot-Commit rounds and the dashboard's
hand-stepped stages (both through `pcbench.rounds`), the baselines' rounds, dynamic sampling
(under the strategy's phase name), batch closing, training and epoch ends all count here, so a
number in a ledger means the same thing whichever path made it. Counters only one strategy
keeps live in its own module (pcbench.strategies). Names are listed in the ledger's docstring.
"""

from __future__ import annotations

import polars as pl

from pcbench.ledger import Ledger


def verdict_counts(scores: pl.DataFrame) -> dict[str, int]:
    """Counts of a SCORES frame's verdicts (the rounds' ledger and the widgets' preview)."""
    return {
        "filtering_stats/kept": int((scores["verdict"] == "keep").sum()),
        "filtering_stats/too_easy": int((scores["verdict"] == "too_easy").sum()),
        "filtering_stats/too_hard": int((scores["verdict"] == "too_hard").sum()),
        "filtering_stats/evict_marked": int(scores["evict"].sum()),
    }


def count_call(ledger: Ledger, step: int, health) -> None:
    """One engine call's verification (rollouts are counted with their round)."""
    ledger.count_verifier(step, health)


def count_pc_round(ledger: Ledger, r, pilot_counts: dict[str, int]) -> None:
    """A finished Pilot-Commit round (`rounds.PCRound`): rollouts by phase, verdicts, buffer
    traffic and the age of the pilot data trained on, and the pilot's own counts."""
    step = r.step
    ledger.count_rollouts(step, pl.concat([r.pilot.rollouts, r.commit_rollouts]))
    ledger.add(step, "rounds")
    ledger.add(step, "filtering_stats/seen", r.scores.height)
    for name, count in verdict_counts(r.scores).items():
        ledger.add(step, name, count)
    ledger.add(step, "buffer_stats/add", len(r.added))
    ledger.add(step, "buffer_stats/take", len(r.taken))
    for e in r.taken:
        ledger.add(step, "buffer_stats/age_sum", e.age(step))
        ledger.max(step, "buffer_stats/age_max", e.age(step))
    for name, count in pilot_counts.items():
        ledger.add(step, name, count)


def count_baseline_round(ledger: Ledger, step: int, rollouts: pl.DataFrame, health) -> None:
    """A GRPO, DAPO or peer round (GRESO, MoPPS, Knapsack-RL): its one engine call's rollouts
    and verification."""
    ledger.count_rollouts(step, rollouts)
    count_call(ledger, step, health)
    ledger.add(step, "rounds")


def count_dynamic_filter(
    ledger: Ledger, step: int, phase: str, seen: int, informative: int, room: int
) -> None:
    """Dynamic sampling over one round (DAPO's, and GRESO's after rollout), under the
    strategy's phase name: groups kept, discarded (equal rewards) and surplus."""
    ledger.add(step, f"filtering_stats/{phase}_kept", min(room, informative))
    ledger.add(step, f"filtering_stats/{phase}_discarded", seen - informative)
    ledger.add(step, f"filtering_stats/{phase}_surplus", max(0, informative - room))


def dynamic_filter_violations(cfg, col, phase: str) -> list[str]:
    """The budget identity of `count_dynamic_filter`'s counts: every generated group of `phase`
    was kept, discarded or surplus, each n rollouts."""
    groups = sum(col(f"filtering_stats/{phase}_{k}") for k in ("kept", "discarded", "surplus"))
    if not (col(f"rollout_stats/{phase}") == groups * cfg.group_size).all():
        return [f"{phase} rollouts are not n x (kept + discarded + surplus groups)"]
    return []


def count_gate_skips(ledger: Ledger, step: int, easy: int, hard: int) -> None:
    """Fresh prompts the history gate kept from their pilot (no rollouts: used up for this
    epoch), by the side of the band their posterior draw fell on."""
    ledger.add(step, "filtering_stats/gate_skipped_easy", easy)
    ledger.add(step, "filtering_stats/gate_skipped_hard", hard)


def count_batch_closed(ledger: Ledger, step: int, stale_dropped: int, buffer_size: int) -> None:
    ledger.add(step, "buffer_stats/stale_drop", stale_dropped)
    ledger.set(step, "buffer_stats/size", buffer_size)


def count_partial_batch(ledger: Ledger, step: int, in_batch: int) -> None:
    """max_rounds ran out with `train_partial`: the step trains on fewer prompts, logged."""
    ledger.set(step, "partial_batch", in_batch)


def count_trained(ledger: Ledger, step: int, rollouts: pl.DataFrame) -> None:
    ledger.add(step, "rollout_stats/trained", rollouts.height)
    ledger.add(step, "filtering_stats/trained_prompts", rollouts["prompt_id"].n_unique())


def count_epoch_end(ledger: Ledger, step: int, cleared: int, evicted: int) -> None:
    ledger.add(step, "buffer_stats/epoch_clear", cleared)
    ledger.add(step, "filtering_stats/evicted", evicted)
    ledger.add(step, "epochs")


def count_interrupted(ledger: Ledger, step: int, rollouts: int, tokens: int) -> None:
    """An attempt at `step` that raised and was undone (`pcbench.atomic`): its other counts
    are gone with it, but the completions it generated were paid for."""
    ledger.add(step, "interrupted")
    ledger.add(step, "rollout_stats/interrupted", rollouts)
    ledger.add(step, "token_stats/interrupted", tokens)


def count_lost(ledger: Ledger, step: int, rollouts: int) -> None:
    """Rollouts a replica was generating when it died (`pcbench.cluster.replicas`): paid for,
    never returned; their share was generated again and counts as usual."""
    if rollouts:
        ledger.add(step, "rollout_stats/lost", rollouts)
