"""bench/plan_check.py: the plan beside one experiment's runs (the table itself is
`results.predicted_vs_measured`, tested in test_plan.py on a real run; here: the script refuses
a folder with no finished runs by name instead of writing an empty table)."""

import sys
from pathlib import Path

import pytest

BENCH = str(Path(__file__).resolve().parents[1] / "bench")
sys.path.append(BENCH)  # only for this import: bench/ holds module names as plain as `steps`
import plan_check  # noqa: E402

sys.path.remove(BENCH)


def test_an_experiment_without_finished_runs_is_refused_by_name(tmp_path, monkeypatch):
    (tmp_path / "grpo-s0").mkdir()  # a GRPO run that never finished: no target, no table
    monkeypatch.setattr(sys, "argv", ["plan_check.py", "ablations", "--runs", str(tmp_path)])
    with pytest.raises(SystemExit, match="no finished runs of ablations"):
        plan_check.main()
