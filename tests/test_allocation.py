"""Sequential pilot and value-per-cost commit: pure properties, then the real loop."""

from math import comb

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pcbench.algos.allocation import (
    beta_cdf,
    commit_allocation,
    explore_draw,
    fit_beta,
    stop_verdicts,
)
from pcbench.buffer import BufferEntry
from pcbench.config import CommitConfig, RunConfig, from_dict
from pcbench.pilots import apply_stops
from pcbench.prior import FLAT, PassRatePrior
from pcbench.steps.commit import plan

# ---- the stopping rule ------------------------------------------------------------------------


def _cdf_integer(x: float, a: int, b: int) -> float:
    """Beta(a, b) CDF for integer a, b by the binomial identity (independent of mpmath):
    I_x(a, b) = P(Binomial(a + b - 1, x) >= a)."""
    m = a + b - 1
    return sum(comb(m, j) * x**j * (1 - x) ** (m - j) for j in range(a, m + 1))


def _interval(a: int, b: int, delta: float) -> tuple[float, float]:
    """[q_delta, q_{1-delta}] of Beta(a, b) by bisection on the binomial-identity CDF."""

    def quantile(q):
        lo, hi = 0.0, 1.0
        for _ in range(60):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if _cdf_integer(mid, a, b) < q else (lo, mid)
        return (lo + hi) / 2

    return quantile(delta), quantile(1 - delta)


band = st.tuples(st.floats(0.05, 0.5), st.floats(0.5, 0.95))


@settings(max_examples=300, deadline=None)
@given(n=st.integers(0, 32), frac=st.floats(0, 1), a=st.integers(1, 6), b=st.integers(1, 6),
       band=band, delta=st.sampled_from([0.01, 0.05, 0.1, 0.2]))  # fmt: skip
def test_sequential_pilot_never_stops_a_prompt_whose_interval_overlaps_the_band(
    n, frac, a, b, band, delta
):
    k = round(frac * n)
    keep_min, keep_max = band
    verdict = stop_verdicts([k], [n], keep_min, keep_max, delta, (a, b))[0]
    lo, hi = _interval(a + k, b + n - k, delta)
    overlaps = lo <= keep_max - 1e-6 and hi >= keep_min + 1e-6
    if overlaps:
        assert verdict == ""
    if verdict == "too_easy":
        assert lo >= keep_max - 1e-6
    if verdict == "too_hard":
        assert hi <= keep_min + 1e-6
    if lo > keep_max + 1e-6:  # and it does stop when clearly outside
        assert verdict == "too_easy"
    if hi < keep_min - 1e-6:
        assert verdict == "too_hard"


def test_flat_prior_cannot_stop_small_pilots_but_a_u_shaped_prior_can():
    # 4/4 under a flat prior: P(p > 0.75) = 1 - 0.75^5 = 0.76 < 0.9: the paper's pilot is not sure
    assert 1 - beta_cdf(0.75, 5, 1) == pytest.approx(1 - 0.75**5)
    assert list(stop_verdicts([4, 0], [4, 4], 0.125, 0.75, 0.1)) == ["", ""]
    u_shaped = fit_beta([0.0] * 30 + [1.0] * 60 + [0.5] * 10)
    assert u_shaped[0] < 1 and u_shaped[1] < 1
    assert list(stop_verdicts([2, 1], [2, 2], 0.125, 0.75, 0.1, u_shaped)) == ["too_easy", ""]


def test_fit_beta_recovers_moments():
    rng = np.random.default_rng(0)
    a, b = fit_beta(rng.beta(2.0, 5.0, 20_000))
    assert a == pytest.approx(2.0, rel=0.05) and b == pytest.approx(5.0, rel=0.05)
    with pytest.raises(ValueError, match="equal"):
        fit_beta([0.5, 0.5, 0.5])
    # 4-sample pilots of prompts whose true pass rates are Beta(2, 5): the raw rates look far
    # more spread (smaller a + b); the noise-corrected fit recovers the prompts' own spread.
    p = rng.beta(2.0, 5.0, 20_000)
    rates = rng.binomial(4, p) / 4
    raw, corrected = fit_beta(rates), fit_beta(rates, [4] * len(rates))
    assert sum(raw) < 0.6 * 7 and sum(corrected) == pytest.approx(7.0, rel=0.1)


def test_online_prior_is_flat_until_it_has_evidence_and_round_trips():
    prior = PassRatePrior(window=8, min_count=4)
    prior.observe([1, 1, 1], [1.0, 1.0, 1.0])
    assert prior.prior(1) == FLAT and prior.prior(5) == FLAT
    prior.observe([1, 5, None], [1.0, 0.5, 0.0])
    a, b = prior.prior(1)  # four 1.0s: as sure as four rates allow, no more
    assert a + b == pytest.approx(4.0) and a / (a + b) > 0.99
    prior.observe([1] * 10, [0.0] * 10)  # the window keeps the last 8
    assert prior.prior(1)[0] < prior.prior(1)[1]
    again = PassRatePrior()
    again.load_state_dict(prior.state_dict())
    assert again.state_dict() == prior.state_dict() and again.prior(1) == prior.prior(1)


# ---- value-per-cost commit -------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    data=st.lists(st.tuples(st.floats(0.01, 0.25), st.floats(1, 200)), min_size=1, max_size=16),
    n_commit=st.integers(1, 24), lo=st.integers(0, 24), hi=st.integers(0, 64),
    tokens=st.booleans(),
)  # fmt: skip
def test_commit_allocation_never_exceeds_its_budget_and_respects_the_bounds(
    data, n_commit, lo, hi, tokens
):
    lo, hi = min(lo, n_commit), max(hi, n_commit)
    values, costs = (np.array(x) for x in zip(*data, strict=True))
    units = costs if tokens else np.ones_like(costs)
    budget = len(data) * n_commit * (costs.mean() if tokens else 1)
    n = commit_allocation(values, costs, budget, lo, hi, budget_in_tokens=tokens)
    assert n.dtype.kind == "i" and (n >= lo).all() and (n <= hi).all()
    assert (n * units).sum() <= budget + 1e-6
    if not tokens:  # a rollout budget is spent to the last rollout the bounds allow
        assert n.sum() == min(budget, hi * len(data))
    else:  # a token budget is spent until one more rollout of some prompt below hi no longer
        below = n < hi  # fits: what is left is less than the cost of such a rollout
        assert not below.any() or budget - (n * units).sum() < units[below].max() + 1e-6


@given(k=st.integers(1, 16), value=st.floats(0.01, 0.25), cost=st.floats(1, 100),
       n_commit=st.integers(1, 24), tokens=st.booleans())  # fmt: skip
def test_constant_value_and_cost_give_the_paper_allocation(k, value, cost, n_commit, tokens):
    budget = k * n_commit * (cost if tokens else 1)
    n = commit_allocation([value] * k, [cost] * k, budget, 0, 10 * n_commit,
                          budget_in_tokens=tokens)  # fmt: skip
    assert n.tolist() == [n_commit] * k


def test_allocation_favours_high_variance_and_cheap_prompts():
    n = commit_allocation([0.25, 0.25, 0.1094], [20, 40, 20], 36, 2, 30)
    assert n[0] > n[1] and n[0] > n[2] and n.sum() == 36
    with pytest.raises(ValueError, match="minimum"):
        commit_allocation([0.25] * 3, [1] * 3, 5, 2, 30)


def _entry(pid, mean, tokens):
    rollouts = pl.DataFrame({"prompt_id": [pid] * 4, "n_tokens": [tokens] * 4})
    return BufferEntry(pid, 1, mean, (mean * (1 - mean)) ** 0.5, 0, rollouts)


def test_plan_is_the_paper_plan_unless_asked_and_keeps_the_round_budget():
    taken = [_entry("a", 0.5, 10), _entry("b", 0.25, 40), _entry("c", 0.75, 20)]
    paper = plan(taken, RunConfig(), 3)
    assert paper["n_commit"].to_list() == [12, 12, 12]
    same = [_entry(p, 0.5, 20) for p in "abc"]
    vpc = RunConfig(commit=CommitConfig(allocation="value_per_cost"))
    assert plan(same, vpc, 3)["n_commit"].to_list() == [12, 12, 12]
    spread = plan(taken, vpc, 3)["n_commit"].to_list()
    assert sum(spread) == 36 and spread[0] == max(spread)  # p = 0.5 and the cheapest


def test_apply_stops_keeps_stop_verdicts_never_evicts_and_adds_unpiloted_prompts():
    from pcbench.schema import SCORES

    scores = SCORES.frame({"step": [1, 1], "prompt_id": ["b", "c"], "n": [2, 4],
                           "n_correct": [2, 4], "mean": [1.0, 1.0], "var": [0.0, 0.0],
                           "std": [0.0, 0.0], "verdict": ["too_easy", "too_easy"],
                           "evict": [True, True]})  # fmt: skip
    out = apply_stops(scores, {"a": ("too_easy", 0), "b": ("too_easy", 2)}, ["a", "b", "c"], 1)
    assert out["prompt_id"].to_list() == ["a", "b", "c"]
    assert out["n"].to_list() == [0, 2, 4] and out["evict"].to_list() == [False, False, True]
    assert out["mean"][0] is None and out["verdict"].to_list() == ["too_easy"] * 3


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from(["", "too_easy", "too_hard"]), max_size=40),
    st.floats(0, 1),
    st.integers(0, 2**32 - 1),
)
def test_explore_only_clears_stops_and_is_seeded(verdicts, share, seed):
    verdict = np.array(verdicts, dtype=object)
    out = explore_draw(verdict, share, seed)
    assert len(out) == len(verdict)
    # A prompt that was going on still goes on; a stop either stays or is cleared.
    assert all(o in ("", v) for o, v in zip(out, verdict, strict=True))
    assert list(out) == list(explore_draw(verdict, share, seed))  # same seed, same draw
    if share == 0:
        assert list(out) == list(verdict)
    if share == 1:
        assert (out == "").all()


def test_explore_pilots_about_its_share_of_the_stops():
    verdict = np.array(["too_easy"] * 4000, dtype=object)
    cleared = (explore_draw(verdict, 0.1, seed=7) == "").mean()
    assert 0.08 < cleared < 0.12  # binomial sd 0.005
    with pytest.raises(ValueError, match="explore"):
        from_dict({"pilot": {"stages": [0, 2], "explore": 1.5}})
