"""Exact resume for every registered strategy, and for one defined outside the library.

Every strategy trains 4 steps in this process (the session's engine); a copy of each run
directory is cut back to its step-2 checkpoint, with the logs of steps 3-4 left behind as a kill
would leave them; one fresh process then resumes every copy (`Run.open`, as a new kernel or
`pcbench run --resume` would) and each must end like the run never cut: ledger, rollouts,
scores, evaluations, metrics, weights and its per-prompt state. One process for all strategies
(not three each), so the registry can grow without CI growing by minutes. The real SIGKILL,
mid-step, is the plugin strategy's (`tests/plugins/screen.py`, the last test here); the logs a
kill leaves are test_run.py's."""

import json
import shutil
import subprocess
import sys

import polars as pl
import pytest
from test_run import _comparable, _final_weights, _kill_after_checkpoint, _pcbench

from pcbench import strategies
from pcbench.config import load_config
from pcbench.regression import ledger_violations
from pcbench.run import Run

from conftest import ARITH, ROOT, SMALL

pytestmark = pytest.mark.slow

STEPS, CUT = 4, 2
SIZED = [*SMALL, "eval.every=2", f"steps={STEPS}", "checkpoint_every=1",
         f"keep_checkpoints={STEPS}"]  # fmt: skip
PLUGIN = str(ROOT / "tests" / "plugins" / "screen.py")
# Per strategy: its config, and a training split small enough that prompts come back within 4
# steps (the peers' per-prompt states, the prior and the gate are then in use when cut).
CASES = {
    "pilot_commit": ("tiny-pc-beyond.toml", 96, ["pilot.prior_min=4", "pilot.explore=0.25"]),
    "pc-history": ("tiny-pc-history.toml", 96, ["pool_prompts=8"]),  # the gate's posteriors
    "grpo": ("tiny-grpo.toml", None, []),
    "dapo": ("tiny-dapo.toml", None, []),
    "greso": ("tiny-greso.toml", 24, ["greso.round_prompts=6"]),
    "mopps": ("tiny-mopps.toml", 16, ["mopps.candidate_ratio=2.0"]),
    "knapsack": ("tiny-knapsack.toml", 8, []),
    "screen": (None, None, [f"plugins=['{PLUGIN}']", "strategy='screen'"]),
}


def config_for(case: str, root):
    config, prompts, sets = CASES[case]
    more = [f"name={case}", *SIZED, *sets]
    if prompts is not None:
        path = root / f"train-{case}.parquet"
        pl.read_parquet(ARITH / "train.parquet").head(prompts).write_parquet(path)
        more.append(f"train={path}")
    return load_config(ROOT / "configs" / (config or "tiny-grpo.toml"), more)


def test_every_registered_strategy_has_a_resume_case():
    assert set(strategies.registry.BUILTIN) <= set(CASES)


@pytest.fixture(scope="module")
def resumed(tiny_engine, verifier, tmp_path_factory):
    """(whole runs, resumed runs) of every case: {case: Run}."""
    from pcbench.loop import train
    from pcbench.policy import Policy
    from pcbench.run import open_run

    from conftest import TINY_POLICY

    root = tmp_path_factory.mktemp("resume")
    whole, cut = root / "whole", root / "cut"
    try:
        for case in CASES:
            cfg = config_for(case, root)
            s, run = open_run(cfg, whole, verifier=verifier)
            train(s, cfg, run, progress=False)
    finally:
        tiny_engine.load_weights(Policy(TINY_POLICY))
    shutil.copytree(whole, cut)
    for run_dir in cut.iterdir():
        for later in range(CUT + 1, STEPS + 1):
            shutil.rmtree(run_dir / "checkpoints" / f"step-{later:06d}")
    script = (
        "import sys\nfrom pathlib import Path\nfrom pcbench.loop import train\n"
        "from pcbench.run import Run\nfor path in sys.argv[1:]:\n"
        "    s, run = Run.open(path)\n    print(path, s.step, flush=True)\n"
        "    train(s, run.config, run, progress=False)\n"
    )
    paths = [str(cut / case) for case in CASES]
    out = subprocess.run([sys.executable, "-c", script, *paths], cwd=ROOT, capture_output=True,
                         text=True, timeout=900)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert all(f"{p} {CUT}" in out.stdout for p in paths), out.stdout  # from the cut, not 0
    return {c: Run(whole / c) for c in CASES}, {c: Run(cut / c) for c in CASES}


@pytest.mark.parametrize("case", CASES)
def test_a_run_resumed_in_a_fresh_process_ends_like_one_never_stopped(case, resumed):
    a, b = resumed[0][case], resumed[1][case]
    assert _comparable(a.ledger()).equals(_comparable(b.ledger()))
    for kind in ("rollouts", "scores", "evals", "metrics"):
        assert a.read(kind).equals(b.read(kind)), kind
    wa, wb = _final_weights(a.path), _final_weights(b.path)
    assert max((wa[k] - wb[k]).abs().max().item() for k in wa) <= 1e-6
    state = [
        json.loads((r.path / "checkpoints" / f"step-{STEPS:06d}" / "state.json").read_text())
        for r in (a, b)
    ]
    assert state[0] == state[1]
    if case in ("pc-history", "greso", "mopps", "knapsack"):
        assert len(json.dumps(state[0]["prompt_state"])) > 200  # it was in use when cut
    if case == "pilot_commit":  # the sequential pilot's prior was in use and was saved
        assert sum(len(v) for v in state[0]["prior"]["rates"].values()) > 0
        assert a.ledger()["filtering_stats/early_stopped"].sum() > 0
    assert ledger_violations(b) == []


@pytest.mark.parametrize("case", CASES)
def test_an_interrupted_step_is_undone_and_its_retry_trains_as_if_nothing_happened(
    case, resumed, fresh, tmp_path, monkeypatch
):
    """An interrupt at the update (after the step drew its prompts, generated, filtered and
    changed its per-prompt state) puts all of it back; the retried step then generates what
    the uninterrupted run did (the fixture's run of the same config)."""
    import pcbench.steps.update as update_module
    from pcbench.loop import train_step

    cfg = config_for(case, tmp_path)
    s, run = fresh(cfg)
    train_step(s, cfg, run)

    def observe():
        kept = s.prompt_state.state_dict() if s.prompt_state is not None else None
        return (s.step, s.stream.state_dict(), s.buffer.state_dict()["entries"],
                s.prior.state_dict(), kept)  # fmt: skip

    before, update = observe(), update_module.update

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(update_module, "update", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_step(s, cfg, run)
    assert observe() == before
    assert s.ledger.rows[2]["rollout_stats/interrupted"] > 0  # what it generated stays paid
    monkeypatch.setattr(update_module, "update", update)
    _, frames = train_step(s, cfg, run)
    whole = resumed[0][case].read("rollouts").filter(pl.col("step") == 2)
    assert frames["rollouts"].select(whole.columns).equals(whole)


def test_a_strategy_from_outside_the_library_resumes_exactly_after_sigkill_and_is_compared(
    resumed, tmp_path, capsys
):
    """tests/plugins/screen.py named in a config's `plugins`: `pcbench run` killed mid-step, then
    `--resume`d, ends like the run trained whole in this process (the fixture's); `pcbench
    compare` tables it beside GRPO."""
    from pcbench.cli import main

    whole = resumed[0]["screen"]
    config = tmp_path / "screen.toml"
    sets = [x for x in SIZED if not x.startswith("keep_")]
    config.write_text(f'inherit = "{ROOT / "configs" / "tiny-grpo.toml"}"\nname = "screen"\n'
                      f'strategy = "screen"\nplugins = ["{PLUGIN}"]\n')  # fmt: skip

    def start(*more):
        return _pcbench("run", str(config), "--runs", str(tmp_path / "runs"),
                        *[f"--set={x}" for x in sets], "--quiet", *more)  # fmt: skip

    _kill_after_checkpoint(start(), tmp_path / "runs" / "screen", CUT)
    killed = Run(tmp_path / "runs" / "screen")
    started = int(killed.checkpoints()[-1].name.split("-")[1])
    assert CUT <= started < STEPS  # there are steps left to redo
    resumed_run = start("--resume")
    out, _ = resumed_run.communicate(timeout=600)
    assert resumed_run.returncode == 0, out[-3000:]
    assert f"step {started} of {STEPS}" in out and "step 0 of" not in out
    assert _comparable(whole.ledger()).equals(_comparable(killed.ledger()))
    for kind in ("rollouts", "scores", "evals"):
        assert whole.read(kind).equals(killed.read(kind)), kind
    wa, wb = _final_weights(whole.path), _final_weights(killed.path)
    assert max((wa[k] - wb[k]).abs().max().item() for k in wa) <= 1e-6
    ledger = killed.ledger().filter(pl.col("step") > 0)
    assert (ledger["rollout_stats/continue"] > 0).all()
    assert ledger["filtering_stats/screen_equal"].sum() > 0  # it did drop all-equal prompts

    capsys.readouterr()
    grpo = resumed[0]["grpo"]
    main(["compare", str(grpo.path), str(killed.path), "--format", "csv"])
    table = pl.read_csv(capsys.readouterr().out.strip().encode())
    assert table["strategy"].to_list() == ["grpo", "screen"] and table["rollouts"][1] > 0
