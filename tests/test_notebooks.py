"""The notebooks, executed top to bottom by papermill in a fresh kernel (real engine, real runs).

Small parameters keep 01 and 02 short; 03 runs with its own defaults (it is the regression
check). Executed copies go to $PCBENCH_NOTEBOOK_OUT (CI keeps them as artefacts) or a temp dir.
"""

import os
from pathlib import Path

import papermill as pm
import pytest

from conftest import ROOT

SMALL = {
    "01_step_through.ipynb": {"dashboard_steps": 2},
    "02_pilot_fraction_ablation.ipynb": {
        "variants": ["pc", "pc-f1_2"],
        "seeds": [0],
        "steps": 4,
        "overrides": ["eval.every=2", "eval.max_prompts=16"],
    },  # fmt: skip
    # Its own defaults: require_signal = True, so a default that stopped learning fails CI (at 12
    # steps GRPO is still climbing, so costs are compared at the default length, make results).
    "03_regression.ipynb": {},
    "04_beyond_pilot_commit.ipynb": {
        "seeds": [0],
        "steps": 2,
        "overrides": ["eval.every=2", "eval.max_prompts=16"],
        "probe_prompts": 40,
        "probe_samples": 4,
        "train_missing": True,  # a fresh runs_dir: its default only reads finished runs
    },  # fmt: skip
    "06_allocation_methods.ipynb": {
        "seeds": [0],
        "steps": 2,
        "variants": ["greso", "mopps", "knapsack"],  # and GRPO, the target
        "overrides": ["batch_prompts=4", "eval.every=2", "eval.max_prompts=16", "eval.k=2"],
        "train_missing": True,
        "live_strategy": "knapsack",
        "live_steps": 1,
    },  # fmt: skip
    # profile -> plan -> map at toy size (the full profile is 500 prompts x 64)
    "07_will_it_pay.ipynb": {"n": 8, "prompts": 24, "best_at": 16},
    # a rule of its own beside GRPO and Pilot-Commit: 4 steps (the rule's in two halves: resumed)
    "08_your_own_strategy.ipynb": {
        "steps": 4,
        "overrides": [
            "batch_prompts=4",
            "pool_prompts=12",
            "eval.every=2",
            "eval.max_prompts=16",
            "eval.k=2",
        ],
        "dashboard_steps": 1,
    },  # fmt: skip
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SMALL))
def test_notebook_runs_clean(name, tmp_path):
    out_dir = Path(os.environ.get("PCBENCH_NOTEBOOK_OUT", tmp_path))
    out_dir.mkdir(parents=True, exist_ok=True)
    params = dict(SMALL[name])
    if "runs_dir" not in params and name != "01_step_through.ipynb":
        params["runs_dir"] = str(tmp_path / "runs")  # never the user's runs/
    executed = pm.execute_notebook(
        ROOT / "notebooks" / name, out_dir / name, parameters=params, cwd=ROOT / "notebooks",
        kernel_name="python3", progress_bar=False, log_output=False,
    )  # fmt: skip
    errors = [
        o for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]  # fmt: skip
    assert not errors
    streams = "".join(
        o.get("text", "") for c in executed.cells if c.cell_type == "code"
        for o in c.get("outputs", []) if o.get("output_type") == "stream"
    )  # fmt: skip
    assert streams.count("\r") < 200, "progress bars flooded the notebook output"
    if name == "06_allocation_methods.ipynb":  # the peers side by side, each with its runs
        cell = next(c for c in executed.cells if "ex.table(" in c.source)
        table = cell.outputs[-1]["data"]["text/plain"]
        assert all(v in table for v in ("grpo", "greso", "mopps", "knapsack")), table
    if name == "07_will_it_pay.ipynb":  # the plan's table and the map were drawn
        source = [c for c in executed.cells if "plan_table(" in c.source][0]
        assert "pilot_commit" in str(source.outputs[-1]["data"]["text/plain"])
        assert "measured cells in" in streams and "predicted advantage" in streams
    if name == "08_your_own_strategy.ipynb":  # trained, resumed, tabled and checked like the rest
        assert (
            "hit_utility-s0: step 2 -> 4" in streams
            and "hit_utility-s0: ledger identities hold" in streams
        )
        compare = next(c for c in executed.cells if 'main(["compare"' in c.source)
        printed = "".join(o.get("text", "") for o in compare.outputs)
        assert all(f"{v}-s0" in printed for v in ("grpo", "pc", "hit_utility")), printed
    if name == "03_regression.ipynb":  # every seed had a real target; costs where GRPO peaked
        last = executed.cells[-1].outputs[0]["data"]["text/plain"]
        assert "no signal" not in last, last
        assert last.count("PC within tolerance") + last.count("GRPO still climbing") == 1, last


def test_notebooks_start_with_the_one_setup_helper_and_call_no_private_name(tmp_path, monkeypatch):
    """Every notebook's first code cell after its parameters is `setup()`; no cell reaches into
    a private attribute; and setup finds the root from a subfolder and refuses outside one."""
    import json
    import re

    from pcbench.notebook import setup

    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
        assert "setup()" in "".join(cells[1]["source"]), path.name
        code = "".join(s for c in cells for s in c["source"])
        assert not re.search(r"\._[a-z]", code), f"{path.name} calls a private name"
        assert "os.chdir" not in code and "ROOT = next" not in code, path.name
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)
    assert setup(ROOT / "notebooks") == ROOT and Path.cwd() == ROOT
    assert os.environ["VLLM_CPU_KVCACHE_SPACE"] == "1"
    with pytest.raises(FileNotFoundError, match="no pyproject.toml"):
        setup(tmp_path)


@pytest.mark.slow
def test_a_run_continued_in_a_fresh_kernel_ends_like_one_never_stopped(tmp_path):
    """Notebook 05 twice, each time in a new kernel: 2 steps, then the same run directory
    reopened (`Run.open`) for 2 more. Logs and weights equal a 4-step `pcbench run`."""
    import subprocess
    import sys

    from test_run import _comparable, _final_weights

    from pcbench.run import Run

    name = "05_continue_a_run.ipynb"
    small = [
        "batch_prompts=4",
        "pool_prompts=12",
        "eval.every=2",
        "eval.max_prompts=16",
        "eval.k=2",
    ]
    run_dir = tmp_path / "runs" / "continued"
    for steps in (2, 4):
        executed = pm.execute_notebook(
            ROOT / "notebooks" / name, tmp_path / f"{steps}-{name}", cwd=ROOT / "notebooks",
            parameters={"run_dir": str(run_dir), "overrides": small, "steps": steps},
            kernel_name="python3", progress_bar=False, log_output=False,
        )  # fmt: skip
        assert not [o for c in executed.cells if c.cell_type == "code"
                    for o in c.get("outputs", []) if o.get("output_type") == "error"]  # fmt: skip
    whole = subprocess.run(
        [sys.executable, "-m", "pcbench.cli", "run", "configs/tiny-pc.toml", "--runs",
         str(tmp_path / "runs"), "--quiet", "--set", "name=whole", "--set", "steps=4",
         *[f"--set={s}" for s in small]],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert whole.returncode == 0, whole.stderr[-3000:]
    a, b = Run(tmp_path / "runs" / "whole"), Run(run_dir)
    assert b.provenance["resumed"]  # the second kernel did reopen it
    assert _comparable(a.ledger()).equals(_comparable(b.ledger()))
    for kind in ("rollouts", "scores", "evals"):
        assert a.read(kind).equals(b.read(kind)), kind
    wa, wb = _final_weights(a.path), _final_weights(b.path)
    assert max((wa[k] - wb[k]).abs().max().item() for k in wa) <= 1e-6
