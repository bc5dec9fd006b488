"""bench/gpu_profile.py's comparison of two profiles (pure logic on given counts; the device's
reading is in docs/RESULTS.md §7)."""

import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from pcbench.profile import PassRateProfile

BENCH = str(Path(__file__).resolve().parents[1] / "bench")
sys.path.append(BENCH)  # only for this import: bench/ holds module names as plain as `steps`
import gpu_profile as gp  # noqa: E402

sys.path.remove(BENCH)


def profile(k: list[int], n: int = 64) -> PassRateProfile:
    counts = pl.DataFrame({"prompt_id": [f"p{i}" for i in range(len(k))], "n": [n] * len(k),
                           "n_correct": k})  # fmt: skip
    return PassRateProfile(counts, "given counts", {})


def test_two_samples_of_one_policy_agree_and_two_policies_do_not():
    rng = np.random.default_rng(0)
    rates = rng.uniform(0.05, 0.95, 400)
    a, b = (profile(rng.binomial(64, rates).tolist()) for _ in range(2))
    same = gp.agreement(a, b)
    assert same["prompts_joined"] == 400 and same["both_all_equal"] == 0
    assert 0.8 < same["mean_z2"] < 1.2  # chi-square(1) per prompt: mean 1
    shifted = profile(rng.binomial(64, np.clip(rates + 0.15, 0, 1)).tolist())
    other = gp.agreement(a, shifted)
    assert other["mean_z2"] > 3 and other["mean_pass_rate_difference"] < -0.1


def test_prompts_all_equal_in_both_are_left_out_and_z_is_the_pooled_binomial_one():
    got = gp.agreement(profile([64, 0, 32]), profile([64, 0, 40]))
    assert got["both_all_equal"] == 2
    pooled = 72 / 128
    z = (32 - 40) / 64 / np.sqrt(pooled * (1 - pooled) * 2 / 64)
    assert got["mean_z2"] == pytest.approx(z**2, abs=1e-3)


def test_the_reference_is_cut_to_the_prompts_and_scaled_to_the_group_size_compared():
    ref = profile([64, 32, 0, 16])
    assert gp.subsampled(ref, 64, 2).counts["n_correct"].to_list() == [64, 32]
    scaled = gp.subsampled(ref, 8, 4).counts
    assert scaled["n"].to_list() == [8] * 4 and scaled["n_correct"].to_list() == [8, 4, 0, 2]
