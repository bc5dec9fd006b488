"""Dashboard: controls, live plots and step buttons over a live training state or a run dir.

Buttons run one step at a time (pilot, score, commit, update, evaluate) or N whole training
steps (`loop.train_step`, the same code as `pcbench run`). Moving a threshold or the pilot
fraction re-scores the cached pilot rollouts at once (score is pure): the histogram's band and
the allocation's "preview" bar show what the new settings would keep before anything is
committed. `Dashboard.from_run` shows a finished run the same way, without a model.
"""

from __future__ import annotations

import ipywidgets as W
import polars as pl

from pcbench import steps
from pcbench.analysis import accuracy_curve
from pcbench.config import RunConfig
from pcbench.ledger import CUMULATIVE
from pcbench.widgets.controls import Controls
from pcbench.widgets.live import AccuracyPlot, AllocationPlot, PilotHistograms


class Refused(RuntimeError):
    """A button pressed out of order: nothing was changed, and the message says what to press."""


def preview_counts(pilots: pl.DataFrame, cfg: RunConfig) -> tuple[pl.DataFrame, dict]:
    """SCORES of cached pilots under cfg (first n_pilot samples only) and verdict counts."""
    pilots = pilots.filter(pl.col("sample") < cfg.pilot.n_pilot)
    scores = steps.score(pilots, cfg)
    counts = {
        "filtering_stats/kept": (scores["verdict"] == "keep").sum(),
        "filtering_stats/too_easy": (scores["verdict"] == "too_easy").sum(),
        "filtering_stats/too_hard": (scores["verdict"] == "too_hard").sum(),
        "filtering_stats/evict_marked": scores["evict"].sum(),
    }
    return scores, counts


class Dashboard:
    def __init__(self, state=None, cfg: RunConfig | None = None, *, run=None):
        if cfg is None:
            raise ValueError("Dashboard needs the RunConfig its controls start from")
        self.state, self.run = state, run
        self.controls = Controls(cfg, on_change=self._settings_changed)
        self.histograms = PilotHistograms()
        self.allocation = AllocationPlot(cfg.strategy)
        self.accuracy = AccuracyPlot()
        self.pilots: pl.DataFrame | None = None  # pilot rollouts not scored yet (by hand)
        self.preview: pl.DataFrame | None = None  # the latest pilot rollouts, for re-scoring
        self.fresh, self.stopped = None, {}  # their prompts; sequential pilot's early stops
        self.batch: list[pl.DataFrame] = []  # training groups of the step being built by hand
        self.curves: dict[str, pl.DataFrame] = {}
        self.log = W.Output(layout=W.Layout(max_height="160px", overflow="auto"))
        self.progress = W.IntProgress(value=0, min=0, max=1, description="steps")
        self.n_steps = W.BoundedIntText(
            value=5, min=1, max=1000, description="N", layout=W.Layout(width="150px")
        )
        self.buttons = {
            name: W.Button(description=name)
            for name in ("pilot", "score", "commit", "update", "evaluate", "run N steps")
        }
        for name, button in self.buttons.items():
            button.on_click(lambda _, n=name: self._press(n))
            button.disabled = state is None
        self.status = W.HTML()
        self._actions = {
            "pilot": self.pilot, "score": self.score, "commit": self.commit,
            "update": self.update, "evaluate": self.evaluate,
            "run N steps": lambda: self.run_steps(self.n_steps.value),
        }  # fmt: skip
        self._settings_changed(cfg)

    @property
    def cfg(self) -> RunConfig:
        return self.controls.cfg

    # ---- from a finished run ------------------------------------------------------------
    @classmethod
    def from_run(cls, *paths) -> Dashboard:
        from pcbench.run import Run

        runs = [Run(p) for p in paths]
        board = cls(None, runs[0].config, run=runs[0])
        scores = runs[0].read("scores")
        for step in sorted(scores["step"].unique().to_list()) if scores.height else []:
            board.histograms.set_scores(step, scores.filter(pl.col("step") == step))
        rollouts = runs[0].read("rollouts")
        if rollouts.height:
            last = rollouts.filter(pl.col("phase") == "pilot")
            board.preview = (
                last.filter(pl.col("step") == last["step"].max()) if last.height else None
            )
        board.curves = {r.name: accuracy_curve(r) for r in runs}
        board._settings_changed(board.cfg)
        board.accuracy.update(board.curves)
        board.status.value = f"showing {', '.join(r.name for r in runs)} (no model loaded)"
        return board

    # ---- reactions ------------------------------------------------------------------------
    def _ledger(self) -> pl.DataFrame:
        if self.state is not None:
            return self.state.ledger.frame().filter(pl.col("step") > 0)
        return (
            self.run.ledger().filter(pl.col("step") > 0) if self.run else pl.DataFrame({"step": []})
        )

    def _settings_changed(self, cfg: RunConfig) -> None:
        self.histograms.set_band(cfg.score.keep_min, cfg.score.keep_max)
        preview = None
        if self.preview is not None and self.preview.height:
            scores, preview = preview_counts(self.preview, cfg)
            self.histograms.set_scores("preview", scores)
        self.allocation.update(self._ledger(), preview)

    def show_pilots(self, pilots: pl.DataFrame) -> None:
        """Preview these (already scored) pilot rollouts under the current settings."""
        self.preview = pilots
        self._settings_changed(self.cfg)

    def _press(self, name: str) -> None:
        with self.log:
            try:
                self.status.value = f"running {name} ..."
                self._actions[name]()
                self.status.value = f"{name} done (step {self.state.step})"
            except Refused as e:  # pressed out of order: say what to do, nothing changed
                self.status.value = f"<span style='color:#a60'>{name} refused: {e}</span>"
            except Exception as e:  # shown, not raised into the widget machinery
                self.status.value = f"<span style='color:#b00'>{name} failed: {e}</span>"
                raise

    def _refuse_unless(self, ok: bool = True, why: str = "") -> None:
        """Refused (nothing changed) without a live state, or when `ok` is false."""
        if self.state is None:
            raise Refused("no live state: this dashboard shows a run directory")
        if not ok:
            raise Refused(why)

    def _in_progress(self) -> str:
        """What a hand-built step has done so far that another action would lose ('' if none)."""
        if self.pilots is not None:
            return f"{self.fresh.height} prompts piloted but not scored: press score"
        if self.batch:
            return f"{len(self.batch)} prompts committed but not trained: press update"
        return ""

    # ---- the steps, by hand -------------------------------------------------------------------
    def pilot(self) -> pl.DataFrame:
        self._refuse_unless(self.pilots is None, f"{self._in_progress()} first (its rollouts "
                            "are counted; piloting again would discard them)")  # fmt: skip
        s, cfg, step = self.state, self.cfg, self.state.step + 1
        fresh = s.stream.next_pool(cfg.pool_prompts)
        if fresh is None:
            from pcbench.loop import end_epoch

            end_epoch(s, cfg, step)
            fresh = s.stream.next_pool(cfg.pool_prompts)
        self.fresh, self.stopped = fresh, {}
        if cfg.pilot.sequential:  # the same stages as the training loop, one engine call each
            from pcbench.steps.pilot import pilot_stages, stage_priors

            first = steps.generate(
                s.engine, s.verifier,
                steps.requests(fresh["prompt_id"], cfg.pilot.stages[0], "pilot").filter(pl.col("n") > 0),
                s.prompts, cfg.sampling, step=step, seed=steps.call_seed(cfg.seed, step, 1),
            )  # fmt: skip
            self.pilots, self.stopped, _ = pilot_stages(
                s.engine, s.verifier, fresh, first, s.prompts, cfg,
                stage_priors(fresh, cfg, s.prior), step,
            )  # fmt: skip
        else:
            self.pilots = steps.pilot(s.engine, s.verifier, fresh, cfg, step)
        s.ledger.count_rollouts(step, self.pilots)
        self.preview = self.pilots
        self._settings_changed(cfg)
        return self.pilots

    def score(self) -> pl.DataFrame:
        self._refuse_unless(self.pilots is not None, "no unscored pilots: press pilot first")
        s, step = self.state, self.state.step + 1
        scores = steps.score(self.pilots, self.cfg)
        if self.stopped:
            from pcbench.steps.pilot import apply_stops

            scores = apply_stops(scores, self.stopped, self.fresh["prompt_id"].to_list(), step)
        if self.cfg.pilot.sequential:
            from pcbench.loop import observe_prior

            observe_prior(s, self.cfg, self.fresh, scores)
        s.buffer.add(scores, self.pilots, step)
        for verdict, name in (("keep", "kept"), ("too_easy", "too_easy"), ("too_hard", "too_hard")):
            s.ledger.add(step, f"filtering_stats/{name}", (scores["verdict"] == verdict).sum())
        s.ledger.add(step, "filtering_stats/evict_marked", scores["evict"].sum())
        self.histograms.set_scores(step, scores)
        self.pilots = None
        self._settings_changed(self.cfg)
        return scores

    def commit(self) -> pl.DataFrame:
        self._refuse_unless(len(self.batch) < self.cfg.batch_prompts,
                            f"the batch holds {len(self.batch)} prompts already: press update")  # fmt: skip
        self._refuse_unless(self.state is not None and len(self.state.buffer) > 0,
                            "the buffer is empty: pilot and score prompts first")  # fmt: skip
        s, cfg, step = self.state, self.cfg, self.state.step + 1
        taken = s.buffer.take(cfg.batch_prompts - len(self.batch), cfg.commit.order)
        commits = steps.commit(
            s.engine, s.verifier, steps.plan(taken, cfg, step), s.prompts, cfg, step
        )
        s.ledger.count_rollouts(step, commits)
        self.batch += [steps.training_group(e, commits, cfg.commit.n_reuse) for e in taken]
        return commits

    def update(self) -> dict:
        from pcbench.loop import train_on

        self._refuse_unless(bool(self.batch), "nothing committed yet: press commit first")
        s, step = self.state, self.state.step + 1
        metrics = train_on(s, self.cfg, step, pl.concat(self.batch, how="diagonal_relaxed"))
        s.ledger.add(step, "buffer_stats/stale_drop", len(s.buffer.drop_stale(step)))
        s.step, self.batch = step, []
        self.allocation.update(self._ledger())
        return metrics

    def evaluate(self) -> pl.DataFrame:
        from pcbench.loop import evaluate_step

        self._refuse_unless()
        evals, _ = evaluate_step(self.state, self.cfg, self.state.step)
        self._add_eval(evals)
        return evals

    def _add_eval(self, evals: pl.DataFrame) -> None:
        name = self.cfg.name
        totals = self.state.ledger.frame().row(-1, named=True)  # one frame build, not two
        point = pl.DataFrame({"step": [self.state.step], "accuracy": [evals["mean@k"].mean()],
                              "pass@k": [evals["pass@k"].mean()]}
                             | {c: [totals[c]] for c in CUMULATIVE})  # fmt: skip
        old = self.curves.get(name)
        self.curves[name] = (
            point
            if old is None
            else pl.concat([old, point]).unique("step", keep="last").sort("step")
        )
        self.accuracy.update(self.curves)

    def run_steps(self, n: int) -> None:
        """N complete training steps with the current settings (the `pcbench run` code path)."""
        from dataclasses import replace

        from pcbench.loop import train_step

        self._refuse_unless(not self._in_progress(), f"{self._in_progress()} first: whole "
                            "steps start from a clean round")  # fmt: skip
        cfg = replace(self.cfg, steps=self.state.step + n)
        self.progress.max, self.progress.value = n, 0
        for _ in range(n):
            _, frames = train_step(self.state, cfg, self.run)
            if "scores" in frames:
                self.histograms.set_scores(self.state.step, frames["scores"])
            if "rollouts" in frames:  # preview only: the loop has scored these already
                self.preview = frames["rollouts"].filter(pl.col("phase") == "pilot")
            if "evals" in frames:
                self._add_eval(frames["evals"])
            self._settings_changed(self.cfg)
            self.progress.value += 1

    # ---- layout -------------------------------------------------------------------------------
    @property
    def widget(self) -> W.Widget:
        buttons = W.HBox([*self.buttons.values(), self.n_steps, self.progress])
        plots = W.VBox([self.histograms.widget, self.allocation.output, self.accuracy.output])
        return W.VBox([W.HBox([self.controls.widget]), buttons, self.status, plots, self.log])

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)
