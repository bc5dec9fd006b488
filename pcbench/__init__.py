"""pcbench: budget-aware rollout allocation (Pilot-Commit) for group-based RL post-training.

The public names, each loaded on first use (importing pcbench stays light):

    load_config, RunConfig          a run's config (pcbench.config)
    setup_state, State              what a run mutates, built from a config (pcbench.state)
    train, train_step               the loop (pcbench.loop)
    open_run, Run                   run directories: logs, checkpoints, resume (pcbench.run)
    measure                         the comparison of runs (pcbench.results)
    format_table                    it as text (pcbench.tables)
    strategies                      the Strategy protocol and registry (pcbench.strategies)
"""

__version__ = "0.1.0"

PUBLIC = {
    "load_config": "pcbench.config",
    "RunConfig": "pcbench.config",
    "setup_state": "pcbench.state",
    "State": "pcbench.state",
    "train": "pcbench.loop",
    "train_step": "pcbench.loop",
    "open_run": "pcbench.run",
    "Run": "pcbench.run",
    "measure": "pcbench.results",
    "format_table": "pcbench.tables",
}
__all__ = [*PUBLIC, "strategies"]


def __getattr__(name: str):
    import importlib

    if name in PUBLIC:
        return getattr(importlib.import_module(PUBLIC[name]), name)
    if name == "strategies":
        return importlib.import_module("pcbench.strategies")
    raise AttributeError(f"module 'pcbench' has no attribute {name!r}")
