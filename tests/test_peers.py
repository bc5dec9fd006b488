"""The peers' selection and allocation rules (pcbench.algos.greso, .mopps, .knapsack), by hand
and against brute force; the rules as their public code has them (docstrings)."""

import itertools
import math

import numpy as np
import pytest

from pcbench.algos import greso, knapsack, mopps

# ---- GRESO -----------------------------------------------------------------------------------


def test_greso_skips_by_the_trailing_streak_of_zero_variance_groups():
    assert greso.skip_probability([], 0.5, 0.5) == 0.0  # never rolled out: never skipped
    assert greso.skip_probability([0.5, 1.0, 1.0], 0.5, 0.5) == pytest.approx(1 - 0.5**2)
    assert greso.skip_probability([1.0] * 7, 0.5, 0.5) == pytest.approx(0.99)  # 0.5^7 < floor
    assert greso.skip_probability([0.0, 0.0], 0.5, 0.8) == pytest.approx(1 - 0.8**2)
    assert greso.skip_probability([1.0, 0.5], 0.5, 0.5) == 0.0  # the latest group varied
    assert greso.skip_probability([1.0, 1.0, 0.0], 0.5, 0.7) == pytest.approx(0.3)  # streak of 1
    assert greso.trailing_run([1, 0, 1, 1], lambda r: r >= 1) == 2


def test_greso_moves_p_by_a_hundredth_toward_its_target_share_within_bounds():
    assert greso.TARGET_EASY == pytest.approx(0.25 / 3)
    assert greso.TARGET_HARD == pytest.approx(0.25 * 2 / 3)
    assert greso.adapt(0.5, 0.10, greso.TARGET_EASY) == pytest.approx(0.49)  # over: skip more
    assert greso.adapt(0.5, 0.00, greso.TARGET_EASY) == pytest.approx(0.51)  # under: skip less
    assert greso.adapt(0.05, 0.5, 0.08) == 0.05 and greso.adapt(0.95, 0.0, 0.08) == 0.95


def test_greso_sizes_the_next_round_from_the_last_rounds_zero_variance_share():
    # 64 rollouts missing, half the groups zero-variance, n 8: 64 / 0.5 / 8 x 1.25 = 20 prompts
    assert greso.next_round(64, 0.5, 8, round_prompts=24, min_prompts=4) == (20, True)
    assert greso.next_round(400, 0.5, 8, 24, 4) == (24, False)  # 125 wanted: the largest round
    assert greso.next_round(4, 0.0, 8, 24, 4) == (4, True)  # 0 wanted: the smallest
    assert greso.next_round(64, 1.0, 8, 24, 4) == (24, False)  # all zero-variance: no division


# ---- MoPPS -----------------------------------------------------------------------------------

# Posteriors so sharp that their Thompson draws are known to +-0.02: ~1, ~0.1, 0.5, 0.35.
SHARP = (np.array([1000.0, 100.0, 500.0, 350.0]), np.array([1.0, 900.0, 500.0, 650.0]))


def test_mopps_keeps_the_draws_nearest_one_half_or_inside_the_band():
    rng = np.random.default_rng(0)
    assert mopps.select(*SHARP, 2, rng).tolist() == [2, 3]
    assert mopps.select(*SHARP, 1, rng).tolist() == [2]
    assert sorted(mopps.select(*SHARP, 2, rng, band=mopps.BAND).tolist()) == [2, 3]
    # fewer than 3 inside [0.3, 0.7]: both, then the nearest outside (0.1 is 0.2 away, 1 is 0.3)
    assert mopps.select(*SHARP, 3, rng, band=mopps.BAND).tolist() == [2, 3, 1]
    with pytest.raises(ValueError, match="keep 5 of 4"):
        mopps.select(*SHARP, 5, rng)


def test_mopps_selection_is_reproducible_and_unseen_prompts_draw_uniformly():
    flat = np.ones(1000), np.ones(1000)
    a = mopps.select(*flat, 10, np.random.default_rng(3))
    assert a.tolist() == mopps.select(*flat, 10, np.random.default_rng(3)).tolist()
    draws = np.random.default_rng(3).beta(*flat)
    assert np.abs(draws[a] - 0.5).max() < 0.01  # the 10 of 1,000 uniform draws nearest 0.5


def test_mopps_posterior_update_with_and_without_decay():
    alpha, beta = mopps.update_posterior([1, 2], [1, 3], successes=[3, 0], n=[4, 4])
    assert alpha.tolist() == [4, 2] and beta.tolist() == [2, 7]
    alpha, beta = mopps.update_posterior([1, 2], [1, 3], successes=[3, 0], n=[4, 4], lam=0.5)
    assert alpha.tolist() == [4, 1.5] and beta.tolist() == [2, 6]


# ---- Knapsack-RL -----------------------------------------------------------------------------


def test_knapsack_value_and_cost_by_hand():
    assert knapsack.value(0.5, 2) == pytest.approx(0.5 * 0.5 * 0.25)
    assert knapsack.value(0.0, 8) == 0 and knapsack.value(1.0, 8) == 0
    assert knapsack.cost(0.5) == pytest.approx(math.log(0.1) / math.log(0.5))  # 3.32
    assert knapsack.cost(0.0) == math.inf and knapsack.cost(1.0) == 0


def _brute_force(ps, budget, min_n, max_extra):
    """The best objective over every assignment of extras with the largest fillable total."""
    best = {}
    for ks in itertools.product(range(max_extra + 1), repeat=len(ps)):
        if sum(ks) <= budget:
            score = sum(
                knapsack.value(p, min_n + k) if k else 0.0 for p, k in zip(ps, ks, strict=True)
            )
            best[sum(ks)] = max(best.get(sum(ks), -1.0), score)
    return best[max(best)]


@pytest.mark.parametrize(
    "ps, budget, max_extra",
    [([0.3, 0.5, 0.8], 7, 4), ([0.1, 0.9], 3, 5), ([0.5, 0.5, 0.5], 5, 2),
     ([0.2, 0.4, 0.6, 0.7], 9, 3), ([0.05], 10, 4)],
)  # fmt: skip
def test_knapsack_dp_matches_brute_force(ps, budget, max_extra):
    extras = knapsack.solve(ps, budget, 2, max_extra)
    fillable = min(budget, len(ps) * max_extra)
    assert sum(extras) == budget  # spent: exactly where possible, the rest spread evenly
    if fillable == budget:
        assert all(0 <= k <= max_extra for k in extras)
        score = sum(knapsack.value(p, 2 + k) if k else 0.0 for p, k in zip(ps, extras, strict=True))
        assert score == pytest.approx(_brute_force(ps, budget, 2, max_extra))


def test_knapsack_allocation_by_hand():
    # unknown 8, p=0 2, p=1 2, p=0.5 2: 14 of 32. The p=0.5 prompt's cost cap is int(3.32) = 3
    # < 18 left, so 15 are spread over the p=0 prompt and the unknown one (the public code's
    # success-rate array reads 0 for it), 8 and 7 in order; the DP spends 3 on p=0.5.
    assert knapsack.allocate([None, 0.0, 1.0, 0.5], 8) == [16, 9, 2, 5]
    assert knapsack.allocate([None, 1.0], 8) == [14, 2]  # nothing informative: the rest to
    # the unknown prompt, which the public code counts among the p=0 ones
    assert knapsack.allocate([1.0, 1.0], 8) == [8, 8]  # no p=0 nor unknown prompt: n each
    # every prompt unknown (a run that never comes back to a prompt, RESULTS §8): n each, GRPO
    assert knapsack.allocate([None] * 8, 16) == [16] * 8
    assert knapsack.allocate([0.0, 0.0, 1.0], 4) == [5, 5, 2]  # the rest to the p=0 prompts
    # no p=0 prompt: the excess over the cap (int 3.32 + int 6.46 + int 21.85 = 30 of 42 left)
    # goes to the unknown one (it counts as p=0); the DP spends exactly 30 on the three others
    counts = knapsack.allocate([0.5, 0.3, None, 0.9], 16)
    assert (
        counts[2] == 16 + 42 - 30 and sum(counts) == 64 and counts[0] + counts[1] + counts[3] == 36
    )
    with pytest.raises(ValueError, match="below the base"):
        knapsack.allocate([None, None], 8, budget=10)


def test_knapsack_estimate_by_hand():
    assert knapsack.estimate([], 0) is None  # never visited
    assert knapsack.estimate([[1, 0, 0, 0]], 4) is None  # 4 < 8 rewards seen: not known yet
    assert knapsack.estimate([[1] * 2 + [0] * 6], 8) == 0.25  # known after one visit of 8
    # the latest visit has >= 16 rewards: its own mean, whatever came before
    assert knapsack.estimate([[0] * 8, [1] * 4 + [0] * 12], 24) == 0.25
    # a small latest visit: the last 16 rewards across visits (2 new + the last 14 of the old)
    assert knapsack.estimate([[0] * 4 + [1] * 16, [0, 0]], 22) == 14 / 16
    assert knapsack.estimate([[1] * 8, [0] * 2], 10, window=4, known_after=12) is None


def test_knapsack_keeps_only_the_visits_its_estimate_can_read():
    visits = [[1] * 8, [0] * 2, [1, 0], [0] * 4, [1, 1]]
    assert knapsack.recent(visits, 8) == [[1, 0], [0] * 4, [1, 1]]  # 2 + 4 + 2 = 8
    assert knapsack.recent(visits, 9) == [[0] * 2, [1, 0], [0] * 4, [1, 1]]
    assert knapsack.recent(visits, 2) == [[1, 1]]
    assert knapsack.recent([[1, 0]], 16) == [[1, 0]]  # fewer than the window: all of them
    rng = np.random.default_rng(0)
    for _ in range(200):  # trimming never changes an estimate, now or after more visits
        visits = [rng.integers(0, 2, rng.integers(1, 20)).tolist() for _ in range(5)]
        seen, window = sum(map(len, visits)), int(rng.integers(1, 20))
        later = rng.integers(0, 2, rng.integers(1, 20)).tolist()
        kept = knapsack.recent(visits, window)
        for a, b in [(visits, kept), ([*visits, later], [*kept, later])]:
            assert knapsack.estimate(a, seen, window, 1) == knapsack.estimate(b, seen, window, 1)


def test_greso_targets_split_the_zero_variance_target_one_third_to_two_thirds():
    assert greso.targets() == (greso.TARGET_EASY, greso.TARGET_HARD)
    assert greso.targets(0.3) == pytest.approx((0.1, 0.2))


# ---- their per-prompt state (pcbench.prompt_state) ------------------------------------------


def test_per_prompt_states_follow_their_rules_and_round_trip_through_json():
    """What a checkpoint stores (JSON) reloads into the same state, for each strategy; the
    objects apply the rules above."""
    import json

    from pcbench import strategies
    from pcbench.config import from_dict
    from pcbench.prompt_state import GresoTraces, KnapsackRewards, MoppsPosteriors

    traces = GresoTraces()  # groups of GRESO rewards: 1 correct, 0.1 wrong answer, 0 no answer
    traces.record(["a", "b", "c", "d"], [[1.0, 1.0], [0.1, 0.0], [1.0, 0.1], [1.0, 1.0]])
    traces.record(["a"], [[1.0, 1.0]])
    assert traces.traces["b"] == [pytest.approx(0.05)]  # a trace entry is the group's mean
    assert traces.skip_probability("a") == pytest.approx(0.75) and traces.streak("b") == "hard"
    assert traces.skip_probability("c") == 0.0 and traces.skip_probability("new") == 0.0
    assert traces.counts == {"groups": 5, "easy": 3, "hard": 0}  # 0.1 + 0: not all-wrong
    traces.end_step(0.25, adapting=False)  # first epoch: p stays, the counts restart
    assert (traces.p_easy, traces.counts["groups"]) == (0.5, 0)
    traces.record(["c"] * 4, [[1.0], [0.1], [1.0, 0.1], [0.0]])  # shares 1/4 >= 1/12, 1/4 >= 1/6
    traces.end_step(0.25, adapting=True)
    assert (traces.p_easy, traces.p_hard) == pytest.approx((0.49, 0.49))

    posteriors = MoppsPosteriors(prior=(2.0, 3.0))
    posteriors.observe(["a", "b"], [3, 0], [4, 4], decay=0.5)  # 0.5 x 2 + 0.5 x 2 + 3, ...
    alpha, beta = posteriors.get(["a", "b", "new"])
    assert alpha.tolist() == [5.0, 2.0, 2.0] and beta.tolist() == [4.0, 7.0, 3.0]

    rewards = KnapsackRewards(window=4, known_after=3)
    rewards.observe(["a", "b"], [[1, 0], [1, 1, 1]])
    assert rewards.estimates(["a", "b", "new"]) == [None, 1.0, None]
    rewards.observe(["a"], [[0, 0, 1]])  # 5 seen: the last 4 are 0, 0, 0, 1
    assert rewards.estimates(["a"]) == [0.25] and rewards.visits["a"] == [[1, 0], [0, 0, 1]]

    for strategy, state in [("greso", traces), ("mopps", posteriors), ("knapsack", rewards)]:
        cfg = from_dict({"strategy": strategy})
        copy = strategies.get(strategy).new_prompt_state(cfg)
        copy.load_state_dict(json.loads(json.dumps(state.state_dict())))
        assert type(copy) is type(state) and copy.state_dict() == state.state_dict()
    assert strategies.get("dapo").new_prompt_state(from_dict({"strategy": "dapo"})) is None


# ---- pcbench's history gate (algos.gate: GRESO's skip with MoPPS's posteriors) ---------------


def test_the_history_gate_pilots_unseen_prompts_and_skips_by_where_the_draw_falls():
    from pcbench.algos import gate

    band = (0.125, 0.75)
    # Beta(a, 1) has cdf x^a, so a seen prompt with 4 of 4 right (Beta(5, 1)) is skipped as too
    # easy with probability 1 - 0.75^5 = 0.763, as too hard with 0.125^5 ~ 3e-5; 0 of 4
    # (Beta(1, 5), cdf 1 - (1 - x)^5) as too hard with 1 - 0.875^5 = 0.487, too easy 0.25^5.
    m = 20_000
    alpha = np.array([5.0] * m + [1.0] * m + [1.0] * m)
    beta = np.array([1.0] * m + [5.0] * m + [1.0] * m)
    seen = np.array([True] * 2 * m + [False] * m)
    d = gate.decide(alpha, beta, seen, band, np.random.default_rng(0))
    se = 3 * math.sqrt(0.25 / m)  # 3 binomial standard errors at most
    assert (d[:m] == gate.SKIP_EASY).mean() == pytest.approx(1 - 0.75**5, abs=se)
    assert (d[:m] == gate.SKIP_HARD).sum() <= 5
    assert (d[m : 2 * m] == gate.SKIP_HARD).mean() == pytest.approx(1 - 0.875**5, abs=se)
    assert (d[m : 2 * m] == gate.SKIP_EASY).mean() == pytest.approx(0.25**5, abs=se)
    assert (d[2 * m :] == gate.PILOT).all()  # never rolled out: always piloted
    # The same seed makes the same decisions, and a prompt's decision does not depend on
    # whether the others were seen (every prompt takes one draw).
    again = gate.decide(alpha, beta, seen, band, np.random.default_rng(0))
    assert (again == d).all()
    all_seen = gate.decide(alpha, beta, np.ones(3 * m, bool), band, np.random.default_rng(0))
    assert (all_seen[: 2 * m] == d[: 2 * m]).all()
