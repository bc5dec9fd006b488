"""Live plots: plotly figures kept in Python, edited in place and redrawn in an Output widget."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import ipywidgets as W
import plotly.graph_objects as go
import plotly.io as pio
import polars as pl

from pcbench.plots import (
    accuracy_figure,
    allocation_columns,
    allocation_figure,
    allocation_values,
    pilot_histogram_figure,
    show_pilot_scores,
)

PREVIEW = "next (preview)"


class LivePlot:
    """A plotly figure edited in place in Python and redrawn whole in an `ipywidgets.Output`.

    DESIGN §8 names plotly FigureWidgets. We moved off them (tests/test_browser.py): plotly 7's
    FigureWidget is an anywidget that loads a 5 MB module per figure, and with the kernel busy
    right after the dashboard is shown ("run all" on 2 cores) the browser drew 1 to 3 of the
    figures with no traces and no title in about 1 run of 3, whatever Python had sent (re-syncing
    the widget's full state after each edit did not help). The Output widget carries the figure's
    plotly mimebundle, which JupyterLab's plotly extension (loaded once) draws; a redraw sends the
    whole figure, ~8 KB for these (most of it the template).
    """

    def __init__(self, figure: go.Figure):
        self.figure = figure
        self.output = W.Output()
        self.draw()

    @contextmanager
    def updating(self) -> Iterator[None]:
        with self.figure.batch_update():
            yield
        self.draw()

    def draw(self) -> None:
        bundle = pio.renderers["plotly_mimetype"].to_mimebundle(self.figure.to_dict())
        self.output.outputs = ({"output_type": "display_data", "data": bundle, "metadata": {}},)


class PilotHistograms(LivePlot):
    """Pilot pass-rate and variance histograms with the keep band, and a step scrubber."""

    def __init__(self):
        super().__init__(pilot_histogram_figure())
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
        with self.updating():
            show_pilot_scores(self.figure, self.scores[key], *self.band, title=f"step {key}:")

    @property
    def widget(self) -> W.Widget:
        return W.VBox([self.scrubber, self.output])


class AllocationPlot(LivePlot):
    """Stacked per-step prompt counts; an extra 'preview' bar shows what the sliders would do."""

    def __init__(self, strategy: str = "pilot_commit"):
        self.strategy = strategy
        super().__init__(allocation_figure(pl.DataFrame({"step": []}), strategy))

    def update(self, ledger: pl.DataFrame, preview: dict[str, float] | None = None) -> None:
        steps = [str(s) for s in ledger["step"].to_list()] if ledger.height else []
        with self.updating():
            for trace, column in zip(
                self.figure.data, allocation_columns(self.strategy), strict=True
            ):
                x, y = list(steps), allocation_values(ledger, column, len(steps))
                if preview is not None:
                    x.append(PREVIEW)
                    y += allocation_values(preview, column, 1) if column in preview else [0]
                trace.x, trace.y = x, y
            self.figure.layout.xaxis.type = "category"


def axis_ranges(curves: dict[str, pl.DataFrame]) -> tuple[list[float], list[float] | None]:
    """Accuracy on [0, 1] with a margin; cumulative rollouts from 0 to a little past the last
    point, so one or two evaluations do not autoscale into a sliver (None: no points yet)."""
    xs = [x for c in curves.values() for x in c["cumulative/rollouts"].drop_nulls().to_list()]
    return [-0.02, 1.02], ([0.0, max(xs) * 1.05 if max(xs) > 0 else 1.0] if xs else None)


class AccuracyPlot(LivePlot):
    """Eval accuracy vs cumulative rollouts for any number of runs; one trace per run name."""

    def __init__(self):
        super().__init__(accuracy_figure({}))

    def update(self, curves: dict[str, pl.DataFrame], target: float | None = None) -> None:
        with self.updating():
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
            self.figure.layout.yaxis.range, self.figure.layout.xaxis.range = axis_ranges(curves)
