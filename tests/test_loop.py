"""The three strategies on the embedded default (real engine, verifier, policy, in process)."""

import polars as pl
import pytest
import torch

from pcbench import strategies
from pcbench.config import CommitConfig, EvalConfig, PilotConfig, RunConfig
from pcbench.loop import MaxRoundsError, train
from pcbench.policy import Policy
from pcbench.state import setup_state

from conftest import ARITH, TINY_POLICY, tiny_engine_config

pytestmark = pytest.mark.slow

B, G = 4, 12


def _cfg(strategy, **kw):
    base = dict(
        name=f"test-{strategy}", strategy=strategy, model=str(TINY_POLICY),
        train=str(ARITH / "train.parquet"), test=str(ARITH / "test.parquet"),
        batch_prompts=B, pool_prompts=G, steps=3, seed=3,
        pilot=PilotConfig(n_pilot=4), commit=CommitConfig(n_commit=4),
        eval=EvalConfig(every=3, k=2, max_prompts=16), engine=tiny_engine_config(),
    )  # fmt: skip
    return RunConfig(**(base | kw))


@pytest.fixture
def state_for(tiny_engine, verifier):
    """setup() reuses the session engine; its shipped weights are restored afterwards."""
    yield lambda cfg: setup_state(cfg, verifier=verifier)
    tiny_engine.load_weights(Policy(TINY_POLICY))


@pytest.mark.parametrize("strategy", ["pilot_commit", "grpo", "dapo"])
def test_accounting_and_batch_composition(strategy, state_for, tiny_engine):
    cfg = _cfg(strategy)
    s = state_for(cfg)
    assert s.engine is tiny_engine  # one engine per process
    before = {k: v.clone() for k, v in s.policy.model.state_dict().items()}
    train(s, cfg, progress=False)
    ledger = s.ledger.frame().filter(pl.col("step") > 0)  # step 0: the initial evaluation
    assert s.step == 3 and s.policy.version == 3 and ledger.height == 3
    n = cfg.group_size
    # Every trained batch has exactly B prompts with n rollouts each (n_reuse = all pilots).
    assert (ledger["filtering_stats/trained_prompts"] == B).all()
    assert (ledger["rollout_stats/trained"] == B * n).all()
    generated = sum(ledger[c] for c in ledger.columns if c.startswith("rollout_stats/")
                    and c.split("/")[1] in ("pilot", "commit", "grpo", "dapo"))  # fmt: skip
    assert (ledger["cumulative/rollouts"] == generated.cum_sum()).all()
    if strategy == "pilot_commit":  # per round: G * n_pilot piloted + k * n_commit committed
        assert (ledger["rollout_stats/pilot"] == ledger["rounds"] * G * 4).all()
        assert (ledger["rollout_stats/commit"] == ledger["buffer_stats/take"] * 4).all()
        assert (ledger["buffer_stats/take"] == B).all()
        assert (ledger["buffer_stats/age_max"] <= cfg.commit.max_staleness + 1).all()
    elif strategy == "grpo":
        assert (ledger["rollout_stats/grpo"] == B * n).all()
    else:  # DAPO: every round's groups are kept, discarded or surplus
        per_round = ledger["filtering_stats/dapo_kept"] + ledger["filtering_stats/dapo_discarded"]
        assert ((per_round + ledger["filtering_stats/dapo_surplus"]) == ledger["rounds"] * G).all()
        assert (ledger["rollout_stats/dapo"] == ledger["rounds"] * G * n).all()
    assert ledger["verifier/error_rate"].max() == 0.0
    changed = sum(not torch.equal(v, before[k]) for k, v in s.policy.model.state_dict().items())
    assert changed > 0.9 * len(before)
    rollouts = pl.concat(s.pending.get("rollouts", [])) if s.pending else None
    assert rollouts is None  # flushed each step


def test_max_rounds_raises_with_advice_or_trains_partial(state_for):
    # keep band [0.9, 0.95] with 4 pilots: no mean can fall in it, nothing is ever kept.
    from pcbench.config import ScoreConfig

    narrow = ScoreConfig(keep_min=0.9, keep_max=0.95, evict_at=1.0)
    cfg = _cfg("pilot_commit", score=narrow, max_rounds=2)
    s = state_for(cfg)
    with pytest.raises(MaxRoundsError, match="widen the keep band"):
        strategies.get("pilot_commit").step(s, cfg, 1)
    cfg = _cfg("pilot_commit", score=narrow, max_rounds=2, on_max_rounds="train_partial")
    s = state_for(cfg)
    assert (
        strategies.get("pilot_commit").step(s, cfg, 1) == {}
    )  # nothing to train on; logged, no crash
    assert s.ledger.frame()["partial_batch"].to_list() == [0.0] and s.policy.version == 0


def test_epoch_end_discards_partial_batch_and_continues(state_for):
    # 60 mid-difficulty training prompts, G = 12: five pools per epoch, then the epoch ends.
    cfg = _cfg("pilot_commit", steps=8)
    s = state_for(cfg)
    small = s.prompts.filter(pl.col("difficulty").is_in([3, 4])).head(60)
    s.prompts, s.stream = small, type(s.stream)(small, seed=cfg.seed)
    train(s, cfg, progress=False)
    ledger = s.ledger.frame().filter(pl.col("step") > 0)
    assert ledger["epochs"].sum() >= 1 and s.stream.epoch >= 1
    assert s.step == 8 and (ledger["filtering_stats/trained_prompts"] == B).all()
    # Evicted prompts are never offered again.
    assert not set(s.stream.order) & s.buffer.evicted


def test_sequential_pilot_and_value_per_cost_commit_count_every_rollout(state_for, tmp_path):
    """pcbench's allocation options on the real loop: stage 0 (prior only) -> 2 -> 4 pilots
    with half the prior-only stops explored, and a value-per-cost commit under a token budget;
    every rollout is counted and logged."""
    from pcbench.run import Run

    cfg = _cfg(
        "pilot_commit", steps=4, name="test-beyond",
        pilot=PilotConfig(n_pilot=4, stages=(0, 2), delta=0.1, prior_min=8, explore=0.5),
        commit=CommitConfig(n_commit=4, allocation="value_per_cost", budget="tokens",
                            min_commit=1, max_commit=12),
    )  # fmt: skip
    s, run = state_for(cfg), Run.create(cfg, tmp_path)
    train(s, cfg, run, progress=False)
    ledger = s.ledger.frame().filter(pl.col("step") > 0)
    rollouts, scores = run.read("rollouts"), run.read("scores")
    assert s.step == 4 and (ledger["filtering_stats/trained_prompts"] == B).all()
    # Every generated rollout is counted, in its phase, and logged.
    logged = rollouts.group_by("step", "phase").len()
    for phase in ("pilot", "commit"):
        per_step = logged.filter(pl.col("phase") == phase).sort("step")["len"].to_list()
        assert per_step == ledger.sort("step")[f"rollout_stats/{phase}"].cast(int).to_list()
    assert ledger["cumulative/rollouts"][-1] == rollouts.height
    assert (ledger["verifier/items"] == ledger["rollout_stats/pilot"] + ledger["rollout_stats/commit"]).all()  # fmt: skip
    # Prompts stop at 0 or 2 rollouts only with an out-of-band verdict and are never evicted;
    # every kept prompt had the full pilot.
    early = scores.filter(pl.col("n") < 4)
    assert early.height > 0 and set(early["n"]) <= {0, 2}
    assert set(early["verdict"]) <= {"too_easy", "too_hard"} and not early["evict"].any()
    assert (scores.filter(pl.col("verdict") == "keep")["n"] == 4).all()
    assert ledger["filtering_stats/early_stopped"].sum() == early.height
    assert (ledger["filtering_stats/seen"] == ledger["rounds"] * G).all()
    # The commit budget of each round is its taken prompts' uniform budget, in expected tokens,
    # and pilot samples number 0..3 within a prompt's group.
    commit = rollouts.filter(pl.col("phase") == "commit")
    sizes = commit.group_by("step", "round", "prompt_id").len()["len"]
    assert sizes.min() >= 1 and sizes.max() <= 12
    pilot = rollouts.filter(pl.col("phase") == "pilot")
    assert pilot.group_by("step", "round", "prompt_id").agg(pl.col("sample").n_unique() == pl.len())["sample"].all()  # fmt: skip
    assert sum(len(v) for v in s.prior.rates.values()) == scores.filter(pl.col("n") > 0).height
    # pilot.explore: half of the prior-only stops are piloted anyway; the rest have n = 0.
    assert ledger["filtering_stats/prior_explored"].sum() > 0
    assert ledger["filtering_stats/prior_skipped"].sum() == scores.filter(pl.col("n") == 0).height


class _Deadline:
    """Fail instead of hanging: SIGALRM raises in the main thread after `seconds`."""

    def __init__(self, seconds: int):
        self.seconds = seconds

    def __enter__(self):
        import signal

        def expired(*_):
            raise TimeoutError(f"still running after {self.seconds} s: the step loops")

        self.old = signal.signal(signal.SIGALRM, expired)
        signal.alarm(self.seconds)

    def __exit__(self, *exc):
        import signal

        signal.alarm(0)
        signal.signal(signal.SIGALRM, self.old)


def test_an_epoch_of_one_pool_is_refused_before_anything_loads(tmp_path):
    # 30 prompts, G = 24: Pilot-Commit commits only prompts piloted in an earlier round of the
    # same epoch, so one pool per epoch can never fill a batch (it used to loop forever).
    from pcbench.config import ConfigError

    train_file = tmp_path / "train.parquet"
    pl.read_parquet(ARITH / "train.parquet").head(30).write_parquet(train_file)
    cfg = _cfg("pilot_commit", train=str(train_file), pool_prompts=24)
    with pytest.raises(ConfigError, match="holds 30 prompts, fewer than the 48 .*pool_prompts"):
        setup_state(cfg, with_policy=False)
    assert setup_state(_cfg("grpo", train=str(train_file), pool_prompts=24), with_policy=False)


def test_train_prompts_keeps_the_first_prompts_of_the_split(tmp_path):
    from pcbench.config import ConfigError

    full = pl.read_parquet(ARITH / "train.parquet")
    s = setup_state(_cfg("grpo", train_prompts=50), with_policy=False)
    assert s.prompts["prompt_id"].to_list() == full["prompt_id"].head(50).to_list()
    assert s.stream.start_epoch() == 50  # every epoch cycles through those 50 only
    with pytest.raises(ConfigError, match="train_prompts = 30 keeps 30 prompts, fewer than the 48"):
        setup_state(_cfg("pilot_commit", train_prompts=30, pool_prompts=24), with_policy=False)
    small = tmp_path / "train.parquet"
    full.head(10).write_parquet(small)
    with pytest.raises(ConfigError, match="train_prompts = 20, but .* holds only 10 prompts"):
        setup_state(_cfg("grpo", train=str(small), train_prompts=20), with_policy=False)
    with pytest.raises(ConfigError, match="train_prompts = 0"):
        _cfg("grpo", train_prompts=0)


def test_a_step_no_epoch_can_fill_raises_instead_of_looping(state_for):
    # 48 prompts = 4 pools per epoch, and a keep band no 4-sample mean can fall in: no epoch can
    # fill a batch. Evictions are off so that the epoch is the same size each time.
    from pcbench.config import ScoreConfig
    from pcbench.loop import EpochTooSmallError, train_step

    narrow = ScoreConfig(keep_min=0.9, keep_max=0.95, evict_at=1.5)
    cfg = _cfg("pilot_commit", score=narrow)
    s = state_for(cfg)
    small = s.prompts.head(48)
    s.prompts, s.stream = small, type(s.stream)(small, seed=cfg.seed)
    unstarted = s.stream.state_dict()
    with _Deadline(120), pytest.raises(EpochTooSmallError, match="a whole epoch of 48 training"):
        train_step(s, cfg)
    row = s.ledger.rows[1]
    # Two epochs were tried (the partial one it started in, then one whole fresh one), no more:
    # 8 rounds of pilots. The step is undone (pcbench.atomic), its rollouts counted as paid for.
    assert row["interrupted"] == 1 and row["rollout_stats/interrupted"] == 8 * G * 4
    assert "epochs" not in row and "rounds" not in row
    assert s.step == 0 and s.policy.version == 0 and s.stream.state_dict() == unstarted


@pytest.mark.parametrize("strategy", ["grpo", "dapo"])
def test_baselines_cross_epoch_ends(strategy, state_for):
    # GRPO: 10 prompts = 2 batches of 4 per epoch; DAPO: 30 prompts = 2 pools of 12. Three
    # steps cross at least one epoch end; a discarded partial DAPO batch stays counted.
    cfg = _cfg(
        strategy,
        steps=3,
        pilot=PilotConfig(n_pilot=2),
        commit=CommitConfig(n_commit=2, min_commit=0),
    )
    s = state_for(cfg)
    small = s.prompts.filter(pl.col("difficulty") == 3).head(10 if strategy == "grpo" else 30)
    s.prompts, s.stream = small, type(s.stream)(small, seed=cfg.seed)
    train(s, cfg, progress=False)
    ledger = s.ledger.frame().filter(pl.col("step") > 0)
    assert s.step == 3 and ledger["epochs"].sum() >= 1 and s.stream.epoch >= 1
    assert (ledger["filtering_stats/trained_prompts"] == B).all()
    phase = f"rollout_stats/{strategy}"
    assert (ledger["cumulative/rollouts"] == ledger[phase].cum_sum()).all()
    if strategy == "grpo":
        assert (ledger[phase] == B * 4).all()  # an epoch end between batches costs nothing
    else:  # every round's G groups are counted, whether kept, discarded or surplus
        assert (ledger[phase] == ledger["rounds"] * G * 4).all()


def test_dapo_max_rounds_raises_or_trains_the_partial_batch(state_for):
    # B = G = 12 level-1 prompts the policy almost always solves: one round cannot find 12
    # groups with differing rewards.
    cfg = _cfg("dapo", batch_prompts=G, max_rounds=1,
               pilot=PilotConfig(n_pilot=2), commit=CommitConfig(n_commit=2, min_commit=0))  # fmt: skip
    s = state_for(cfg)
    easy = s.prompts.filter(pl.col("difficulty") == 1).head(60)
    s.prompts, s.stream = easy, type(s.stream)(easy, seed=cfg.seed)
    with pytest.raises(MaxRoundsError, match=f"of {G} prompts filled the batch after 1 rounds"):
        strategies.get("dapo").step(s, cfg, 1)
    partial = _cfg("dapo", batch_prompts=G, max_rounds=1, on_max_rounds="train_partial",
                   pilot=PilotConfig(n_pilot=2), commit=CommitConfig(n_commit=2, min_commit=0))  # fmt: skip
    s = state_for(partial)
    s.prompts, s.stream = easy, type(s.stream)(easy, seed=cfg.seed)
    metrics = strategies.get("dapo").step(s, partial, 1)
    row = s.ledger.rows[1]
    kept = row["filtering_stats/dapo_kept"]
    assert row["partial_batch"] == kept < G and row["rollout_stats/dapo"] == G * 4
    if kept:  # trained on the groups it found, a version further
        assert metrics["update/groups"] == kept and s.policy.version == 1
    else:
        assert metrics == {} and s.policy.version == 0


def test_the_engine_sleeps_through_the_update_and_wakes_before_the_sync(state_for, monkeypatch):
    """The order matters on a GPU (sleep mode is CUDA-only, so here the calls are recorded on the
    real CPU engine, whose own sleep/wake are no-ops): the update runs while the engine sleeps,
    the sync after it wakes, and a failed update still wakes it."""
    import pcbench.steps.update as update_module
    from pcbench import loop

    cfg = _cfg("grpo", steps=1)
    s = state_for(cfg)
    events, load = [], s.engine.load_weights
    monkeypatch.setattr(s.engine, "sleep", lambda: events.append(("sleep", s.policy.version)))
    monkeypatch.setattr(s.engine, "wake", lambda: events.append(("wake", s.policy.version)))

    def sync(policy, check=None):
        events.append(("sync", policy.version))
        return load(policy, check)

    monkeypatch.setattr(s.engine, "load_weights", sync)
    train(s, cfg, progress=False)
    assert events == [("sleep", 0), ("wake", 1), ("sync", 1)]

    def failing_update(*args):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(update_module, "update", failing_update)
    with pytest.raises(RuntimeError, match="out of memory"):
        loop.train_on(s, cfg, 2, pl.DataFrame())
    assert events[-2:] == [("sleep", 1), ("wake", 1)]  # awake again, and no sync
