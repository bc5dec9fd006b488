"""Hand-computed cases and properties of the pure Pilot-Commit math (pcbench.algos)."""

import math
from itertools import combinations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pcbench.algos import (
    aggregate,
    commit_order,
    drgrpo_advantages,
    group_stats,
    grpo_advantages,
    kl_penalty,
    max_variance_subset,
    mean_at_k,
    pass_at_k,
    ppo_clip_loss,
    verdicts,
)

groups_of_rewards = st.lists(
    st.lists(st.sampled_from([0.0, 1.0]), min_size=1, max_size=40), min_size=1, max_size=12
)


def _flat(groups):
    rewards = np.array([r for g in groups for r in g])
    index = np.array([i for i, g in enumerate(groups) for _ in g])
    return rewards, index


# ---- group statistics and verdicts --------------------------------------------------------


def test_group_stats_hand_computed():
    s = group_stats(
        np.array([1, 0, 1, 0, 1, 1, 1, 1, 0, 0]), np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2])
    )
    assert s["n"].tolist() == [4, 4, 2]
    assert s["n_correct"].tolist() == [2, 4, 0]
    assert s["mean"].tolist() == [0.5, 1.0, 0.0]
    assert s["var"].tolist() == [0.25, 0.0, 0.0]
    assert s["std"].tolist() == [0.5, 0.0, 0.0]


def test_paper_overview_verdicts():
    """Overview of the paper: pilots [1,0,1,0], [1,0,0,0], [0,0,0,0], [1,1,1,1]."""
    s = group_stats(
        np.array([1, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1]), np.repeat(np.arange(4), 4)
    )
    verdict, evict = verdicts(s["mean"], keep_min=0.125, keep_max=0.75, evict_at=1.0)
    assert verdict.tolist() == ["keep", "keep", "too_hard", "too_easy"]
    assert evict.tolist() == [False, False, False, True]


def test_verdict_band_edges_are_inclusive():
    verdict, evict = verdicts(np.array([0.125, 0.75, 0.1249, 0.7501, 3 / 30]), 0.125, 0.75, 1.0)
    assert verdict.tolist() == ["keep", "keep", "too_hard", "too_easy", "too_hard"]
    assert verdicts(np.array([3 / 30]), 0.1, 0.75, 1.0)[0].tolist() == ["keep"]  # 0.1 == 3/30
    assert not evict.any()


# ---- advantages ---------------------------------------------------------------------------


def test_grpo_advantage_hand_computed():
    # rewards 1,0,0,0: mean .25, sample std sqrt(.25) = .5  ->  1.5, -.5, -.5, -.5 (over .5 + 1e-6)
    adv = grpo_advantages(np.array([1.0, 0, 0, 0]), np.zeros(4))
    np.testing.assert_allclose(adv, np.array([0.75, -0.25, -0.25, -0.25]) / (0.5 + 1e-6))
    np.testing.assert_allclose(
        drgrpo_advantages(np.array([1.0, 0, 0, 0]), np.zeros(4)), [0.75, -0.25, -0.25, -0.25]
    )


@given(groups_of_rewards)
@settings(max_examples=200, deadline=None)
def test_advantages_sum_to_zero_and_vanish_on_equal_rewards(groups):
    rewards, index = _flat(groups)
    for fn in (grpo_advantages, drgrpo_advantages):
        adv = fn(rewards, index)
        for i, g in enumerate(groups):
            a = adv[index == i]
            assert abs(a.sum()) < 1e-6 * max(1, len(g))
            if len(set(g)) == 1:
                assert np.all(a == 0)


def test_singleton_group_gets_zero_advantage():
    assert grpo_advantages(np.array([1.0, 1.0, 0.0]), np.array([0, 1, 1]))[0] == 0.0


# ---- losses -------------------------------------------------------------------------------


def _loss(ratio, adv, **kw):
    logp = torch.log(torch.tensor([ratio], dtype=torch.float64))
    return ppo_clip_loss(logp, torch.zeros_like(logp), torch.tensor([adv], dtype=torch.float64),
                         torch.ones_like(logp), **kw)  # fmt: skip


@pytest.mark.parametrize(
    "ratio, adv, expected, branch",
    [
        (1.1, 2.0, -2.2, None),  # inside the clip range: plain surrogate
        (1.5, 2.0, -2 * 1.28, "clip_high"),  # positive advantage, ratio above 1 + clip_high
        (0.5, 2.0, -1.0, None),  # positive advantage, low ratio: not clipped (max picks -A r)
        (0.5, -2.0, 2 * 0.8, "clip_low"),  # negative advantage, ratio below 1 - clip_low
        (2.0, -2.0, 4.0, None),  # negative advantage, large ratio: unclipped side wins
        (50.0, -2.0, 20.0, "dual_clip"),  # ... unless beyond c = 10: dual clip bounds it
    ],
)
def test_ppo_clip_branches_match_hand_calculation(ratio, adv, expected, branch):
    loss, stats = _loss(ratio, adv, clip_low=0.2, clip_high=0.28, dual_clip=10.0)
    assert loss.item() == pytest.approx(expected)
    for k in ("clip_high", "clip_low", "dual_clip"):
        assert stats[k] == (1.0 if k == branch else 0.0)


def test_loss_aggregation_modes():
    values = torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    assert aggregate(values, mask, "token-mean").item() == pytest.approx(10 / 4)
    assert aggregate(values, mask, "seq-mean-token-sum").item() == pytest.approx((6 + 4) / 2)
    assert aggregate(values, mask, "seq-mean-token-mean").item() == pytest.approx((2 + 4) / 2)


def test_gradient_of_unit_ratio_is_policy_gradient():
    logp = torch.tensor([[-1.0, -2.0]], requires_grad=True)
    loss, _ = ppo_clip_loss(logp, logp.detach(), torch.tensor([0.5]), torch.ones(1, 2))
    loss.backward()
    np.testing.assert_allclose(logp.grad.numpy(), [[-0.25, -0.25]])  # -A / tokens


def test_kl_penalty_is_zero_at_reference_and_positive_elsewhere():
    lp = torch.tensor([[-1.0, -2.0]])
    assert kl_penalty(lp, lp, torch.ones(1, 2), "token-mean").item() == 0.0
    assert kl_penalty(lp, lp - 0.5, torch.ones(1, 2), "token-mean").item() == pytest.approx(
        math.exp(-0.5) + 0.5 - 1
    )


# ---- down-sampling and commit order -------------------------------------------------------


@given(st.lists(st.sampled_from([0, 1]), min_size=1, max_size=32), st.integers(0, 32))
@settings(max_examples=300, deadline=None)
def test_max_variance_subset_is_optimal(rewards, k):
    rewards = np.array(rewards)
    idx = max_variance_subset(rewards, k)
    assert len(idx) == min(k, len(rewards)) and len(set(idx)) == len(idx)
    if 0 < k < len(rewards):  # the correct count is the feasible one closest to k/2
        feasible = range(max(0, k - (rewards == 0).sum()), min(k, rewards.sum()) + 1)
        assert abs(rewards[idx].sum() - k / 2) == min(abs(p - k / 2) for p in feasible)


def test_max_variance_subset_examples():
    assert max_variance_subset(np.array([1, 1, 1, 0, 0, 1, 1, 1]), 4).tolist() == [0, 1, 3, 4]
    assert max_variance_subset(np.array([1, 1, 1, 1, 0, 1]), 4).tolist() == [0, 1, 2, 4]
    assert max_variance_subset(np.array([0, 0, 0, 0]), 2).tolist() == [0, 1]


def test_commit_order_max_std_ties_go_to_recent_then_first_inserted():
    std = np.array([0.4, 0.5, 0.4, 0.4, 0.3])
    added = np.array([1, 1, 2, 2, 3])
    assert commit_order(std, added, 4).tolist() == [1, 2, 3, 0]
    assert commit_order(std, added, 5).tolist() == [0, 1, 2, 3, 4]  # all: insertion order
    picked = commit_order(std, added, 3, "random", np.random.default_rng(0))
    assert len(set(picked.tolist())) == 3


# ---- pass@k -------------------------------------------------------------------------------


@given(
    st.integers(1, 12).flatmap(
        lambda n: st.tuples(st.just(n), st.integers(0, n), st.integers(1, n))
    )
)
@settings(max_examples=200, deadline=None)
def test_pass_at_k_equals_brute_force(nck):
    n, c, k = nck
    samples = [1] * c + [0] * (n - c)
    subsets = list(combinations(range(n), k))
    brute = sum(any(samples[i] for i in s) for s in subsets) / len(subsets)
    assert pass_at_k(n, c, k) == pytest.approx(brute, abs=1e-12)


def test_pass_at_k_and_mean_at_k_edges():
    assert pass_at_k(4, 0, 4) == 0.0 and pass_at_k(4, 1, 4) == 1.0
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3) and mean_at_k(10, 3) == 0.3
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 2)
