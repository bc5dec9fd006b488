"""The Strategy protocol and the registry every module reads strategies from.

A strategy is a class with the attributes and methods below, registered by name:

    @strategies.register("screen")
    class Screen(strategies.Strategy):
        phases = ("screen", "continue")          # rollout phases it generates under
        allocation = {"filtering_stats/screen_kept": "kept", ...}   # counters -> plot labels
        def step(self, s, cfg, step): ...        # one training step (docs/method.md)
        def rollouts_per_step(self, cfg, rounds=1.0): ...   # for the memory plan
        def budget_violations(self, cfg, col): ...          # its budget identity

Everything else has a default (`Strategy`). The loop steps a run through `get(cfg.strategy)`,
the ledger learns its phases' and counters' columns at registration, the plots read its
allocation, `regression.ledger_violations` its budget identity, `memory` its rollouts per step,
`State` its per-prompt state, the config its table (`[<name>]` in TOML, a frozen dataclass).

Built-in strategies are found like plugins: the registry loads the modules named in BUILTIN on
first use, and a config's `plugins` (module names or .py files) the same way, so a strategy
defined outside the library resumes from its run directory. The registry imports none of them:
they depend on it and on the steps, never the reverse.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import ClassVar

from pcbench import ledger, schema

BUILTIN = {  # name -> module that registers it
    "pilot_commit": "pcbench.strategies.pilot_commit",
    "grpo": "pcbench.strategies.grpo",
    "dapo": "pcbench.strategies.dapo",
    "greso": "pcbench.strategies.greso",
    "mopps": "pcbench.strategies.mopps",
    "knapsack": "pcbench.strategies.knapsack",
}
REQUIRED = {  # what a registered strategy must define, and what it is for
    "step": "def step(self, s, cfg, step) -> dict | None: one training step",
    "rollouts_per_step": "def rollouts_per_step(self, cfg, rounds=1.0) -> float: the memory "
    "plan's generated rollouts a step",
    "budget_violations": "def budget_violations(self, cfg, col) -> list[str]: its budget "
    "identity, checked by regression.ledger_violations",
}


class StrategyError(ValueError):
    """A strategy that cannot be registered or found (the message says what to add)."""


class Strategy:
    """The protocol, with the defaults a strategy may keep. `s` is the run's `State`, `cfg` its
    `RunConfig`; `col(name)` a ledger column over the run's steps (zeros where never counted)."""

    name: ClassVar[str] = ""  # set by `register`
    phases: ClassVar[tuple[str, ...]] = ()  # rollout phases (ROLLOUTS.phase, rollout_stats/*)
    allocation: ClassVar[dict[str, str]] = {}  # ledger counter -> label, the allocation plot
    counters: ClassVar[tuple[str, ...]] = ()  # further ledger counters it reports
    # phases whose groups it draws before picking anything by their rewards (pcbench.profile
    # reads a run's pass rates from them; Pilot-Commit's commits are of prompts a pilot kept)
    unselected_phases: ClassVar[tuple[str, ...]] = ()
    table: ClassVar[type | None] = None  # its config table [<name>]: a frozen dataclass
    hand_stages: ClassVar[bool] = False  # the dashboard's pilot/score/commit buttons step it

    def step(self, s, cfg, step: int) -> dict | None:
        """Generate, filter and train one step; its update metrics, or None when the epoch ran
        out before the batch filled (the loop then starts a fresh epoch and calls it again)."""
        raise NotImplementedError

    def rollouts_per_step(self, cfg, rounds: float = 1.0) -> float:
        raise NotImplementedError

    def budget_violations(self, cfg, col) -> list[str]:
        raise NotImplementedError

    def trains_b_by_n(self, cfg) -> bool:
        """Whether a full batch always trains on exactly B x n rollouts (checked by
        regression.ledger_violations; a value-per-cost commit sizes its groups by value)."""
        return True

    def epoch_need(self, cfg) -> tuple[int, str]:
        """(training prompts an epoch must hold for a step to fill its batch, why in the
        config's own names)."""
        return cfg.batch_prompts, f"one batch of batch_prompts = {cfg.batch_prompts}"

    def new_prompt_state(self, cfg):
        """What it remembers per prompt (state_dict / load_state_dict; checkpointed, undone with
        an undone step), or None."""
        return None

    def validate(self, cfg) -> None:
        """Refuse a config this strategy cannot run (raise config.ConfigError)."""

    def __repr__(self):
        return f"<strategy {self.name!r}: phases {list(self.phases)}>"


_REGISTRY: dict[str, Strategy] = {}
_LOADED: set[str] = set()  # plugins (modules, files) already imported for their registrations
_BUILTINS_LOADED = False


def register(name: str):
    """Class decorator: register an instance of the class under `name`. A strategy missing a
    required part is refused, naming it. Registering a name again replaces it (a notebook cell
    run again), except a built-in's."""

    def decorate(cls: type[Strategy]) -> type[Strategy]:
        _check(name, cls)
        if name in _REGISTRY and name in BUILTIN:
            raise StrategyError(f"strategy {name!r} is built in: register yours by another name")
        cls.name = name
        strategy = cls()
        _REGISTRY[name] = strategy
        ledger.known_columns(_columns(strategy))
        return cls

    return decorate


def _check(name: str, cls) -> None:
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise StrategyError(f"strategy {name!r}: register a subclass of strategies.Strategy")
    if not name or not name.isidentifier():
        raise StrategyError(f"strategy name {name!r}: use a Python identifier (it names a table)")
    missing = [
        why for attr, why in REQUIRED.items() if getattr(cls, attr) is getattr(Strategy, attr)
    ]
    phases = cls.phases
    if not (isinstance(phases, tuple) and phases and all(isinstance(p, str) for p in phases)):
        missing.insert(
            0,
            "phases = ('...',): the rollout phases it generates under (the ledger "
            "counts its rollouts by them; a phase never declared is never paid for)",
        )
    if missing:
        raise StrategyError(
            f"strategy {name!r} cannot be registered; add:\n  " + "\n  ".join(missing)
        )
    if bad := [p for p in phases if not schema.is_phase_name(p)]:
        raise StrategyError(f"strategy {name!r}: phases {bad} are not lowercase identifiers")
    reserved = {"eval", "interrupted", "lost", "trained"} & set(phases)
    if reserved:
        raise StrategyError(f"strategy {name!r}: phase names {sorted(reserved)} are reserved")
    taken = {p: other for other, s in _REGISTRY.items() if other != name for p in s.phases}
    if clash := [f"{p!r} ({taken[p]})" for p in phases if p in taken]:
        raise StrategyError(f"strategy {name!r}: phases already used by others: {', '.join(clash)}")


def _columns(strategy: Strategy) -> tuple[str, ...]:
    """The ledger columns a strategy's steps report (each step's ledger part has them all)."""
    by_phase = [f"{kind}/{p}" for p in strategy.phases for kind in ("rollout_stats", "token_stats")]
    return (*by_phase, *strategy.allocation, *strategy.counters)


def get(name: str) -> Strategy:
    """The strategy registered as `name` (built-ins are loaded on first use)."""
    _load_builtins()
    if name not in _REGISTRY:
        raise StrategyError(
            f"strategy = {name!r}: not registered; use one of {names()}, or register yours "
            "(`@strategies.register`) and name its module or file in the config's `plugins`"
        )
    return _REGISTRY[name]


def names() -> tuple[str, ...]:
    _load_builtins()
    return tuple(_REGISTRY)


def load_plugins(plugins) -> None:
    """Import each plugin once (a module name, or a .py file relative to the directory run in),
    for the strategies it registers."""
    for plugin in plugins:
        if plugin in _LOADED:
            continue
        path = Path(plugin)
        if plugin.endswith(".py"):
            if not path.exists():
                raise StrategyError(f"plugins: no such file {plugin!r}")
            spec = importlib.util.spec_from_file_location(f"pcbench_plugin_{path.stem}", path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
        else:
            try:
                importlib.import_module(plugin)
            except ModuleNotFoundError as e:
                raise StrategyError(f"plugins: cannot import {plugin!r} ({e})") from None
        _LOADED.add(plugin)


def _load_builtins() -> None:
    global _BUILTINS_LOADED
    if not _BUILTINS_LOADED:
        _BUILTINS_LOADED = True  # first: a built-in's import may ask the registry again
        for module in BUILTIN.values():
            importlib.import_module(module)
