"""The regime study's pre-registered rules as code (bench/regime_verdicts.py): pure logic on
given per-seed ratios, and the rules bound one-to-one to the study file's blocks."""

import math
import sys
from pathlib import Path

import pytest

from pcbench import experiments as ex

BENCH = str(Path(__file__).resolve().parents[1] / "bench")
sys.path.append(BENCH)  # only for this import: bench/ holds module names as plain as `steps`
import regime_verdicts as rv  # noqa: E402

sys.path.remove(BENCH)


def test_rises_needs_the_mean_two_paired_seeds_and_the_floor():
    before = {0: 1.0, 1: 1.2, 2: 0.9}
    assert rv.rises(before, {0: 1.4, 1: 1.5, 2: 0.8})[0]  # mean up, 2 of 3 up
    assert not rv.rises(before, {0: 1.4, 1: 1.1, 2: 0.8})[0]  # only 1 of 3 up
    assert not rv.rises(before, {0: 3.0, 1: 1.1, 2: 0.8})[0]  # mean up, 1 of 3 up
    assert not rv.rises(before, {0: 1.4, 1: 1.5, 2: 0.8}, floor=1.3)[0]  # 0.8 < 1.3
    assert rv.rises(before, {0: 1.4, 1: 1.5, 2: 1.3}, floor=1.3)[0]
    # a seed that did not reach the target after neither rises nor clears a floor
    assert not rv.rises(before, {0: 1.4, 1: None, 2: 1.3}, floor=1.3)[0]
    assert rv.rises({0: None, 1: 1.0, 2: 1.0}, {0: 1.0, 1: 1.1, 2: 1.1})[0]  # None before: risen


def test_pays_reads_the_mean_and_the_intervals_lower_end():
    assert rv.pays({0: 1.6, 1: 1.7, 2: 1.5})[0] == "pays"
    assert rv.pays({0: 0.5, 1: 2.5, 2: 1.6})[0] == "inconclusive"  # mean 1.53, interval below 1
    assert rv.pays({0: 0.9, 1: 0.95, 2: 1.05})[0] == "does not pay"
    assert rv.pays({0: None, 1: None, 2: None})[0] == "does not pay"


def test_spearman_with_and_without_ties():
    assert rv.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert rv.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert rv.spearman([1, 2, 3, 4], [1, 1, 2, 3]) == pytest.approx(0.9486833, rel=1e-6)


def test_every_block_of_the_study_file_has_its_rule_and_no_rule_is_left_over():
    study = ex.STUDIES["regime"]
    assert {b["name"] for b in study.blocks} == set(rv.RULES)
    stray = ex.Study(study.name, study.title, study.cells, (*study.blocks, {"name": "x"}))
    with pytest.raises(ValueError, match="blocks and rules differ"):
        rv.verdicts(stray, {}, {})


def test_blocks_wait_for_their_cells_and_halves_are_read_as_they_land():
    seeds = (0, 1, 2)

    def cell(pc, **more):
        return {"grpo": dict.fromkeys(seeds, 1.0), "pc": dict(zip(seeds, pc, strict=True)), **more}

    x = {"n16-shipped": cell((1.3, 2.0, 0.8)), "n16-mixed": cell((0.6, 1.1, 0.9)),
         "epochs-n16": cell((1.3, 0.8, 0.6), **{"pc-noevict": {0: 1.28, 1: 0.97, 2: 1.06}})}  # fmt: skip
    A = {"n16-shipped": 1.13, "n16-mixed": 0.88, "n64-shipped": 0.82, "n64-mixed": 0.69}
    table = {r["block"]: r for r in rv.verdicts(ex.STUDIES["regime"], x, A).iter_rows(named=True)}
    assert table["difficulty mix"]["verdict"] == "waits"
    assert table["difficulty mix"]["read"].startswith("n 16: refuted")
    assert table["group size"]["verdict"] == "waits"
    assert table["optimizer steps"]["verdict"] == "waits"
    assert table["epochs and eviction"]["verdict"] == "refuted"
    assert table["where it pays"]["verdict"] == "pays in no cell so far"
    full = {**x, "n64-shipped": cell((0.7, 0.8, 0.9)), "n64-mixed": cell((0.5, 0.6, 0.7)),
            "mb-n16-shipped": cell((2.5, 2.6, 1.7))}  # fmt: skip
    table = {
        r["block"]: r for r in rv.verdicts(ex.STUDIES["regime"], full, A).iter_rows(named=True)
    }
    assert table["group size"]["verdict"] == "refuted"
    assert table["optimizer steps"]["verdict"] == "confirmed"
    assert table["where it pays"]["verdict"] == "pays in mb-n16-shipped"
    # x means 1.37, 0.87, 0.8, 0.6 against A 1.13, 0.88, 0.82, 0.69: same order, all within 25%
    assert table["does the plan predict it"]["verdict"] == "ordering confirmed, level confirmed"
    assert math.isclose(rv.mean_x(full["n64-mixed"]["pc"]), 0.6)


def test_a_cell_whose_grpo_peaks_early_is_too_short_and_never_read():
    assert rv.too_short([20, 15, 80], 90) and not rv.too_short([20, 45, 80], 90)
    assert rv.too_short([22, 22, 90], 90) and not rv.too_short([23, 23, 90], 90)  # 25% of 90
    seeds = (0, 1, 2)
    x = {"n16-shipped": {"grpo": dict.fromkeys(seeds, 1.0), "pc": dict.fromkeys(seeds, 1.6)}}
    short = {"mb-n16-shipped": [10, 15, 90]}
    table = {r["block"]: r for r in
             rv.verdicts(ex.STUDIES["regime"], x, {}, short).iter_rows(named=True)}  # fmt: skip
    assert table["optimizer steps"]["verdict"] == "not read"
    assert "mb-n16-shipped too short" in table["optimizer steps"]["read"]
    assert table["where it pays"]["verdict"] == "pays in n16-shipped so far"
    assert "mb-n16-shipped too short" in table["where it pays"]["read"]
