"""Plotly figures over run data, shared by `pcbench report` (static HTML) and the widgets
(the same figures, edited in place and redrawn). Inputs are frames only, no models."""

from __future__ import annotations

import plotly.graph_objects as go
import polars as pl
from plotly.subplots import make_subplots

from pcbench.strategies import registry

BAND_COLOR = "rgba(46, 160, 67, 0.15)"
FALLBACK_ALLOCATION = {"filtering_stats/trained_prompts": "trained"}  # one declaring none


def allocation_columns(strategy: str) -> dict[str, str]:
    """Ledger column -> label of a strategy's allocation plot (its `Strategy.allocation`)."""
    return registry.get(strategy).allocation or FALLBACK_ALLOCATION


HIST_BINS = 20


def accuracy_figure(
    curves: dict[str, pl.DataFrame], target: float | None = None, x: str = "cumulative/rollouts"
) -> go.Figure:
    """Accuracy vs cumulative training rollouts (or tokens), one line per run, target dashed."""
    fig = go.Figure()
    for name, c in curves.items():
        fig.add_scatter(
            x=c[x].to_list(), y=c["accuracy"].to_list(), mode="lines+markers", name=name
        )
    if target is not None:
        fig.add_hline(y=target, line_dash="dash", annotation_text=f"target {target:.3f}")
    fig.update_layout(
        title="Eval accuracy (mean@k) vs cumulative training " + x.split("/")[1],
        xaxis_title=x, yaxis_title="mean@k", template="plotly_white", height=420,
    )  # fmt: skip
    return fig


def allocation_values(counts: pl.DataFrame | dict, column: str, n: int) -> list[float]:
    """Stackable counts: evict-marked prompts are also too easy, so too easy excludes them."""
    get = (
        (lambda c: counts[c].to_list())
        if isinstance(counts, pl.DataFrame)
        else (lambda c: [counts[c]])
    )
    has = (
        (lambda c: c in counts.columns)
        if isinstance(counts, pl.DataFrame)
        else (lambda c: c in counts)
    )
    if not has(column):
        return [0.0] * n
    values = get(column)
    if column == "filtering_stats/too_easy" and has("filtering_stats/evict_marked"):
        values = [a - b for a, b in zip(values, get("filtering_stats/evict_marked"), strict=True)]
    return values


def allocation_figure(ledger: pl.DataFrame, strategy: str, title: str = "") -> go.Figure:
    """Stacked prompt counts per step: what happened to the prompts the step looked at."""
    fig = go.Figure()
    steps = ledger["step"].to_list() if ledger.height else []
    for column, label in allocation_columns(strategy).items():
        fig.add_bar(x=steps, y=allocation_values(ledger, column, len(steps)), name=label)
    fig.update_layout(
        barmode="stack", title=title or f"Allocation per step ({strategy})", xaxis_title="step",
        yaxis_title="prompts", template="plotly_white", height=380,
    )  # fmt: skip
    return fig


def pilot_histogram_figure() -> go.Figure:
    """Empty two-panel histogram (pilot mean, pilot variance); fill with `show_pilot_scores`."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("pilot pass rate", "pilot reward variance"))
    fig.add_histogram(
        x=[], xbins=dict(start=0, end=1.0001, size=1 / HIST_BINS), name="pass rate", row=1, col=1
    )
    fig.add_histogram(
        x=[], xbins=dict(start=0, end=0.2501, size=0.25 / HIST_BINS), name="variance", row=1, col=2
    )
    fig.add_vrect(x0=0.125, x1=0.75, fillcolor=BAND_COLOR, line_width=0, row=1, col=1)
    fig.update_layout(template="plotly_white", height=340, showlegend=False, bargap=0.05)
    fig.update_xaxes(title_text="mean correctness", row=1, col=1)
    fig.update_xaxes(title_text="var = p(1 - p)", row=1, col=2)
    return fig


def show_pilot_scores(
    fig, scores: pl.DataFrame, keep_min: float, keep_max: float, title: str = ""
) -> None:
    """Put SCORES of one step into the histogram figure and move the keep band, in place.

    Works on any Figure (the live plots call it inside batch_update).
    """
    kept = scores.filter(pl.col("mean").is_between(keep_min, keep_max))
    fig.data[0].x = scores["mean"].to_list()
    fig.data[1].x = scores["var"].to_list()
    fig.layout.shapes[0].x0, fig.layout.shapes[0].x1 = keep_min, keep_max
    share = kept.height / scores.height if scores.height else 0.0
    fig.layout.title = (title + "  " if title else "") + (
        f"{scores.height} prompts, {kept.height} in the keep band "
        f"[{keep_min:.3f}, {keep_max:.3f}] ({share:.0%})"
    )


def pilot_histograms_over_time(scores: pl.DataFrame, keep_min: float, keep_max: float) -> go.Figure:
    """The pilot histograms with a step slider (static HTML: one frame per step)."""
    fig = pilot_histogram_figure()
    steps = sorted(scores["step"].unique().to_list())
    if not steps:
        return fig
    show_pilot_scores(
        fig, scores.filter(pl.col("step") == steps[0]), keep_min, keep_max, f"step {steps[0]}:"
    )
    frames = []
    for step in steps:
        part = scores.filter(pl.col("step") == step)
        kept = part.filter(pl.col("mean").is_between(keep_min, keep_max)).height
        title = f"step {step}: {part.height} prompts, {kept} in the keep band"
        data = [go.Histogram(x=part["mean"].to_list()), go.Histogram(x=part["var"].to_list())]
        frames.append(go.Frame(name=str(step), data=data, layout={"title": {"text": title}}))
    fig.frames = frames
    fig.update_layout(
        sliders=[{
            "currentvalue": {"prefix": "step "},
            "steps": [{"label": str(s), "method": "animate",
                       "args": [[str(s)], {"mode": "immediate", "frame": {"duration": 0, "redraw": True}}]}
                      for s in steps],
        }],
    )  # fmt: skip
    return fig


COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2",
          "#7f7f7f", "#bcbd22", "#17becf")  # fmt: skip


def cost_curves_figure(curves: dict[str, pl.DataFrame], title: str = "") -> go.Figure:
    """Accuracy vs cumulative training rollouts (left) and tokens (right), one line per variant
    (`results.mean_curves`: averaged over seeds)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("vs cumulative training rollouts",
                                                        "vs cumulative training tokens"))  # fmt: skip
    for i, (name, c) in enumerate(curves.items()):
        for col, x in ((1, "cumulative/rollouts"), (2, "cumulative/tokens")):
            fig.add_scatter(
                x=c[x].to_list(), y=c["accuracy"].round(4).to_list(), mode="lines+markers",
                name=name, legendgroup=name, showlegend=col == 1, row=1, col=col,
                line={"color": COLORS[i % len(COLORS)]},
            )  # fmt: skip
    fig.update_layout(title=title, template="plotly_white", height=440, yaxis_title="mean@k")
    return fig


def sweep_figure(runs: pl.DataFrame, x: str = "pilot_fraction",
                 ys: tuple[str, ...] = ("rollouts_to_target", "final_acc")) -> go.Figure:  # fmt: skip
    """`results.measure` rows against one setting (e.g. the pilot fraction): one panel per
    measure, one line per seed; runs without the setting (baselines) are left out."""
    rows = runs.filter(pl.col(x).is_not_null()).sort(x)
    fig = make_subplots(rows=1, cols=len(ys), subplot_titles=[y.replace("_", " ") for y in ys])
    for i, seed in enumerate(sorted(rows["seed"].unique())):
        part = rows.filter(pl.col("seed") == seed)
        for col, y in enumerate(ys, start=1):
            fig.add_scatter(
                x=part[x].to_list(), y=part[y].to_list(), mode="lines+markers",
                name=f"seed {seed}", legendgroup=str(seed), showlegend=col == 1, row=1, col=col,
                line={"color": COLORS[i % len(COLORS)]},
            )  # fmt: skip
    fig.update_xaxes(title_text=x.replace("_", " "))
    fig.update_layout(template="plotly_white", height=380)
    return fig


def bars_figure(frame: pl.DataFrame, x: str, ys: list[str], title: str = "",
                y_title: str = "") -> go.Figure:  # fmt: skip
    """Grouped bars of `ys` per `x` (e.g. commit rollouts per kept prompt, by allocation)."""
    fig = go.Figure()
    for y in ys:
        fig.add_bar(x=frame[x].to_list(), y=frame[y].to_list(), name=y)
    fig.update_layout(barmode="group", template="plotly_white", height=340, title=title,
                      xaxis_title=x, yaxis_title=y_title)  # fmt: skip
    return fig


def regime_map_figure(
    grid: pl.DataFrame, measured: pl.DataFrame | None = None, assumed: list[dict] = (),
    title: str = "Where Pilot-Commit pays",
) -> go.Figure:  # fmt: skip
    """The regime map: the plan's predicted advantage (GRPO's rollouts per informative rollout
    ÷ Pilot-Commit's, `plan.regime_grid`) as a contour over group size and the share of GRPO
    groups that are all-equal, with measured cells on it (`measured`: n, uninformative, ratio,
    lo, hi, label: rollouts-to-target ratios with their intervals) and points placed by
    assumption (`assumed`: dicts of n, uninformative_lo/_hi, ratio, label)."""
    wide = grid.pivot(on="n", index="uninformative", values="advantage").sort("uninformative")
    sizes = [c for c in wide.columns if c != "uninformative"]
    fig = go.Figure(go.Contour(
        x=[int(c) for c in sizes], y=wide["uninformative"].to_list(),
        z=wide.select(sizes).to_numpy(), colorscale="RdBu", zmid=1.0,
        contours={"showlabels": True, "start": 0.5, "end": 2.0, "size": 0.25},
        colorbar={"title": "predicted<br>advantage"}, name="plan",
        hovertemplate="n %{x}, all-equal %{y:.2f}: plan %{z:.2f}x<extra></extra>",
    ))  # fmt: skip
    if measured is not None and measured.height:
        fig.add_scatter(
            x=measured["n"], y=measured["uninformative"], mode="markers+text",
            text=[f"{lab}: {r:.2f}x" for lab, r in zip(measured["label"], measured["ratio"], strict=True)],
            textposition="top center", marker={"size": 12, "color": "black", "symbol": "diamond"},
            customdata=measured.select("lo", "hi").to_numpy(), name="measured (rollouts to target)",
            hovertemplate="%{text} [%{customdata[0]:.2f}, %{customdata[1]:.2f}]<extra></extra>",
        )  # fmt: skip
    for a in assumed:
        mid = (a["uninformative_lo"] + a["uninformative_hi"]) / 2
        half = (a["uninformative_hi"] - a["uninformative_lo"]) / 2
        fig.add_scatter(x=[a["n"]], y=[mid], mode="markers+text", text=[a["label"]],
                        error_y={"type": "constant", "value": half}, textposition="middle right",
                        marker={"size": 10, "symbol": "star", "color": "gold"},
                        name="paper (regime assumed)")  # fmt: skip
    fig.update_xaxes(title_text="group size n", type="log", tickvals=[int(c) for c in sizes])
    fig.update_yaxes(title_text="share of GRPO groups with all-equal rewards", range=[0, 1])
    fig.update_layout(title=title, height=520)
    return fig
