"""The Strategy API (pcbench.strategies): what registration refuses, how a config finds a
strategy defined outside the library, and that such a strategy trains, resumes after SIGKILL
exactly and appears in `pcbench compare` with nothing else written (tests/plugins/screen.py)."""

import ast
from pathlib import Path

import polars as pl
import pytest
from test_run import _comparable, _final_weights, _kill_after_checkpoint, _pcbench

from pcbench import strategies
from pcbench.config import ConfigError, from_dict, load_config
from pcbench.strategies import Strategy, StrategyError

from conftest import ROOT

PLUGIN = "tests/plugins/screen.py"  # relative to the directory run in, as a config's paths


def test_a_strategy_without_phases_identity_or_rollouts_per_step_is_refused_saying_what_to_add():
    class Bare(Strategy):
        def step(self, s, cfg, step):
            return {}

    with pytest.raises(StrategyError) as refused:
        strategies.register("bare")(Bare)
    message = str(refused.value)
    for needed in ("phases = (", "def rollouts_per_step", "def budget_violations"):
        assert needed in message
    assert "def step" not in message  # it has one
    assert "bare" not in strategies.names()

    class Eval(Bare):
        phases = ("eval",)
        rollouts_per_step = budget_violations = lambda self, *a: []  # noqa: E731

    with pytest.raises(StrategyError, match="reserved"):
        strategies.register("evaluator")(Eval)

    class Clash(Eval):
        phases = ("pilot",)

    with pytest.raises(StrategyError, match=r"'pilot' \(pilot_commit\)"):
        strategies.register("clash")(Clash)
    with pytest.raises(StrategyError, match="built in"):
        strategies.register("grpo")(type("Mine", (Eval,), {"phases": ("mine",)}))
    with pytest.raises(StrategyError, match="subclass of strategies.Strategy"):
        strategies.register("plain")(object)


def test_every_built_in_declares_the_protocol_and_the_loop_names_none():
    assert strategies.names()[:6] == ("pilot_commit", "grpo", "dapo", "greso", "mopps", "knapsack")
    cfg = load_config(ROOT / "configs" / "tiny-pc.toml")
    for name in strategies.names()[:6]:
        s = strategies.get(name)
        assert s.phases and s.allocation and type(s).__module__ == f"pcbench.strategies.{name}"
        need, why = s.epoch_need(cfg)
        assert need >= cfg.batch_prompts and why
    # The modules that used to spell every strategy out read the registry now.
    for module in ("loop", "ledger", "schema", "plots", "memory", "regression", "prompt_state",
                   "state", "widgets/dashboard"):  # fmt: skip
        text = (ROOT / "pcbench" / f"{module}.py").read_text()
        for name in ("greso", "mopps", "knapsack", "dapo"):
            assert f'"{name}"' not in text, (module, name)


def test_a_config_names_its_plugin_and_the_strategy_table_is_checked(monkeypatch):
    monkeypatch.chdir(ROOT)
    with pytest.raises(ConfigError, match="strategy = 'nothing_here': not registered; use one"):
        from_dict({"strategy": "nothing_here"})
    cfg = from_dict({"strategy": "screen", "plugins": [PLUGIN], "screen": {"n_screen": 2}})
    assert cfg.screen.n_screen == 2 and cfg.to_dict()["screen"] == {"n_screen": 2}
    assert from_dict(cfg.to_dict()) == cfg  # config.json round-trips
    with pytest.raises(ConfigError, match="unknown key screen.n_scren; did you mean 'n_screen'"):
        from_dict({"strategy": "screen", "plugins": [PLUGIN], "screen": {"n_scren": 2}})
    with pytest.raises(ConfigError, match="plugins: no such file 'tests/plugins/nothing.py'"):
        from_dict({"strategy": "grpo", "plugins": ["tests/plugins/nothing.py"]})
    with pytest.raises(ConfigError, match="cannot import 'no_such_module'"):
        from_dict({"strategy": "grpo", "plugins": ["no_such_module"]})
    # a table of another strategy at its defaults changes nothing and is not written out
    grpo = from_dict({"strategy": "grpo", "greso": {"round_prompts": 12}})
    assert "greso" not in grpo.to_dict() and grpo.greso.round_prompts == 12


def _imports(path: Path, module: str) -> set[str]:
    """The pcbench modules `path` imports, at module level or inside functions; what only a
    type checker reads (`if TYPE_CHECKING:`) is not an import at run time."""
    tree = ast.parse(path.read_text())
    skip = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for stmt in block.body
        for node in ast.walk(stmt)
    }
    package = module.rsplit(".", 1)[0] if path.name != "__init__.py" else module
    out = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("pcbench")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            if base.startswith("pcbench"):
                out |= {base} | {f"{base}.{a.name}" for a in node.names}
    return out


def import_graph() -> dict[str, set[str]]:
    """pcbench module -> the pcbench modules it imports (a package stands for its __init__)."""
    files = {}
    for path in (ROOT / "pcbench").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        files[name] = path
    return {m: {i for i in _imports(p, m) if i in files and i != m} for m, p in files.items()}


def test_the_package_imports_without_circles():
    graph, cycles = import_graph(), []
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(module, path):
        state[module] = 1
        for other in sorted(graph[module]):
            if state.get(other) == 1:
                cycles.append(" -> ".join([*path[path.index(other) :], other]))
            elif other not in state:
                visit(other, [*path, other])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []
    assert "pcbench.strategies.grpo" not in graph["pcbench.strategies.registry"]


def test_reading_runs_and_tables_imports_no_torch():
    import subprocess
    import sys

    code = (
        "import sys; import pcbench.results, pcbench.experiments, pcbench.regression, "
        "pcbench.report, pcbench.run, pcbench.plan; from pcbench import strategies; "
        "strategies.names(); print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr[-2000:]


SMALL = ["batch_prompts=4", "pool_prompts=12", "eval.every=2", "eval.max_prompts=16", "eval.k=2"]


def _screen_config(tmp_path) -> Path:
    path = tmp_path / "screen.toml"
    path.write_text(
        f'inherit = "{ROOT / "configs" / "tiny-grpo.toml"}"\nname = "screen"\n'
        f'strategy = "screen"\nplugins = ["{PLUGIN}"]\n\n[screen]\nn_screen = 4\n'
    )
    return path


@pytest.mark.slow
def test_a_strategy_from_outside_the_library_trains_resumes_exactly_and_is_compared(
    tmp_path, tiny_engine, verifier, monkeypatch, capsys
):
    """tests/plugins/screen.py, named in a config's `plugins`: trained in this process on the
    session engine, then killed mid-run and resumed by `pcbench run` in subprocesses; the two
    end alike (ledger, rollouts, evaluations, weights); its ledger keeps the budget identities
    (its own included) and `pcbench compare` tables it beside GRPO."""
    from pcbench.cli import main
    from pcbench.loop import train
    from pcbench.policy import Policy
    from pcbench.regression import ledger_violations
    from pcbench.run import Run, open_run

    from conftest import TINY_POLICY

    monkeypatch.chdir(ROOT)
    steps, kill_after, config = 4, 2, _screen_config(tmp_path)
    sets = [*SMALL, f"steps={steps}"]
    try:
        for name, path in [("whole", config), ("grpo", ROOT / "configs" / "tiny-grpo.toml")]:
            cfg = load_config(path, [*sets, f"name={name}"])
            s, run = open_run(cfg, tmp_path, verifier=verifier)
            train(s, cfg, run, progress=False)
    finally:
        tiny_engine.load_weights(Policy(TINY_POLICY))
    whole = Run(tmp_path / "whole")
    assert ledger_violations(whole) == []
    ledger = whole.ledger().filter(pl.col("step") > 0)
    assert (ledger["rollout_stats/screen"] > 0).all() and (
        ledger["rollout_stats/continue"] > 0
    ).all()
    assert ledger["filtering_stats/screen_equal"].sum() > 0  # it did drop all-equal prompts
    assert set(whole.read("rollouts")["phase"]) == {"screen", "continue"}

    def start(*more):
        return _pcbench("run", str(config), "--runs", str(tmp_path), "--set=name=killed",
                        *[f"--set={x}" for x in sets], "--quiet", *more)  # fmt: skip

    _kill_after_checkpoint(start(), tmp_path / "killed", kill_after)
    started = int(Run(tmp_path / "killed").checkpoints()[-1].name.split("-")[1])
    assert kill_after <= started < steps  # there are steps left to redo
    resumed = start("--resume")
    out, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, out[-3000:]
    assert f"step {started} of {steps}" in out and "step 0 of" not in out
    killed = Run(tmp_path / "killed")
    assert _comparable(whole.ledger()).equals(_comparable(killed.ledger()))
    for kind in ("rollouts", "evals", "scores"):
        assert whole.read(kind).equals(killed.read(kind)), kind
    wa, wb = _final_weights(whole.path), _final_weights(killed.path)
    assert max((wa[k] - wb[k]).abs().max().item() for k in wa) <= 1e-6

    capsys.readouterr()
    assert main(["compare", str(tmp_path / "grpo"), str(tmp_path / "whole"), "--format",
                 "csv"]) in (None, 0)  # fmt: skip
    table = pl.read_csv(capsys.readouterr().out.encode())
    assert table["strategy"].to_list() == ["grpo", "screen"] and table["rollouts"][1] > 0
