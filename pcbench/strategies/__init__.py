"""Allocation strategies: one protocol (`Strategy`), one registry, one module per strategy.

    from pcbench import strategies

    @strategies.register("screen")
    class Screen(strategies.Strategy):
        ...

    strategies.names()            # ('pilot_commit', 'grpo', 'dapo', 'greso', 'mopps', 'knapsack', ...)
    strategies.get("grpo")        # the registered instance

The built-in strategies (pilot_commit, grpo, dapo, greso, mopps, knapsack: one module each
here) load on first use of the registry, so importing this package is light. The protocol,
and what a strategy must declare, are in `pcbench.strategies.registry` and docs/method.md,
"Writing a strategy".
"""

from pcbench.strategies.registry import (
    Strategy,
    StrategyError,
    get,
    load_plugins,
    names,
    register,
)

__all__ = ["Strategy", "StrategyError", "get", "load_plugins", "names", "register"]
