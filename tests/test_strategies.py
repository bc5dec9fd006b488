"""The Strategy API (pcbench.strategies): what registration refuses, how a config finds a
strategy defined outside the library, the package's import graph. That such a strategy trains,
resumes after SIGKILL exactly and appears in `pcbench compare` is tests/test_resume.py's."""

import ast
from pathlib import Path

import pytest

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


def test_the_package_exports_its_public_names_and_no_two_public_functions_share_one():
    import importlib

    import pcbench

    for name in pcbench.__all__:
        assert getattr(pcbench, name) is not None
    seen: dict[str, str] = {}
    for module in sorted(import_graph()):
        if module.startswith(("pcbench.cluster", "pcbench.tiny")):  # need Ray / build data
            continue
        mod = importlib.import_module(module)
        for name, value in vars(mod).items():
            if (
                name.startswith("_")
                or not callable(value)
                or getattr(value, "__module__", "") != module
            ):
                continue
            if isinstance(value, type):
                continue
            assert name not in seen, f"{name}: {seen[name]} and {module}"
            seen[name] = module
