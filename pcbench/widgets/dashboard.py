"""Dashboard: controls, live plots and step buttons over a live training state or a run dir.

Buttons run one step at a time (pilot, score, commit, update, evaluate) or N whole training
steps (`loop.train_step`, the same code as `pcbench run`). Any strategy's state can be shown and
trained (`run N steps`, its own allocation plot); the stage buttons are Pilot-Commit's. Moving a threshold or the pilot
fraction re-scores the cached pilot rollouts at once (score is pure): the histogram's band and
the allocation's "preview" bar show what the new settings would keep before anything is
committed. Beside the histogram, the plan's prediction for the current settings (rollouts and
rounds a step, rollouts per informative rollout, against GRPO's at the same group size), from a
pass-rate profile: the one given (`profile=`), else the run's own groups so far.
`Dashboard.from_run` shows a finished run the same way, without a model.
"""

from __future__ import annotations

import ipywidgets as W
import polars as pl

from pcbench import atomic, steps
from pcbench.accounting import verdict_counts
from pcbench.analysis import accuracy_curve
from pcbench.config import RunConfig
from pcbench.ledger import CUMULATIVE
from pcbench.strategies import registry
from pcbench.widgets.controls import Controls
from pcbench.widgets.live import AccuracyPlot, AllocationPlot, PilotHistograms

HAND_STAGES = ("pilot", "score", "commit", "update")  # Pilot-Commit's round stages, by hand


class Refused(RuntimeError):
    """A button pressed out of order: nothing was changed, and the message says what to press."""


def preview_counts(pilots: pl.DataFrame, cfg: RunConfig) -> tuple[pl.DataFrame, dict]:
    """SCORES of cached pilots under cfg (first n_pilot samples only) and their verdict counts,
    counted as the loop's rounds count them (`pcbench.accounting`)."""
    scores = steps.score(pilots.filter(pl.col("sample") < cfg.pilot.n_pilot), cfg)
    return scores, verdict_counts(scores)


class Dashboard:
    def __init__(self, state=None, cfg: RunConfig | None = None, *, run=None, profile=None):
        if cfg is None:
            raise ValueError("Dashboard needs the RunConfig its controls start from")
        self.state, self.run = state, run
        self.profile = profile  # a pcbench.profile.PassRateProfile (None: the run's own groups)
        self.plan_view = W.HTML()
        self._fit: tuple = (object(), None)  # (step it was fitted at, mixture): refit per step
        self.controls = Controls(cfg, on_change=self._settings_changed)
        self.histograms = PilotHistograms()
        self.allocation = AllocationPlot(cfg.strategy)
        self.accuracy = AccuracyPlot()
        self.round = None  # the round being stepped by hand (pcbench.rounds.PCRound)
        self.rounds: list = []  # finished rounds of the step being built by hand
        self.commit_fresh = False  # hand option: commit this round's own survivors (rounds.py)
        self.last_frames: dict[str, pl.DataFrame] = {}  # the last hand-built step's frames
        self.preview: pl.DataFrame | None = None  # the latest pilot rollouts, for re-scoring
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

    def _mixture(self):
        """The pass-rate distribution the plan reads: the given profile's, else one fitted to
        the run's own unselected groups (None before any)."""
        if self.profile is not None:
            return self.profile.mixture
        if self.run is None:
            return None
        from pcbench.profile import profile_run

        steps = self.state.step if self.state is not None else None
        if self._fit[0] != steps:  # a slider move reuses the step's fit
            try:
                self._fit = (steps, profile_run(self.run).mixture)
            except ValueError:  # no groups yet
                self._fit = (steps, None)
        return self._fit[1]

    def plan_text(self, cfg: RunConfig) -> str:
        """The plan's prediction for `cfg` (and GRPO at its group size) as HTML."""
        from dataclasses import replace

        from pcbench.plan import predict

        mixture = self._mixture()
        if mixture is None:
            return "<b>plan</b>: no profile yet (pass profile=, or train a step)"
        p = predict(cfg, mixture, steps=1000)
        g = predict(replace(cfg, strategy="grpo"), mixture)
        if p.rollouts_per_step is None:
            return f"<b>plan</b> ({p.setting}): {p.caveats[-1]}"
        keep = "" if p.keep_share is None else f", keep {p.keep_share:.1%}"
        return (f"<b>plan</b> ({p.setting}): {p.rollouts_per_step:,.0f} rollouts and "
                f"{p.rounds_per_step:.2f} rounds a step, {p.per_informative:.2f} per informative "
                f"rollout{keep}; GRPO at n {cfg.group_size}: {g.per_informative:.2f} "
                f"(advantage {g.per_informative / p.per_informative:.2f}x)")  # fmt: skip

    def _settings_changed(self, cfg: RunConfig) -> None:
        self.histograms.set_band(cfg.score.keep_min, cfg.score.keep_max)
        self.plan_view.value = self.plan_text(cfg)
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
        """Run one button's action. Every action that changes the state is all or nothing
        (`pcbench.atomic`): if it raises -- an error, or the kernel's interrupt -- the state is
        as before the press (or, past an update, the step stands and its completion is owed)
        and the status line says which; the error is shown in the log below, not lost."""
        with self.log:
            try:
                self.status.value = f"running {name} ..."
                self._refuse_unless(
                    name not in HAND_STAGES or registry.get(self.cfg.strategy).hand_stages,
                    f"{name} is a stage of Pilot-Commit's step; this state trains "
                    f"strategy = {self.cfg.strategy!r}, whose step runs whole: press "
                    "'run N steps' (the loop's step, as `pcbench run`)",
                )
                self._actions[name]()
                self.status.value = f"{name} done (step {self.state.step})"
            except Refused as e:  # pressed out of order: say what to do, nothing changed
                self.status.value = f"<span style='color:#a60'>{name} refused: {e}</span>"
            except BaseException as e:  # shown, then raised into the log output
                notes = " ".join(getattr(e, "__notes__", []))
                self.status.value = (
                    f"<span style='color:#b00'>{name} failed: {type(e).__name__}: {e}</span>"
                    + (f"<br>{notes}" if notes else "")
                )
                raise

    def _owed(self) -> None:
        """Complete a step an interruption cut short after its update, before anything else."""
        from pcbench.loop import finish_unfinished

        if self.state is not None and self.state.unfinished is not None:
            done = finish_unfinished(self.state, self.cfg, self.run)
            if done is not None and "evals" in done[1]:
                self._add_eval(done[1]["evals"])

    def _refuse_unless(self, ok: bool = True, why: str = "") -> None:
        """Refused (nothing changed) without a live state, or when `ok` is false."""
        if self.state is None:
            raise Refused("no live state: this dashboard shows a run directory")
        if not ok:
            raise Refused(why)

    def _in_progress(self) -> str:
        """What a hand-built step has done so far that another action would lose ('' if none)."""
        r = self.round
        if r is not None and r.stage == "generated":
            return f"{len(r.fresh)} prompts piloted but not scored: press score"
        if r is not None and r.stage == "classified":
            return f"round {r.round} scored but not committed: press commit"
        if self.rounds:
            return f"{self._in_batch()} prompts committed but not trained: press update"
        return ""

    def _in_batch(self) -> int:
        return sum(len(r.taken) for r in self.rounds)

    # ---- the steps, by hand: the loop's round stages (pcbench.rounds), one press each ---------
    def pilot(self) -> pl.DataFrame:
        """Begin a round and generate it: this round's pilots and, in the same engine call, the
        commits of prompts earlier rounds buffered (the official order; `commit_fresh` commits
        this round's own survivors instead, at commit)."""
        from pcbench import rounds
        from pcbench.loop import end_epoch

        r = self.round
        self._refuse_unless(r is None or r.stage == "finished", f"{self._in_progress()} first "
                            "(its rollouts are counted; piloting again would discard them)")  # fmt: skip
        self._owed()
        s, cfg, step = self.state, self.cfg, self.state.step + 1
        need = cfg.batch_prompts - self._in_batch()
        self._refuse_unless(need > 0, f"the batch holds {cfg.batch_prompts} prompts: press update")
        self._refuse_unless(len(self.rounds) < cfg.max_rounds, f"{cfg.max_rounds} rounds (max_rounds) "
                            "did not fill the batch: press update (on_max_rounds decides)")  # fmt: skip
        kept, note = self.rounds, ""
        with atomic.all_or_nothing(s, step, "pilot of step"):
            r = rounds.begin(s, cfg, step, len(kept) + 1, need, commit_fresh=self.commit_fresh)
            if r is None:  # as train_step: the partial batch is discarded, a fresh epoch starts
                note = f"the epoch ran out: {self._in_batch()} committed prompts discarded"
                kept = []
                end_epoch(s, cfg, step)
                r = rounds.begin(s, cfg, step, 1, cfg.batch_prompts, commit_fresh=self.commit_fresh)
                self._refuse_unless(
                    r is not None, "a fresh epoch holds no pool: see EpochTooSmallError"
                )
            rounds.generate_rollouts(s, cfg, r)
        self.rounds, self.round = kept, r
        if note:
            self.status.value = note
        self.preview = r.pilot_rollouts
        self._settings_changed(cfg)
        return r.pilot_rollouts

    def score(self) -> pl.DataFrame:
        from pcbench import rounds

        r = self.round
        self._refuse_unless(r is not None and r.stage == "generated",
                            "no unscored pilots: press pilot first")  # fmt: skip
        with atomic.all_or_nothing(self.state, r.step, "score of step"):
            scores = rounds.classify(self.state, self.cfg, r)
        self.histograms.set_scores(r.step, scores)
        self._settings_changed(self.cfg)
        return scores

    def commit(self) -> pl.DataFrame:
        """Finish the round: the committed prompts' training groups join the batch (their
        rollouts came with the pilot call; with `commit_fresh`, they are generated now)."""
        from pcbench import rounds

        r = self.round
        self._refuse_unless(r is not None and r.stage == "classified",
                            "nothing scored to commit: press pilot, then score")  # fmt: skip
        with atomic.all_or_nothing(self.state, r.step, "commit of step"):
            rounds.finish(self.state, self.cfg, r)
        self.rounds.append(r)
        return r.commit_rollouts

    def update(self) -> dict:
        """Train on the batch and complete the step as `train_step` does (evaluation when due,
        logging and checkpoints with a run): the same code from here on."""
        import time

        from pcbench.loop import complete_step
        from pcbench.steps.batch import max_rounds_reached
        from pcbench.strategies.pilot_commit import close_batch, train_batch

        cfg, s = self.cfg, self.state
        self._owed()
        self._refuse_unless(not (self.round and self.round.stage != "finished"),
                            f"{self._in_progress()} first")  # fmt: skip
        in_batch = self._in_batch()
        self._refuse_unless(in_batch >= cfg.batch_prompts or len(self.rounds) >= cfg.max_rounds,
                            f"the batch holds {in_batch} of {cfg.batch_prompts} prompts: pilot, "
                            "score and commit another round")  # fmt: skip
        step = s.step + 1
        try:
            with atomic.all_or_nothing(s, step, "update of step"):
                if in_batch < cfg.batch_prompts:
                    max_rounds_reached(s, cfg, step, in_batch)  # raises, or logs the partial batch
                metrics = train_batch(s, cfg, step, close_batch(s, step, self.rounds))
        finally:
            if s.step >= step or s.unfinished is not None:  # the update applied: rounds spent
                self.rounds, self.round = [], None
        # time/step counts the stages' own seconds, not the pauses between presses: a virtual
        # start that many seconds ago (complete_step adds the evaluation on top).
        row = s.ledger.rows.get(step, {})
        spent = sum(row.get(f"time/{k}", 0.0) for k in ("generate", "score", "update", "sync"))
        s.unfinished.start = time.perf_counter() - spent
        metrics, frames = complete_step(s, cfg, step, metrics, self.run, s.unfinished.start)
        self.rounds, self.round, self.last_frames = [], None, frames
        if "evals" in frames:
            self._add_eval(frames["evals"])
        self.allocation.update(self._ledger())
        return metrics

    def evaluate(self) -> pl.DataFrame:
        from pcbench.loop import evaluate_step

        self._refuse_unless()
        self._owed()  # evaluation changes no state: an interrupted one is simply pressed again
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
        plots = W.VBox([W.HBox([self.histograms.widget, self.plan_view]), self.allocation.output,
                        self.accuracy.output])  # fmt: skip
        return W.VBox([W.HBox([self.controls.widget]), buttons, self.status, plots, self.log])

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)
