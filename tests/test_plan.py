"""Pass-rate profiles and the plan: the binomial arithmetic by hand (pure logic), and a profile of
the shipped policy through the real engine and verifier."""

from math import comb

import numpy as np
import polars as pl
import pytest

from pcbench.algos.passrates import Mixture, all_equal_share, fit_mixture
from pcbench.config import RunConfig, load_config
from pcbench.plan import best_pilot, pilot_shares, predict, simulate_rounds
from pcbench.profile import PassRateProfile, profile_config, profile_run

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def test_all_equal_share_is_the_exact_subsampling_chance():
    # a prompt with 3 of 4 correct: a pair is all-correct with C(3,2)/C(4,2) = 1/2, all-wrong 0;
    # one with 0 of 4: always all-wrong; one with 2 of 4: C(2,2)/6 twice = 1/3
    assert all_equal_share([3, 0, 2], [4, 4, 4], 2) == pytest.approx((1 / 2 + 1 + 1 / 3) / 3)
    assert all_equal_share([3, 0, 2], [4, 4, 4], 1) == 1.0
    assert all_equal_share([3, 0, 2], [4, 4, 4], 4) == pytest.approx((0 + 1 + 0) / 3)
    with pytest.raises(ValueError, match="at least 5"):
        all_equal_share([3], [4], 5)


def test_the_subsampled_share_is_unbiased_for_the_binomial_one():
    # pass rates 0.2 and 0.9 sampled 16 times each, many prompts: the exact subsampling share at
    # n = 4 is E[p^4 + (1 - p)^4] up to sampling noise, with no model of p
    rng = np.random.default_rng(0)
    p = np.repeat([0.2, 0.9], 20_000)
    k = rng.binomial(16, p)
    truth = np.mean(p**4 + (1 - p) ** 4)
    assert all_equal_share(k, np.full(k.size, 16), 4) == pytest.approx(truth, abs=0.004)


def test_the_fitted_mixture_recovers_point_masses_and_keeps_0_and_1():
    rng = np.random.default_rng(1)
    p = rng.choice([0.0, 0.5, 1.0], size=3000, p=[0.3, 0.4, 0.3])
    m = fit_mixture(rng.binomial(16, p), np.full(3000, 16))
    assert m.share(0, 0) == pytest.approx(0.3, abs=0.03) and m.share(1, 1) == pytest.approx(
        0.3, abs=0.03
    )
    assert m.share(0.4, 0.6) == pytest.approx(0.4, abs=0.04) and m.mean() == pytest.approx(
        0.5, abs=0.02
    )
    with pytest.raises(ValueError):
        fit_mixture([5], [4])


def test_pilot_shares_by_hand():
    # half the prompts at p = 1/2, half at p = 1: a pilot of 2 with band [0.5, 0.5] keeps k = 1,
    # probability 1/2 x 2 x 1/4 = 1/4; too easy (k = 2): 1/2 x 1/4 + 1/2 = 5/8; too hard 1/8
    m = Mixture((0.5, 1.0), (0.5, 0.5))
    s = pilot_shares(m, 2, 6, 0.5, 0.5, evict_at=1.0)
    assert (s.keep, s.too_easy, s.too_hard, s.evict) == pytest.approx((1 / 4, 5 / 8, 1 / 8, 5 / 8))
    assert s.mixed_given_kept == 1.0  # k = 1 of 2: the group is mixed whatever the commits do
    # a band that keeps k = 0: the group is all-equal if its 8 rollouts all fail, 0.5^8 at p = 1/2
    s = pilot_shares(m, 2, 6, 0.0, 0.5)
    assert s.keep == pytest.approx(3 / 8)
    assert s.mixed_given_kept == pytest.approx(1 - 0.5 * 0.5**8 / (3 / 8))


def test_grpo_and_dapo_predictions_are_binomial_sums():
    m = Mixture((0.5, 1.0), (0.5, 0.5))  # mixed at n = 2: 1/2 x 1/2 = 1/4
    g = predict(RunConfig(strategy="grpo", batch_prompts=4, pilot=_pilot(1), commit=_commit(1)), m)
    assert g.rollouts_per_step == 8 and g.mixed_share == pytest.approx(0.25)
    assert g.per_informative == pytest.approx(4)
    # DAPO, G = 4, B = 1: rounds until one mixed group; E[R] = 1 / (1 - 0.75^4)
    cfg = RunConfig(strategy="dapo", batch_prompts=1, pool_prompts=4, pilot=_pilot(1),
                    commit=_commit(1))  # fmt: skip
    d = predict(cfg, m)
    rounds = 1 / (1 - 0.75**4)
    assert d.rounds_per_step == pytest.approx(rounds) and d.rollouts_per_step == pytest.approx(
        rounds * 8
    )
    assert d.per_informative == pytest.approx(rounds * 4) and d.over_max_rounds == pytest.approx(
        0.75**40
    )


def _pilot(n):
    from pcbench.config import PilotConfig

    return PilotConfig(n_pilot=n)


def _commit(n, **kw):
    from pcbench.config import CommitConfig

    return CommitConfig(n_commit=n, **kw)


def test_pilot_commit_rounds_carry_the_buffer_across_steps():
    # every pilot kept (p = 1/2, pilot of 2 with band [0, 1]); G = 3, B = 2: round 1 of step 0
    # commits nothing (empty buffer), round 2 commits 2 of the 3; step 1's first round commits
    # 1 left + ... the buffer never runs dry after that: 1 round a step
    cfg = RunConfig(batch_prompts=2, pool_prompts=3, pilot=_pilot(2), commit=_commit(2))
    cfg = RunConfig(
        **{**cfg.__dict__, "score": cfg.score.__class__(keep_min=0.0, keep_max=1.0, evict_at=1.01)}
    )
    rounds, age = simulate_rounds(Mixture((0.5,), (1.0,)), cfg, steps=50)
    assert rounds[0] == 2 and (rounds[1:] == 1).all()
    # more kept than committed: the buffer grows until staleness (4) drops the excess
    assert age <= cfg.commit.max_staleness
    p = predict(cfg, Mixture((0.5,), (1.0,)), steps=50)
    assert p.rollouts_per_step == pytest.approx(rounds.mean() * 3 * 2 + 2 * 2)
    assert p.keep_share == 1.0 and p.rounds_closed_form == 1.0


def test_pilot_commit_prediction_and_best_pilot_on_the_paper_preset():
    cfg = load_config(ROOT / "configs" / "tiny-pc.toml")
    m = Mixture((0.0, 0.5, 1.0), (0.3, 0.4, 0.3))
    p = predict(cfg, m, split_prompts=240)
    keep = 0.4 * sum(comb(4, k) for k in (1, 2, 3)) / 16  # k/4 in [0.125, 0.75]
    assert p.keep_share == pytest.approx(keep) and p.evict_share == pytest.approx(0.3 + 0.4 / 16)
    assert p.rounds_closed_form == pytest.approx(max(1, 8 / (24 * keep)))  # 1: 24 x 0.35 > 8
    assert p.rounds_per_step >= 1
    assert p.per_informative == pytest.approx(p.rollouts_per_step / (8 * 16))
    assert any("passes over the split" in c for c in p.caveats)  # 90 steps x 24 of 240
    beyond = predict(load_config(ROOT / "configs" / "tiny-pc-beyond.toml"), m)
    assert beyond.method == "not modelled" and beyond.rollouts_per_step is None
    table = best_pilot(m, 16)
    assert table.height == 10 and table["per_informative"].is_sorted()
    assert (table["keep_min"] > 0).all() and (table["keep_max"] < 1).all()


def test_a_profile_file_round_trips_and_refuses_bad_counts(tmp_path):
    prof = PassRateProfile(pl.DataFrame({"prompt_id": ["a", "b", "c"], "n": [8, 8, 8],
                                         "n_correct": [0, 4, 8]}), "by hand")  # fmt: skip
    assert prof.summary()["share_between"] == pytest.approx(1 / 3, abs=1e-4)
    curve = prof.all_equal_curve(16)
    assert curve.filter(pl.col("n") == 9)["measured"][0] is None  # beyond N: fitted only
    assert curve.filter(pl.col("n") == 2)["measured"][0] == pytest.approx((1 + 2 * 6 / 28 + 1) / 3)
    back = PassRateProfile.load(prof.save(tmp_path / "p.json"))
    assert back.counts.equals(prof.counts) and back.mixture == prof.mixture
    with pytest.raises(ValueError, match="outside"):
        PassRateProfile(pl.DataFrame({"prompt_id": ["a"], "n": [4], "n_correct": [5]}), "bad")
    (tmp_path / "x.json").write_text("{")
    with pytest.raises(ValueError, match="not a readable profile"):
        PassRateProfile.load(tmp_path / "x.json")


@pytest.mark.slow
def test_a_config_profile_through_the_real_engine_and_a_runs_own_profile(tiny_engine, tmp_path):
    from pcbench.loop import train
    from pcbench.run import open_run

    cfg = load_config(ROOT / "configs" / "tiny-grpo.toml", ["steps=2", "eval.every=100",
                      "eval.max_prompts=8", "name=prof"])  # fmt: skip
    prof = profile_config(cfg, n=8, prompts=24)
    assert prof.counts.height == 24 and (prof.counts["n"] == 8).all()
    s = prof.summary()
    assert s["share_0"] + s["share_1"] + s["share_between"] == pytest.approx(1)
    assert 0 < s["mean_pass_rate"] < 1  # the shipped policy solves some, not all
    assert prof.all_equal_curve(8)["measured"].null_count() == 0
    prof.figure()  # builds
    state, run = open_run(cfg, tmp_path)
    train(state, cfg, run, progress=False)
    own = profile_run(run)
    assert own.counts.height == 2 * 8 and set(own.counts["n"]) == {16}  # 2 steps x B 8 groups
    assert predict(cfg, own.mixture).rollouts_per_step == 128
    from pcbench.results import predicted_vs_measured
    from pcbench.tables import validation_markdown

    checked = predicted_vs_measured([run]).row(0, named=True)  # GRPO from its own groups
    assert checked["rollouts_per_step_measured"] == 128 and checked["rollouts_per_step_error"] == 0
    assert checked["per_informative_error"] == pytest.approx(0, abs=0.05)
    assert "Largest error" in validation_markdown(predicted_vs_measured([run]))
    with pytest.raises(ValueError, match="no runs"):
        predicted_vs_measured([])


def test_the_regime_map_rescales_a_profile_to_each_uninformative_share():
    from pcbench.plan import predicted_advantage, regime_grid, with_uninformative_share

    m = Mixture((0.0, 0.5, 1.0), (0.3, 0.4, 0.3))
    for share in (0.7, 0.9):
        scaled = with_uninformative_share(m, 16, share)
        assert scaled.all_equal(16) == pytest.approx(share, abs=1e-9)
        assert scaled.share(0, 0) == pytest.approx(scaled.share(1, 1))  # ends keep their ratio
    assert with_uninformative_share(m, 16, 1e-6) is None  # below 2 x 0.5^16, all interior
    # A by hand at n 16, pilot 4 of the mixture (0.3, 0.4, 0.3): GRPO's per informative 1 / mixed;
    # PC's keep 0.4 x 14/16 = 0.35, one round (24 x 0.35 >= 8): (96 + 96) / 128 per informative
    mixed = 0.4 * (1 - 2 * 0.5**16)
    assert predicted_advantage(m, 16) == pytest.approx((1 / mixed) / (192 / 128))
    grid = regime_grid(m, sizes=(16, 64), shares=(0.5, 0.9))
    assert grid.height == 4 and grid["advantage"].null_count() == 0
    high = grid.filter((pl.col("n") == 16) & (pl.col("uninformative") == 0.9))["advantage"][0]
    low = grid.filter((pl.col("n") == 16) & (pl.col("uninformative") == 0.5))["advantage"][0]
    assert high > low  # more all-equal GRPO groups: more for Pilot-Commit to skip
