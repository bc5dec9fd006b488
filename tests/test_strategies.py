"""The Strategy API (pcbench.strategies): what registration refuses, how a config finds a
strategy defined outside the library, the package's import graph. That such a strategy trains,
resumes after SIGKILL exactly and appears in `pcbench compare` is tests/test_resume.py's."""

import ast
from pathlib import Path

import polars as pl
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


def test_what_a_step_may_change_is_declared_once_and_both_ways_back_walk_it(tmp_path):
    """state.STEP_STATE names every State field that keeps state (anything with a state_dict,
    the policy and engine aside, which have their own ways back); the undo snapshot and the
    checkpoint files both restore every one of them, tables included (pure logic: no engine)."""
    from dataclasses import fields
    from types import SimpleNamespace

    from pcbench import atomic
    from pcbench.buffer import PilotBuffer
    from pcbench.prompt_state import MoppsPosteriors
    from pcbench.run import _read_step_state, _write_step_state
    from pcbench.state import STEP_STATE, State
    from pcbench.tasks import PromptStream, arith

    prompts = arith.generate_problems(24, seed=0, split="train")
    engine = SimpleNamespace(rollouts_generated=0, tokens_generated=0, rollouts_lost=0)

    def made():
        return State(engine=engine, verifier=None, policy=None, prompts=prompts,
                     stream=PromptStream(prompts, seed=1), buffer=PilotBuffer(seed=1),
                     prompt_state=MoppsPosteriors())  # fmt: skip

    s = made()
    stateful = {f.name for f in fields(State) if hasattr(getattr(s, f.name), "state_dict")}
    assert stateful - {"policy", "engine"} == set(STEP_STATE)

    def advance(s, step):
        s.stream.next_pool(5)
        s.prior.observe(["1"], [0.5])
        s.prompt_state.alpha[f"p{step}"] = 2.0
        s.ledger.add(step, "rollout_stats/pilot", 12)

    def plain(s):  # tables as rows, so that == compares them
        return {name: {k: v.to_dicts() if isinstance(v, pl.DataFrame) else v
                       for k, v in part.items()} for name, part in s.step_state().items()}  # fmt: skip

    advance(s, 1)
    seen = plain(s)
    before = atomic.snapshot(s)
    advance(s, 2)
    assert plain(s) != seen
    atomic.restore(s, before, 2)
    s.ledger.rows.pop(2)  # restore counted the attempt (nothing generated) under step 2
    assert plain(s) == seen

    _write_step_state(tmp_path, 1, s.step_state())
    back = made()
    loaded = _read_step_state(tmp_path)
    back.load_step_state(loaded["parts"])
    assert loaded["step"] == 1
    assert plain(back) == seen
    with pytest.raises(ValueError, match=r"\['prompt_state'\] missing"):  # never resumed empty
        made().load_step_state({k: v for k, v in loaded["parts"].items() if k != "prompt_state"})


# The package's layers, top first (docs/layout.md draws them): a module imports only from its
# own layer and the ones below. `name` is that module or package; `name.*` everything under it.
LAYERS = (
    ("what people run", ("cli", "notebook", "widgets", "widgets.*", "check", "tiny", "tiny.*")),
    ("studies", ("experiments", "regression", "report", "testing")),
    ("comparing runs", ("results", "tables", "plots")),
    ("one run's numbers", ("analysis", "plan", "profile")),
    ("the loop and the strategies", ("loop", "strategies.*")),
    (
        "the shared steps",
        ("rounds", "pilots", "steps", "steps.*", "atomic", "accounting", "memory"),
    ),
    ("a run", ("state", "run", "cluster", "cluster.*")),
    (
        "components",
        (
            "policy",
            "steps.update",
            "engines",
            "engines.*",
            "verify",
            "verify.*",
            "buffer",
            "tracking",
            "provenance",
        ),
    ),  # fmt: skip
    ("config", ("config",)),
    ("the strategy registry", ("strategies", "strategies.registry")),
    (
        "data and pure math",
        (
            "schema",
            "algos",
            "algos.*",
            "ledger",
            "logprobs",
            "tasks",
            "tasks.*",
            "prior",
            "prompt_state",
            "pcbench",
        ),
    ),  # fmt: skip
)


def layer_of(module: str) -> int:
    """The index in LAYERS of `module` (an exact name before a package's `.*`)."""
    name = "pcbench" if module == "pcbench" else module.removeprefix("pcbench.")
    exact = [i for i, (_, names) in enumerate(LAYERS) if name in names]
    under = [i for i, (_, names) in enumerate(LAYERS) for n in names
             if n.endswith(".*") and name.startswith(n[:-1])]  # fmt: skip
    if not exact and not under:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS (and docs/layout.md)")
    return (exact or under)[0]


def test_every_import_goes_down_the_layers():
    """No arrow up: the strategies use the steps (never the reverse), the policy and the
    verifier import nothing of cluster/, one run's numbers know nothing of comparing runs."""
    graph = import_graph()
    up = [f"{m} -> {d} ({LAYERS[layer_of(m)][0]} -> {LAYERS[layer_of(d)][0]})"
          for m, deps in sorted(graph.items()) for d in sorted(deps)
          if layer_of(d) < layer_of(m)]  # fmt: skip
    assert up == []
    assert not {d for d in graph["pcbench.policy"] | graph["pcbench.verify.verifier"]
                if d.startswith("pcbench.cluster")}  # fmt: skip
