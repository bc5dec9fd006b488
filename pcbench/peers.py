"""The peer strategies as short loops: greso_step, mopps_step, knapsack_step (`loop.STEP_FNS`).

Three published ways to spend a step's rollouts, built from the same steps as the baselines
(the prompt stream, `requests`/`generate` through `loop._generate`, `score`, `loop.train_on`)
and counted in the same ledger, so their costs compare with Pilot-Commit's one for one:

    GRESO        arXiv 2506.02177, github.com/Infini-AI-Lab/GRESO
    MoPPS        arXiv 2507.04632, github.com/thu-rllab/MoPPS
    Knapsack-RL  arXiv 2509.25849, github.com/liziniu/KnapsackRL

Their rules are pure functions in pcbench.algos.{greso,mopps,knapsack} (each module says what
the public code does); what they remember per prompt lives on `State.prompt_state`
(pcbench.prompt_state), checkpointed with the run and undone with an undone step. Their random
choices (GRESO's skips, MoPPS's Thompson draws) use seeds derived from (run seed, step, round),
as the engine's do, so a retried or resumed step makes the same ones.

Deviations from the public code, on purpose:
- GRESO draws the epoch's prompts one at a time until a round has its survivors; the official
  loader pulls 32-prompt chunks until it has at least that many and trims to a multiple of the
  GPU count. Same rule, exact round sizes, and no surplus to carry into the next round.
- An epoch that runs out inside a step discards the step's partial batch and starts the next
  epoch, as GRPO and DAPO do here (DESIGN §4.6); the official loaders roll straight on. GRESO's
  counts of all-correct and all-wrong groups still include the discarded rounds (they are kept
  on `prompt_state` until the step trains), as the official per-step shares do.
- GRESO moves p_easy and p_hard just before the update instead of just after it: they steer
  only the next step's skips, and this way an update that fails undoes the move with the step.
- Success is the verifier's `correct` (0/1) for all three in training; GRESO's skip traces and
  step shares read its own 1 / 0.1 / 0 reward, rebuilt from the verifier (algos/greso.py).
  Like DAPO, GRESO gives up after max_rounds rounds (on_max_rounds).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from pcbench import accounting
from pcbench.algos import greso, knapsack, mopps
from pcbench.config import RunConfig
from pcbench.state import State
from pcbench.steps import call_seed, score

SKIP_SALT, THOMPSON_SALT = 1, 2  # their seeds differ from the engine call's of the same round


def greso_step(s: State, cfg: RunConfig, step: int) -> dict | None:
    """Rounds of prompts that survive GRESO's skip x n rollouts; groups whose rewards differ fill
    B (surplus discarded); a round predicted to fill the batch is the last, full or not."""
    from pcbench.loop import _generate, max_rounds_reached, train_on  # loop imports this module

    gc, traces, B, n = cfg.greso, s.prompt_state, cfg.batch_prompts, cfg.group_size
    kept: list[pl.DataFrame] = []
    size, last = gc.round_prompts, False
    for r in range(1, cfg.max_rounds + 1):
        pool = survivors(s, cfg, step, r, size)
        if pool is None:
            return None
        rollouts = _generate(s, cfg, step, r, pool, "greso")
        scores = score(rollouts, cfg)
        traces.record(*greso_rewards(rollouts))  # every group, also those dropped
        informative = scores.filter(pl.col("std") > 0)["prompt_id"].to_list()
        room = B - len(kept)
        kept += [rollouts.filter(pl.col("prompt_id") == p) for p in informative[:room]]
        accounting.count_greso_filter(s.ledger, step, scores.height, len(informative), room)
        if len(kept) >= B or last:
            break
        zero_variance = 1 - len(informative) / scores.height  # this round's share only
        size, last = greso.next_round(
            (B - len(kept)) * n, zero_variance, n, gc.round_prompts, gc.min_round_prompts
        )
    else:
        max_rounds_reached(s, cfg, step, len(kept))
    if len(kept) < B:  # the last round fell short: train on what there is, as the official code
        accounting.count_partial_batch(s.ledger, step, len(kept))
    traces.end_step(gc.target_zero_variance, adapting=s.stream.epoch > 0)
    metrics = train_on(s, cfg, step, pl.concat(kept)) if kept else {}
    metrics |= {"greso/p_easy": traces.p_easy, "greso/p_hard": traces.p_hard}  # logged with it
    return metrics


def greso_rewards(rollouts: pl.DataFrame) -> tuple[list[str], list[list[float]]]:
    """(prompt ids, each group's GRESO rewards: 1 / 0.1 / 0) of a round's rollouts."""
    reward = (
        pl.when(pl.col("correct").fill_null(False))
        .then(greso.CORRECT)
        .when(pl.col("verify_status") == "no_answer")
        .then(greso.NO_ANSWER)
        .otherwise(greso.WRONG)  # a wrong answer, or one the verifier could not check
    )
    frame = rollouts.group_by("prompt_id", maintain_order=True).agg(reward.alias("greso_reward"))
    return frame["prompt_id"].to_list(), frame["greso_reward"].to_list()


def survivors(s: State, cfg: RunConfig, step: int, round: int, size: int) -> pl.DataFrame | None:
    """The epoch's next `size` prompts that GRESO does not skip (PROMPTS rows), or None if the
    epoch runs out first. A skipped prompt is used up for this epoch, as in the official loader."""
    rng = np.random.default_rng(call_seed(cfg.seed, step, round, SKIP_SALT))
    traces, picked, skipped = s.prompt_state, [], {"easy": 0, "hard": 0}
    while len(picked) < size:
        prompt = s.stream.next_pool(1)
        if prompt is None:
            break
        prompt_id = prompt["prompt_id"][0]
        p = traces.skip_probability(prompt_id)
        if p > 0 and rng.random() < p:
            skipped[traces.streak(prompt_id)] += 1
        else:
            picked.append(prompt)
    accounting.count_greso_skips(s.ledger, step, skipped["easy"], skipped["hard"])
    return pl.concat(picked) if len(picked) == size else None


def mopps_step(s: State, cfg: RunConfig, step: int) -> dict | None:
    """MoPPS: of ratio x B candidates, the B whose Thompson draw from their Beta posterior is
    nearest 0.5 (or inside the band) get n rollouts each, all trained on; then every rolled-out
    prompt's posterior takes its successes and failures."""
    from pcbench.loop import _generate, train_on  # loop imports this module

    mc, posteriors = cfg.mopps, s.prompt_state
    candidates = s.stream.next_pool(mc.candidates(cfg.batch_prompts))
    if candidates is None:
        return None
    rng = np.random.default_rng(call_seed(cfg.seed, step, 1, THOMPSON_SALT))
    band = mc.band if mc.selection == "band" else None
    chosen = mopps.select(*posteriors.get(candidates["prompt_id"]), cfg.batch_prompts, rng, band)
    rollouts = _generate(s, cfg, step, 1, candidates[np.sort(chosen)], "mopps")  # stream order
    scores = score(rollouts, cfg)
    posteriors.observe(scores["prompt_id"], scores["n_correct"], scores["n"], mc.decay)
    accounting.count_mopps_selection(s.ledger, step, candidates.height, len(chosen))
    return train_on(s, cfg, step, rollouts)


def knapsack_step(s: State, cfg: RunConfig, step: int) -> dict | None:
    """Knapsack-RL: B fresh prompts share B x n rollouts by their estimated success rates; every
    group is trained on (groups differ in size; advantages are per prompt)."""
    from pcbench.loop import _generate, train_on  # loop imports this module

    kc, rewards = cfg.knapsack, s.prompt_state
    pool = s.stream.next_pool(cfg.batch_prompts)
    if pool is None:
        return None
    p_hat = rewards.estimates(pool["prompt_id"])
    counts = knapsack.allocate(
        p_hat, cfg.group_size, min_n=kc.min_n, max_n=kc.max_n, alpha=kc.alpha,
        negative_n=kc.negative_n, positive_n=kc.positive_n,
    )  # fmt: skip
    rollouts = _generate(s, cfg, step, 1, pool, "knapsack", counts)
    visits = rollouts.group_by("prompt_id", maintain_order=True).agg(
        pl.col("correct").fill_null(False).cast(pl.Float64)
    )
    rewards.observe(visits["prompt_id"], visits["correct"].to_list())
    accounting.count_knapsack_split(s.ledger, step, p_hat)
    return train_on(s, cfg, step, rollouts)
