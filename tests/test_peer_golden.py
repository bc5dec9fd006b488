"""Fidelity to the peers' public code: pcbench's rules against their golden vectors.

tests/golden/{knapsack,greso,mopps}.json hold what the public implementations' own functions
returned on seeded states (tests/golden/make_peer_vectors.py says how each was run, and each
file names the commit it came from). Every case must come out the same from pcbench.algos.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from pcbench.algos import greso, knapsack, mopps

GOLDEN = Path(__file__).parent / "golden"


def _load(name: str) -> dict:
    return json.loads((GOLDEN / f"{name}.json").read_text())


KNAPSACK, GRESO, MOPPS = _load("knapsack"), _load("greso"), _load("mopps")


def _ids(cases, key="name"):
    return [f"{i}-{c.get(key, '')}" for i, c in enumerate(cases)]


def test_the_vectors_name_the_public_commits_they_come_from():
    assert KNAPSACK["commit"].startswith("ca5d5f5") and KNAPSACK["repo"] == "liziniu/KnapsackRL"
    assert GRESO["commit"].startswith("b277843") and GRESO["repo"] == "Infini-AI-Lab/GRESO"
    assert MOPPS["commit"].startswith("a883f51") and MOPPS["repo"] == "thu-rllab/MoPPS"
    assert len(KNAPSACK["cases"]) >= 36 and len(MOPPS["cases"]) >= 20


# ---- Knapsack-RL -----------------------------------------------------------------------------


def _p_hat(states) -> list[float | None]:
    return [p if valid == 1 else None for valid, p, _count in states]


@pytest.mark.parametrize("case", KNAPSACK["cases"], ids=_ids(KNAPSACK["cases"]))
def test_knapsack_allocates_as_sampling_budget_by_knapsack(case):
    kwargs = dict(
        budget=case["total_budget"], min_n=case["min_n"], max_n=case["max_n"],
        alpha=case["alpha"], negative_n=case["negative_n"], positive_n=case["positive_n"],
    )  # fmt: skip
    if case["counts"] is None:  # the public code refuses a budget below the base allocation
        with pytest.raises(ValueError, match="below the base allocation"):
            knapsack.allocate(_p_hat(case["states"]), case["n"], **kwargs)
        return
    assert knapsack.allocate(_p_hat(case["states"]), case["n"], **kwargs) == case["counts"]


def test_knapsack_vectors_cover_every_kind_of_prompt_and_budget():
    kinds = {(v, p in (0.0, 1.0)) for c in KNAPSACK["cases"] for v, p, _ in c["states"]}
    assert kinds == {(0, True), (1, True), (1, False)}  # unknown, p 0 / 1, in between
    assert {c["max_n"] for c in KNAPSACK["cases"]} == {64, 128}
    assert any(c["fallback"] for c in KNAPSACK["cases"] if c["counts"])  # the cost cap binds
    assert any(c["name"].startswith("short") for c in KNAPSACK["cases"])  # the DP falls short
    assert any(c["counts"] is None for c in KNAPSACK["cases"])


@pytest.mark.parametrize("history", KNAPSACK["estimates"]["histories"])
def test_knapsack_estimates_success_rates_as_the_dataset_does(history):
    for i, (valid, rate, count) in enumerate(history["states"]):
        visits = history["visits"][: i + 1]
        assert sum(map(len, visits)) == count
        p = knapsack.estimate(visits, count)
        assert (p is not None) == (valid == 1)
        if valid:
            assert p == pytest.approx(rate, abs=1e-12)


# ---- GRESO -----------------------------------------------------------------------------------


@pytest.mark.parametrize("case", GRESO["skips"], ids=_ids(GRESO["skips"], "p_easy"))
def test_greso_skip_probability_is_the_public_functions(case):
    p = greso.skip_probability(case["trace"], case["p_easy"], case["p_hard"])
    assert p == pytest.approx(case["skip"], abs=1e-12)


@pytest.mark.parametrize("case", GRESO["shares"]["cases"])
def test_greso_counts_all_correct_and_all_wrong_groups_as_its_metrics_do(case):
    counts = greso.group_counts(case["groups"])
    groups = len(case["groups"])
    assert counts["easy"] / groups == pytest.approx(case["easy"], abs=1e-6)
    assert counts["hard"] / groups == pytest.approx(case["hard"], abs=1e-6)


@pytest.mark.parametrize("case", GRESO["adapt"]["cases"])
def test_greso_moves_p_easy_and_p_hard_as_the_trainer_does(case):
    easy, hard = greso.targets(GRESO["adapt"]["target_zero_variance"])
    adapting, shares = (
        case["epoch"] > 0,
        (case["easy"] / case["groups"], case["hard"] / case["groups"]),
    )
    p_easy = greso.adapt(case["p_easy"], shares[0], easy) if adapting else case["p_easy"]
    p_hard = greso.adapt(case["p_hard"], shares[1], hard) if adapting else case["p_hard"]
    assert (p_easy, p_hard) == pytest.approx(
        (case["p_easy_after"], case["p_hard_after"]), abs=1e-12
    )


@pytest.mark.parametrize("case", GRESO["next_round"]["cases"])
def test_greso_sizes_the_next_round_as_the_trainer_does(case):
    got = greso.next_round(
        case["missing_rollouts"], case["zero_variance"], case["n"], case["round_prompts"],
        case["min_prompts"],
    )  # fmt: skip
    assert got == (case["prompts"], case["last"])


# ---- MoPPS -----------------------------------------------------------------------------------


@pytest.mark.parametrize("case", MOPPS["cases"], ids=_ids(MOPPS["cases"], "strategy"))
def test_mopps_selects_and_updates_as_the_posterior_sampler_does(case):
    alpha, beta = np.array(case["alpha"]), np.array(case["beta"])
    band = mopps.BAND if case["strategy"] == "threshold" else None
    chosen = mopps.select(alpha, beta, case["keep"], np.random.RandomState(case["seed"]), band)
    # the same prompts; the order of equal band distances is numpy's unstable sort's
    assert sorted(chosen.tolist()) == sorted(case["chosen"])
    picked = np.array(case["chosen"])
    n = np.full(len(picked), case["n"])
    a, b = mopps.update_posterior(alpha[picked], beta[picked], case["successes"], n, case["decay"])
    # the public code's success rate is a float32 tensor: its counts are within float32 of ours
    assert a == pytest.approx(case["alpha_after"], rel=1e-6)
    assert b == pytest.approx(case["beta_after"], rel=1e-6)
