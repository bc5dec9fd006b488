"""`pcbench report`: one HTML file comparing runs (plotly.js from its CDN; `offline=True`
inlines it once, 4.8 MB, for a file that opens without a network)."""

from __future__ import annotations

import html
from pathlib import Path

import polars as pl

from pcbench.analysis import INTERPOLATED, Crossing, accuracy_curve
from pcbench.plots import accuracy_figure, allocation_figure, pilot_histograms_over_time
from pcbench.results import measure
from pcbench.run import Run
from pcbench.tables import cell_text, readable, targets_stated

STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;font-size:.9em}td,th{border:1px solid #ccc;padding:.3em .6em;
text-align:right}th{background:#f4f4f4}h2{margin-top:2em}"""


def _table_html(table: pl.DataFrame) -> str:
    """`measure` rows as `pcbench compare` shows them (tables.readable, tables.cell_text)."""
    shown = readable(table)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in shown.columns)
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(cell_text(v, c))}</td>"
            for v, c in zip(row, shown.columns, strict=True)
        )
        + "</tr>"
        for row in shown.iter_rows()
    )
    return f"<table><tr>{head}</tr>{rows}</table>"


def write_report(
    run_dirs: list[str | Path],
    out: str | Path,
    *,
    target: float | None = None,
    crossing: Crossing = INTERPOLATED,
    offline: bool = False,
) -> Path:
    """Accuracy vs cumulative rollouts and tokens, the compare table, allocation per step and
    pilot histograms over time for every run; returns the written path."""
    runs = [Run(p) for p in run_dirs]
    table = measure(runs, target=target, crossing=crossing)
    targets = table["target"].drop_nulls().unique(maintain_order=True).to_list()
    target = targets[0] if len(targets) == 1 else None  # one dashed line only if one target
    curves = {r.name: accuracy_curve(r, smooth=crossing.smooth) for r in runs}
    figures = [
        ("Accuracy vs cumulative rollouts", accuracy_figure(curves, target)),
        ("Accuracy vs cumulative tokens", accuracy_figure(curves, target, x="cumulative/tokens")),
    ]
    for r in runs:
        cfg = r.config
        figures.append(
            (f"{r.name}: allocation per step", allocation_figure(r.ledger(), cfg.strategy))
        )
        scores = r.read("scores")
        if cfg.strategy == "pilot_commit" and scores.height:
            hist = pilot_histograms_over_time(scores, cfg.score.keep_min, cfg.score.keep_max)
            figures.append((f"{r.name}: pilot pass rates and variances over time", hist))
    parts, js = [], (True if offline else "cdn")
    for title, fig in figures:
        parts.append(
            f"<h2>{html.escape(title)}</h2>" + fig.to_html(full_html=False, include_plotlyjs=js)
        )
        js = False  # plotly.js once
    body = (
        f"<h1>pcbench report</h1><p>Runs: {', '.join(html.escape(r.name) for r in runs)}. Target "
        f"accuracy: {html.escape(targets_stated(table))}; "
        f"crossings read on {html.escape(crossing.describe())}. Rollouts to target: cumulative "
        "training rollouts where the run reaches the target; ratios x_vs_* are the baseline's rollouts to "
        "target ÷ this run's, per seed (&gt; 1: cheaper).</p>" + _table_html(table) + "".join(parts)
    )
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>pcbench report</title><style>{STYLE}</style></head><body>{body}</body></html>"
    )
    return path
