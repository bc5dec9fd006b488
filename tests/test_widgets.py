"""Widgets in Python (no browser): refused settings, in-place re-scoring, dashboard over a run
directory and over a live state (real engine, verifier and policy)."""

from dataclasses import replace

import plotly.graph_objects as go
import polars as pl
import pytest
import torch

from pcbench.config import CommitConfig, EvalConfig, PilotConfig, RunConfig
from pcbench.loop import train
from pcbench.policy import Policy
from pcbench.run import open_run
from pcbench.widgets import Controls, Dashboard

from conftest import ARITH, ROOT, TINY_POLICY, tiny_engine_config

CFG = RunConfig(
    name="widgets", model=str(TINY_POLICY), train=str(ARITH / "train.parquet"),
    test=str(ARITH / "test.parquet"), batch_prompts=4, pool_prompts=12, steps=2, seed=1,
    pilot=PilotConfig(n_pilot=4), commit=CommitConfig(n_commit=12),
    eval=EvalConfig(every=2, k=2, max_prompts=16), engine=tiny_engine_config(),
)  # fmt: skip


def test_controls_refuse_an_empty_band_and_keep_the_config():
    seen = []
    controls = Controls(CFG, on_change=seen.append)
    controls.keep_min.value = 0.9  # above keep_max = 0.75: refused
    assert controls.keep_min.value == CFG.score.keep_min and controls.cfg == CFG
    assert "refused" in controls.message.value and "keep_max" in controls.message.value
    assert seen == []
    controls.pilot_fraction.value = 0.5
    assert (controls.cfg.pilot.n_pilot, controls.cfg.commit.n_commit) == (8, 8) and seen
    controls.evict_at.value = 0.7  # <= keep_max: a kept prompt would be evicted
    assert controls.cfg.score.evict_at == 1.0 and "evict_at" in controls.message.value


def test_controls_switch_the_allocation_options_and_refuse_bad_ones():
    controls = Controls(CFG)
    assert not controls.cfg.pilot.sequential and controls.cfg.commit.allocation == "uniform"
    controls.sequential.value = True
    assert controls.cfg.pilot.stages == (0, 2) and "0 → 2 → 4" in controls.summary.value
    controls.delta.value = 0.2
    assert controls.cfg.pilot.delta == 0.2 and "confidence 0.80" in controls.summary.value
    controls.allocation.value = "value_per_cost"
    controls.budget.value = "tokens"
    assert (controls.cfg.commit.allocation, controls.cfg.commit.budget) == (
        "value_per_cost",
        "tokens",
    )
    assert "tokens budget" in controls.summary.value
    controls.pilot_fraction.value = 2 / 16  # n_pilot 2: stage 2 no longer applies
    assert controls.cfg.pilot.stages == (0,) and controls.cfg.pilot.n_pilot == 2
    controls.sequential.value = False
    assert controls.cfg.pilot.stages == () and controls.cfg.commit.allocation == "value_per_cost"


@pytest.fixture(scope="module")
def pc_run(tiny_engine, verifier, tmp_path_factory):
    state, run = open_run(CFG, tmp_path_factory.mktemp("runs"), verifier=verifier)
    train(state, CFG, run, progress=False)
    tiny_engine.load_weights(Policy(TINY_POLICY))  # later tests get the shipped weights
    return run


def _band(fig):
    return fig.layout.shapes[0].x0, fig.layout.shapes[0].x1


@pytest.mark.slow
def test_dashboard_from_a_run_directory_rescoring_moves_band_and_preview(pc_run):
    board = Dashboard.from_run(pc_run.path)
    assert list(board.histograms.scrubber.options) == [1, 2, "preview"]
    figure_id = id(board.allocation.figure)
    before_preview = list(board.allocation.figure.data[0].y)
    # Lower keep_max to just under the highest previewed pilot mean still inside the band: the
    # previewed prompts at that mean (and only they) leave it. Means come in steps of 1/4 (4
    # pilots); the choice follows the seeded data, so the test holds for any shipped policy.
    preview = board.histograms.scores["preview"]
    inside = preview.filter((pl.col("mean") > CFG.score.keep_min) & (pl.col("mean") <= 0.75))
    assert inside.height > 0  # the cached pilots do hold in-band prompts: the test can fail
    top = inside["mean"].max()
    moved = inside.filter(pl.col("mean") == top).height
    board.controls.keep_max.value = top - 0.125
    assert _band(board.histograms.figure) == (CFG.score.keep_min, top - 0.125)
    assert id(board.allocation.figure) == figure_id  # updated in place, not re-created
    after = list(board.allocation.figure.data[0].y)
    assert after[:-1] == before_preview[:-1] and after[-1] == before_preview[-1] - moved
    assert board.allocation.figure.data[0].x[-1] == "next (preview)"
    planned = board.plan_view.value  # the plan for the sliders, from the run's own groups
    assert "p4c12" in planned and "per informative rollout" in planned and "GRPO at n 16" in planned
    board.controls.pilot_fraction.value = 2 / 16  # preview from the first 2 pilot samples
    assert board.histograms.scores["preview"]["n"].max() == 2
    assert "p2c14" in board.plan_view.value and board.plan_view.value != planned
    board.histograms.scrubber.value = 1
    assert (
        len(board.histograms.figure.data[0].x)
        == pc_run.read("scores").filter(pl.col("step") == 1).height
    )
    assert board.accuracy.figure.data[0].name == "widgets"
    # What the browser draws is the figure as last edited: each plot's Output widget holds
    # exactly one plotly mimebundle of it.
    for plot in (board.histograms, board.allocation, board.accuracy):
        (shown,) = plot.output.outputs
        drawn = go.Figure(shown["data"]["application/vnd.plotly.v1+json"])
        assert drawn.to_dict() == plot.figure.to_dict()


def _fill_and_update(board, press=None):
    """Rounds by hand (pilot, score, commit) until the batch is full, then update."""
    press = press or (lambda name: board._actions[name]())
    while board._in_batch() < board.cfg.batch_prompts:
        press("pilot"), press("score"), press("commit")
    return press("update")


@pytest.mark.slow
def test_dashboard_over_a_live_state(tiny_engine, verifier):
    from pcbench.state import setup_state

    s = setup_state(CFG, verifier=verifier)
    board = Dashboard(s, CFG)
    try:
        pilots = board.pilot()
        assert pilots.height == 12 * 4 and "preview" in board.histograms.scores
        scores = board.score()
        assert (
            set(scores["verdict"]) <= {"keep", "too_easy", "too_hard"}
            and 1 in board.histograms.scores
        )
        board.commit()
        assert board.rounds[0].taken == []  # official order: round 1 has nothing buffered yet
        _fill_and_update(board)
        assert s.step == 1 and s.policy.version == 1
        board.run_steps(1)
        assert board.progress.value == 1 and s.step == 2
        board.evaluate()
        assert board.accuracy.figure.data[0].y
    finally:
        tiny_engine.load_weights(Policy(TINY_POLICY))


@pytest.mark.slow
def test_hand_stepped_dashboard_and_train_step_make_the_same_run(tiny_engine, verifier):
    """Three steps pressed by hand and three steps of the loop, from the same seed: the same
    ledger (wall times aside), rollouts, scores, evaluations and weights."""
    from pcbench.loop import train_step
    from pcbench.state import setup_state

    cfg = replace(CFG, steps=3, eval=EvalConfig(every=2, k=2, max_prompts=16))
    loop, frames = setup_state(cfg, verifier=verifier), []
    try:
        for _ in range(3):
            frames.append(train_step(loop, cfg)[1])
        loop_weights = {k: v.clone() for k, v in loop.policy.model.state_dict().items()}
        hand = setup_state(cfg, verifier=verifier)
        board = Dashboard(hand, cfg)
        for step in range(3):
            _fill_and_update(board)
            assert set(board.last_frames) == set(frames[step]) >= {"rollouts", "scores"}
            for kind, frame in frames[step].items():
                assert board.last_frames[kind].equals(frame), (step, kind)
        assert hand.step == loop.step == 3 and "evals" in frames[1]

        def comparable(s):
            wall = ("verifier/seconds", "verifier/cache_hits", "verifier/cache_hit_rate",
                    "cumulative/seconds")  # fmt: skip
            frame = s.ledger.frame()
            return frame.drop([c for c in frame.columns if c.startswith("time/") or c in wall])

        assert comparable(hand).equals(comparable(loop))
        for k, v in hand.policy.model.state_dict().items():
            assert torch.equal(v, loop_weights[k]), k
    finally:
        tiny_engine.load_weights(Policy(TINY_POLICY))


@pytest.mark.slow
def test_dashboard_steps_through_a_sequential_pilot(tiny_engine, verifier):
    from pcbench.state import setup_state

    cfg = replace(CFG, pilot=PilotConfig(n_pilot=4, stages=(2,), prior="flat"))
    s = setup_state(cfg, verifier=verifier)
    board = Dashboard(s, cfg)
    board.controls.delta.value = 0.45  # a flat prior stops 2/2 and 0/2 only when delta is loose
    try:
        pilots = board.pilot()
        n = pilots.group_by("prompt_id").len()["len"]
        assert set(n) <= {2, 4} and pilots.height < 12 * 4  # some prompts stopped at 2
        scores = board.score()
        early = scores.filter(pl.col("n") == 2)
        assert early.height == len(board.round.pilot.stopped) > 0
        assert set(early["verdict"]) <= {"too_easy", "too_hard"}
        assert sum(len(v) for v in s.prior.rates.values()) == scores.height
    finally:
        tiny_engine.load_weights(Policy(TINY_POLICY))


@pytest.mark.slow
def test_dashboard_buttons_in_unusual_orders_refuse_or_do_the_right_thing(tiny_engine, verifier):
    """Each press goes through the button's own handler (Button.click). An out-of-order press
    is refused with a message that says what to press, and changes nothing."""
    from pcbench.state import setup_state

    s = setup_state(CFG, verifier=verifier)
    board = Dashboard(s, CFG)
    G, n_pilot, B = CFG.pool_prompts, CFG.pilot.n_pilot, CFG.batch_prompts

    def press(name):
        board.buttons[name].click()
        return board.status.value

    def pilots_counted(step):
        return s.ledger.rows.get(step, {}).get("rollout_stats/pilot", 0)

    try:
        assert "refused" in press("score") and "press pilot first" in board.status.value
        assert "refused" in press("commit") and "press pilot, then score" in board.status.value
        assert "refused" in press("update") and f"0 of {B} prompts" in board.status.value
        assert s.ledger.rows == {} and len(s.buffer) == 0 and s.stream.position == 0

        assert "pilot done" in press("pilot")
        assert "refused" in press("pilot")  # would discard counted rollouts
        assert "press score" in board.status.value
        # Counted when the round finishes (commit), as the loop counts a round
        assert pilots_counted(1) == 0 and s.stream.position == G
        assert "refused" in press("run N steps")  # a hand round is half done

        assert "score done" in press("score")
        kept = len(s.buffer)
        assert "refused" in press("score")  # the same pilots are not added twice
        assert len(s.buffer) == kept
        assert s.ledger.rows[1]["filtering_stats/kept"] == kept
        assert "refused" in press("pilot") and "press commit" in board.status.value
        assert "commit done" in press("commit") and pilots_counted(1) == G * n_pilot
        assert "refused" in press("run N steps")  # the round's groups would be lost

        # Fill the batch by hand, then train it.
        while board._in_batch() < B:
            assert "pilot done" in press("pilot") and "score done" in press("score")
            assert "commit done" in press("commit")
        assert "refused" in press("pilot") and "press update" in board.status.value
        assert "update done" in press("update")
        assert s.step == 1 and s.policy.version == 1 and board.rounds == []

        board.n_steps.value = 1
        assert "run N steps done" in press("run N steps")
        assert s.step == 2 and s.policy.version == 2
        buffered = len(s.buffer)
        assert "refused" in press("score")  # the loop's pilots are scored already
        assert len(s.buffer) == buffered and board.preview is not None  # still previewed
        assert "evaluate done" in press("evaluate") and board.accuracy.figure.data[0].y
        # Every pilot rollout generated was counted once, in its step.
        for step in (1, 2):
            assert pilots_counted(step) == s.ledger.rows[step]["rounds"] * G * n_pilot
    finally:
        tiny_engine.load_weights(Policy(TINY_POLICY))


def test_the_accuracy_plot_keeps_sensible_axes_with_one_point():
    from pcbench.widgets.live import axis_ranges

    one = {"r": pl.DataFrame({"cumulative/rollouts": [384.0], "accuracy": [0.6]})}
    assert axis_ranges(one) == ([-0.02, 1.02], [0.0, 384.0 * 1.05])
    assert axis_ranges({"r": one["r"].head(0)}) == ([-0.02, 1.02], None)
    assert axis_ranges({"r": one["r"].with_columns(pl.lit(0.0).alias("cumulative/rollouts"))})[
        1
    ] == [0.0, 1.0]


@pytest.mark.slow
def test_an_interrupted_or_failing_press_is_shown_and_leaves_the_state_usable(
    tiny_engine, verifier, monkeypatch
):
    """A kernel interrupt or an error inside a button's action: the status line says what
    failed and what was undone; the state is as before the press (or, past the update, the
    step stands and the next press completes it); pressing on works."""
    import pcbench.steps.update as update_module
    from pcbench.state import setup_state

    s = setup_state(CFG, verifier=verifier)
    board = Dashboard(s, CFG)
    G, n_pilot = CFG.pool_prompts, CFG.pilot.n_pilot

    def press(name):
        board.buttons[name].click()
        return board.status.value

    def once(owner, name, error):
        real = getattr(owner, name)

        def fail(*args, **kwargs):
            monkeypatch.setattr(owner, name, real)
            raise error(f"injected into {name}")

        monkeypatch.setattr(owner, name, fail)

    try:
        once(s.engine, "generate", KeyboardInterrupt)
        with pytest.raises(KeyboardInterrupt):
            press("pilot")
        assert "pilot failed: KeyboardInterrupt" in board.status.value
        assert "was undone" in board.status.value
        assert board.round is None and s.stream.position == 0 and len(s.buffer) == 0
        assert s.ledger.rows[1]["interrupted"] == 1 and "rounds" not in s.ledger.rows[1]

        assert "pilot done" in press("pilot") and s.stream.position == G
        once(s.buffer, "add", RuntimeError)  # an error: shown, not raised into the kernel
        assert "score failed: RuntimeError" in press("score")
        assert board.round.stage == "generated" and len(s.buffer) == 0
        assert "score done" in press("score") and "commit done" in press("commit")
        while board._in_batch() < CFG.batch_prompts:
            for name in ("pilot", "score", "commit"):
                assert f"{name} done" in press(name)

        once(s.engine, "load_weights", KeyboardInterrupt)  # past the update: the step stands
        with pytest.raises(KeyboardInterrupt):
            press("update")
        assert "update failed" in board.status.value and "the update was applied" in (
            board.status.value
        )
        assert s.step == 1 and s.unfinished is not None and board.rounds == []
        assert s.engine.policy_version == 0 and s.policy.version == 1  # the sync is owed
        assert "pilot done" in press("pilot")  # the owed sync ran first
        assert s.unfinished is None and s.engine.policy_version == s.policy.version == 1
        assert s.ledger.rows[1]["rollout_stats/pilot"] == s.ledger.rows[1]["rounds"] * G * n_pilot
        once(update_module, "update", KeyboardInterrupt)
        for name in ("score", "commit"):
            press(name)
        while board._in_batch() < CFG.batch_prompts:
            for name in ("pilot", "score", "commit"):
                press(name)
        with pytest.raises(KeyboardInterrupt):
            press("update")  # undone: the batch is still there to train on
        assert s.step == 1 and board.rounds and "was undone" in board.status.value
        assert "update done" in press("update") and s.step == 2 and s.policy.version == 2
    finally:
        tiny_engine.load_weights(Policy(TINY_POLICY))


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["grpo", "greso"])  # notebook 06 trains knapsack live
def test_the_dashboard_trains_any_strategy_and_refuses_pilot_commits_stages(
    strategy, tiny_engine, verifier
):
    """Selecting a strategy is giving the dashboard that strategy's state: `run N steps` trains
    it (the loop's step) and its allocation plot shows that strategy's own columns; the stage
    buttons, Pilot-Commit's, are refused and change nothing."""
    from pcbench.config import load_config
    from pcbench.plots import allocation_columns
    from pcbench.state import setup_state

    cfg = load_config(ROOT / "configs" / f"tiny-{strategy}.toml",
                      ["batch_prompts=4", "eval.max_prompts=16", "eval.k=2"])  # fmt: skip
    s = setup_state(cfg, verifier=verifier)
    board = Dashboard(s, cfg)
    try:
        board.buttons["pilot"].click()
        assert "refused" in board.status.value and "run N steps" in board.status.value
        assert s.ledger.rows == {} and s.stream.position == 0
        board.n_steps.value = 1
        board.buttons["run N steps"].click()
        assert "run N steps done" in board.status.value and s.step == 1
        names = [trace.name for trace in board.allocation.figure.data]
        assert names == list(allocation_columns(strategy).values())
        assert any(y for trace in board.allocation.figure.data for y in trace.y)
    finally:
        tiny_engine.load_weights(Policy(TINY_POLICY))
