"""Trackers: a run's scalars and pilot histograms in TensorBoard or Weights & Biases.

The parquet logs stay the record (`pcbench.run`); a tracker is a view researchers already have
open. After every logged step, `Run.track` sends each tracker the step's METRICS (update/*,
eval/*) and ledger row (rollout_stats/*, filtering_stats/*, cumulative/*, ...) under their own
slash names, and histograms of the step's pilot pass rates and reward variances
(`pilot/pass_rate`, `pilot/variance`). Backends are extras (`pip install -e '.[tracking]'`):

    [tracking]
    backends = ["tensorboard"]        # and/or "wandb"; `pcbench run --tracker tensorboard`
    dir = ""                          # "" = <run dir>/tracking
    wandb_project = "pcbench"
    wandb_mode = "offline"            # W&B writes locally unless told otherwise (`wandb sync`)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl


def step_payload(
    metrics: dict, ledger_row: dict, scores: pl.DataFrame | None
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """(scalars, histograms) of one logged step (pure): metrics and ledger under their names,
    pilot pass rates and variances of the step's scored prompts (those with a pilot)."""
    scalars = {k: float(v) for k, v in ledger_row.items() if k != "step" and v is not None}
    scalars |= {k: float(v) for k, v in metrics.items()}
    hists = {}
    if scores is not None and scores.height:
        piloted = scores.filter(pl.col("n") > 0)
        hists = {
            "pilot/pass_rate": piloted["mean"].drop_nulls().to_numpy(),
            "pilot/variance": piloted["var"].drop_nulls().to_numpy(),
        }
    return scalars, {k: v for k, v in hists.items() if v.size}


class TensorBoardTracker:
    def __init__(self, logdir: Path):
        try:
            from tensorboardX import SummaryWriter
        except ImportError as e:
            raise ImportError(
                "tracking.backends has 'tensorboard' but tensorboardX is not installed: "
                "pip install -e '.[tracking]' (or pip install tensorboardX)"
            ) from e
        self.writer = SummaryWriter(str(logdir))

    def log(self, step: int, scalars: dict, hists: dict) -> None:
        for name, value in scalars.items():
            self.writer.add_scalar(name, value, step)
        for name, values in hists.items():
            self.writer.add_histogram(name, values, step, bins=np.linspace(0, 1, 21))
        self.writer.flush()  # a crash loses nothing already logged

    def close(self) -> None:
        self.writer.close()


class WandbTracker:
    def __init__(self, logdir: Path, name: str, project: str, mode: str, config: dict):
        try:
            import wandb
        except ImportError as e:
            raise ImportError(
                "tracking.backends has 'wandb' but wandb is not installed: "
                "pip install -e '.[tracking]' (or pip install wandb)"
            ) from e
        self.wandb = wandb
        logdir.mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(project=project, name=name, dir=str(logdir), mode=mode,
                              config=config, resume="allow", id=name)  # fmt: skip

    def log(self, step: int, scalars: dict, hists: dict) -> None:
        data = scalars | {k: self.wandb.Histogram(v) for k, v in hists.items()}
        self.run.log(data, step=step)

    def close(self) -> None:
        self.run.finish()


def open_trackers(cfg, run_path: Path) -> list:
    """The trackers `cfg.tracking` asks for, writing under `tracking.dir` or the run dir."""
    tc = cfg.tracking
    logdir = Path(tc.dir) / cfg.name if tc.dir else Path(run_path) / "tracking"
    out = []
    for backend in tc.backends:
        if backend == "tensorboard":
            out.append(TensorBoardTracker(logdir / "tensorboard"))
        else:
            out.append(WandbTracker(logdir, cfg.name, tc.wandb_project, tc.wandb_mode,
                                    cfg.to_dict()))  # fmt: skip
    return out
