"""Controls: sliders for the pilot fraction and the score thresholds, and switches for
pcbench's allocation options (sequential pilot with its delta, value-per-cost commit with its
budget unit), bound to the next step's config. An invalid combination (keep_min > keep_max, evict_at <= keep_max, ...) is refused:
the slider snaps back and the config's own error message is shown; nothing else changes."""

from __future__ import annotations

from dataclasses import replace

import ipywidgets as W

from pcbench.config import ConfigError, RunConfig


def _slider(description, value, lo, hi, step, fmt=".3f"):
    return W.FloatSlider(
        value=value, min=lo, max=hi, step=step, description=description, readout_format=fmt,
        continuous_update=False, style={"description_width": "110px"},
        layout=W.Layout(width="420px"),
    )  # fmt: skip


class Controls:
    def __init__(self, cfg: RunConfig, on_change=None):
        n = cfg.group_size
        self.cfg, self.on_change = cfg, on_change
        self.pilot_fraction = _slider(
            "pilot fraction", cfg.pilot_fraction, 1 / n, (n - 1) / n, 1 / n
        )
        self.keep_min = _slider("keep_min", cfg.score.keep_min, 0.0, 1.0, 1 / 64)
        self.keep_max = _slider("keep_max", cfg.score.keep_max, 0.0, 1.0, 1 / 64)
        self.evict_at = _slider("evict_at", min(cfg.score.evict_at, 1.01), 0.0, 1.01, 0.01, ".2f")
        self.max_staleness = W.IntSlider(
            value=cfg.commit.max_staleness, min=0, max=16, description="max_staleness",
            continuous_update=False, style={"description_width": "110px"},
        )  # fmt: skip
        p, c = cfg.pilot, cfg.commit
        self._stages = p.stages or (0, max(1, p.n_pilot // 2))  # what "sequential" switches on
        self.sequential = W.Checkbox(value=p.sequential, description="sequential pilot",
                                     style={"description_width": "110px"})  # fmt: skip
        self.delta = _slider("delta", p.delta, 0.01, 0.49, 0.01, ".2f")
        self.allocation = W.ToggleButtons(options=["uniform", "value_per_cost"],
                                          value=c.allocation, description="commit")  # fmt: skip
        self.budget = W.ToggleButtons(options=["rollouts", "tokens"], value=c.budget,
                                      description="budget in")  # fmt: skip
        self.summary = W.HTML()
        self.message = W.HTML()
        self._reverting = False
        for w in self.sliders:
            w.observe(self._changed, names="value")
        self._show_summary()

    @property
    def sliders(self):
        return [
            self.pilot_fraction,
            self.keep_min,
            self.keep_max,
            self.evict_at,
            self.max_staleness,
            self.sequential,
            self.delta,
            self.allocation,
            self.budget,
        ]

    def config_from_sliders(self) -> RunConfig:
        """The config the sliders describe; ConfigError if the combination is invalid."""
        cfg = self.cfg.with_pilot_fraction(self.pilot_fraction.value, self.cfg.group_size)
        score = replace(
            cfg.score, keep_min=self.keep_min.value, keep_max=self.keep_max.value,
            evict_at=self.evict_at.value,
        )  # fmt: skip
        commit = replace(
            cfg.commit, max_staleness=self.max_staleness.value,
            allocation=self.allocation.value, budget=self.budget.value,
        )  # fmt: skip
        stages = (
            tuple(x for x in self._stages if x < cfg.pilot.n_pilot) if self.sequential.value else ()
        )
        pilot = replace(cfg.pilot, stages=stages, delta=self.delta.value)
        return replace(cfg, score=score, commit=commit, pilot=pilot)

    def _changed(self, change):
        if self._reverting:
            return
        try:
            new = self.config_from_sliders()
        except ConfigError as e:
            self._reverting = True  # snap the moved slider back; the config stays as it was
            change["owner"].value = change["old"]
            self._reverting = False
            self.message.value = f"<span style='color:#b00'>refused: {e}</span>"
            return
        self.cfg = new
        self.message.value = ""
        self._show_summary()
        if self.on_change is not None:
            self.on_change(new)

    def _show_summary(self):
        c = self.cfg
        self.summary.value = (
            f"n_pilot = <b>{c.pilot.n_pilot}</b>, n_commit = <b>{c.commit.n_commit}</b> "
            f"(group {c.group_size}); keep band [{c.score.keep_min:.3f}, {c.score.keep_max:.3f}], "
            f"evict at {c.score.evict_at:.2f}<br>pilot stages "
            f"{' → '.join(map(str, (*c.pilot.stages, c.pilot.n_pilot)))}"
            + (f" (stop at confidence {1 - c.pilot.delta:.2f})" if c.pilot.sequential else "")
            + f"; commit {c.commit.allocation}"
            + (
                f" ({c.commit.budget} budget, {c.commit.min_commit}–{c.commit.max_commit} each)"
                if c.commit.allocation != "uniform"
                else ""
            )  # fmt: skip
        )

    @property
    def widget(self) -> W.Widget:
        return W.VBox([*self.sliders, self.summary, self.message])

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)
