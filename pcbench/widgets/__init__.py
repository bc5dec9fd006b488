"""Jupyter widgets: slider controls, live plotly figures and a dashboard (DESIGN §8)."""

from pcbench.widgets.controls import Controls
from pcbench.widgets.dashboard import Dashboard, preview_counts
from pcbench.widgets.live import AccuracyPlot, AllocationPlot, PilotHistograms

__all__ = [
    "AccuracyPlot",
    "AllocationPlot",
    "Controls",
    "Dashboard",
    "PilotHistograms",
    "preview_counts",
]
