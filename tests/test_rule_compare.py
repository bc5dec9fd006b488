"""bench/rule_compare.py: one experiment read by both crossing rules, side by side (pure logic
on given per-run rows; the real runs' reading is in docs/RESULTS.md §1)."""

import sys
from pathlib import Path

import polars as pl

from pcbench.analysis import MECHANISM
from pcbench.tables import RATIOS

BENCH = str(Path(__file__).resolve().parents[1] / "bench")
sys.path.append(BENCH)  # only for this import: bench/ holds module names as plain as `steps`
import rule_compare as rc  # noqa: E402

sys.path.remove(BENCH)


def rows(readings: dict[str, list]) -> pl.DataFrame:
    """Per-run rows as `results.measure` gives them: variant -> [(seed, rollouts, x)], GRPO's
    target 0.5 at step 45 (censored in seed 1)."""
    out = []
    for variant, seeds in readings.items():
        for seed, rollouts, x in seeds:
            out.append({
                "run": f"{variant}-s{seed}", "variant": variant, "label": "", "seed": seed,
                "strategy": "grpo" if variant == "grpo" else "pilot_commit",
                "target": 0.5, "target_step": 45, "target_censored": seed == 1,
                "rollouts_to_target": rollouts, "tokens_to_target": rollouts,
                "seconds_to_target": None if rollouts is None else 1.0,
                "rollouts_to_target_lo": rollouts, "rollouts_to_target_hi": rollouts,
                "pilot_fraction": None, "rollouts": 9_000, "tokens": 9_000,
                "best_acc": 0.6, "final_acc": 0.6, "per_informative": 2.0,
                **{c: (x if c == "x_vs_grpo" else None) for c in RATIOS},
                **{c: 0.0 for c in MECHANISM},
            })  # fmt: skip
    return pl.DataFrame(out, infer_schema_length=None)


def test_each_variant_shows_the_new_reading_with_the_old_ratio_beside_it():
    new = rows({"grpo": [(0, 1000, 1.0), (1, 1000, 1.0)], "pc": [(0, 500, 2.0), (1, None, None)]})
    old = rows({"grpo": [(0, 1000, 1.0), (1, 1000, 1.0)], "pc": [(0, 800, 1.25), (1, 900, 1.11)]})
    table = rc.side_by_side(new, old).splitlines()
    assert table[0].count("|") == table[1].count("|")  # a well-formed Markdown header
    pc = next(line for line in table if line.startswith("| `pc`"))
    cells = [c.strip() for c in pc.strip("|").split("|")]
    # new: one seed reached (2.00, the other missed: no ratio); old: both reached, mean 1.18
    assert cells[1:4] == ["1/2", "500 [500–500]", "500–500"]
    assert cells[4] == "**2.00**" and cells[5].startswith("1.18 [")
    assert cells[6] == "2.00, —" and cells[7] == "2/2"


def test_a_variant_the_old_reading_lacks_is_shown_without_an_old_ratio():
    new = rows({"grpo": [(0, 1000, 1.0)], "pc": [(0, 500, 2.0)]})
    old = rows({"grpo": [(0, 1000, 1.0)]})
    pc = next(line for line in rc.side_by_side(new, old).splitlines() if "`pc`" in line)
    assert [c.strip() for c in pc.strip("|").split("|")][5:8] == ["—", "2.00", "—"]


def test_targets_name_each_seed_once_with_its_censoring():
    table = rows({"grpo": [(0, 1000, 1.0), (1, 1000, 1.0)], "pc": [(0, 500, 2.0)]})
    assert rc.targets(table) == "seed 0: 0.500 at step 45; seed 1: 0.500 at step 45 (censored)"
