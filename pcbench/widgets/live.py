"""Live plots: plotly FigureWidgets created once and updated in place with batch_update."""

from __future__ import annotations

import ipywidgets as W
import plotly.graph_objects as go
import polars as pl

from pcbench.plots import (
    ALLOCATION,
    accuracy_figure,
    allocation_figure,
    allocation_values,
    pilot_histogram_figure,
    show_pilot_scores,
)

PREVIEW = "next (preview)"


class PilotHistograms:
    """Pilot pass-rate and variance histograms with the keep band, and a step scrubber."""

    def __init__(self):
        self.figure = go.FigureWidget(pilot_histogram_figure())
        self.scores: dict[int | str, pl.DataFrame] = {}  # step (or "preview") -> SCORES
        self.band = (0.125, 0.75)
        self.scrubber = W.SelectionSlider(options=["-"], description="step", continuous_update=True)
        self.scrubber.observe(lambda _: self.redraw(), names="value")

    def set_scores(self, key, scores: pl.DataFrame, show: bool = True) -> None:
        self.scores[key] = scores
        options = sorted(k for k in self.scores if isinstance(k, int))
        options += [k for k in self.scores if not isinstance(k, int)]
        self.scrubber.options = options
        if show:
            self.scrubber.value = key
        self.redraw()

    def set_band(self, keep_min: float, keep_max: float) -> None:
        self.band = (keep_min, keep_max)
        self.redraw()

    def redraw(self) -> None:
        key = self.scrubber.value
        if key not in self.scores:
            return
        with self.figure.batch_update():
            show_pilot_scores(self.figure, self.scores[key], *self.band, title=f"step {key}:")

    @property
    def widget(self) -> W.Widget:
        return W.VBox([self.scrubber, self.figure])


class AllocationPlot:
    """Stacked per-step prompt counts; an extra 'preview' bar shows what the sliders would do."""

    def __init__(self, strategy: str = "pilot_commit"):
        self.strategy = strategy
        self.figure = go.FigureWidget(allocation_figure(pl.DataFrame({"step": []}), strategy))

    def update(self, ledger: pl.DataFrame, preview: dict[str, float] | None = None) -> None:
        steps = [str(s) for s in ledger["step"].to_list()] if ledger.height else []
        with self.figure.batch_update():
            for trace, column in zip(self.figure.data, ALLOCATION[self.strategy], strict=True):
                x, y = list(steps), allocation_values(ledger, column, len(steps))
                if preview is not None:
                    x.append(PREVIEW)
                    y += allocation_values(preview, column, 1) if column in preview else [0]
                trace.x, trace.y = x, y
            self.figure.layout.xaxis.type = "category"


class AccuracyPlot:
    """Eval accuracy vs cumulative rollouts for any number of runs; one trace per run name."""

    def __init__(self):
        self.figure = go.FigureWidget(accuracy_figure({}))

    def update(self, curves: dict[str, pl.DataFrame], target: float | None = None) -> None:
        with self.figure.batch_update():
            names = [t.name for t in self.figure.data]
            for name, c in curves.items():
                x, y = c["cumulative/rollouts"].to_list(), c["accuracy"].to_list()
                if name in names:
                    trace = self.figure.data[names.index(name)]
                    trace.x, trace.y = x, y
                else:
                    self.figure.add_scatter(x=x, y=y, mode="lines+markers", name=name)
            if target is not None:
                self.figure.layout.shapes = []
                self.figure.add_hline(y=target, line_dash="dash")
