"""PilotBuffer: take order, staleness bound, epochs and evictions, save/load; Ledger identities."""

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pcbench.buffer import PilotBuffer
from pcbench.config import ScoreConfig
from pcbench.ledger import Ledger
from pcbench.schema import ROLLOUTS
from pcbench.steps import score


def _pilot(step, correct_by_prompt):
    rows = [
        dict(step=step, round=1, phase="pilot", prompt_id=pid, sample=i, policy_version=step - 1,
             completion="x", token_ids=[1, 2], logprobs=[0.0, 0.0], n_tokens=2, finish="stop",
             reward=float(c), correct=bool(c), verify_status="ok")
        for pid, cs in correct_by_prompt.items()
        for i, c in enumerate(cs)
    ]  # fmt: skip
    return ROLLOUTS.frame(rows)


def _add(buf, step, correct_by_prompt):
    rollouts = _pilot(step, correct_by_prompt)
    return buf.add(score(rollouts, ScoreConfig()), rollouts, step)


def test_add_keeps_only_the_band_and_marks_evictions():
    buf = PilotBuffer(max_staleness=4)
    kept = _add(
        buf, 1, {"a": [1, 0, 1, 0], "b": [1, 0, 0, 0], "c": [0, 0, 0, 0], "d": [1, 1, 1, 1]}
    )
    assert kept == ["a", "b"] and len(buf) == 2
    assert buf.pending_evictions == {"d"} and buf.evicted == set()
    assert buf.entries[0].rollouts.height == 4


def test_take_removes_in_max_std_order_and_all_when_short():
    buf = PilotBuffer()
    _add(buf, 1, {"a": [1, 0, 0, 0], "b": [1, 1, 0, 0]})
    _add(buf, 2, {"c": [1, 0, 0, 0], "d": [1, 1, 0, 0]})
    assert [e.prompt_id for e in buf.take(3)] == ["d", "b", "c"]  # std .5 (recent first), .43
    assert [e.prompt_id for e in buf.take(5)] == ["a"] and len(buf) == 0
    assert buf.take(2) == []


@given(st.integers(0, 6), st.integers(1, 12))
@settings(max_examples=60, deadline=None)
def test_entry_can_be_taken_until_staleness_bound_only(max_staleness, s):
    """Added at step s: takeable at s + max_staleness + 1 (before that step's drop), not later."""
    for take_at, expect in ((s + max_staleness + 1, True), (s + max_staleness + 2, False)):
        buf = PilotBuffer(max_staleness=max_staleness)
        _add(buf, s, {"p": [1, 0, 1, 0]})
        for step in range(s + 1, take_at):  # completed steps drop stale entries after their take
            buf.drop_stale(step)
        assert (len(buf.take(1)) == 1) is expect


def test_end_epoch_clears_and_applies_evictions_cumulatively():
    buf = PilotBuffer()
    _add(buf, 1, {"a": [1, 0, 1, 0], "e1": [1, 1, 1, 1]})
    assert buf.end_epoch() == ["e1"] and len(buf) == 0 and buf.evicted == {"e1"}
    _add(buf, 2, {"e2": [1, 1, 1, 1]})
    assert buf.end_epoch() == ["e2"] and buf.evicted == {"e1", "e2"}


def test_duplicate_prompt_is_refused():
    buf = PilotBuffer()
    _add(buf, 1, {"a": [1, 0, 1, 0]})
    with pytest.raises(ValueError, match="already in the buffer"):
        _add(buf, 2, {"a": [1, 0, 0, 0]})


def test_state_dict_round_trip_continues_identically():
    buf = PilotBuffer(max_staleness=3, seed=7)
    _add(buf, 1, {f"p{i}": [1, 0, i % 2, 0] for i in range(8)})
    buf.pending_evictions.add("z")
    again = PilotBuffer(max_staleness=1, seed=0)  # everything comes from the state
    again.load_state_dict(buf.state_dict())
    assert repr(again) == repr(buf)
    for order in ("random", "max_std"):
        a, b = buf.take(3, order), again.take(3, order)
        assert [e.prompt_id for e in a] == [e.prompt_id for e in b]
        assert all(x.rollouts.equals(y.rollouts) for x, y in zip(a, b, strict=True))


# ---- ledger -------------------------------------------------------------------------------


@given(
    st.lists(
        st.tuples(st.integers(0, 50), st.integers(0, 50), st.integers(0, 50)),
        min_size=1,
        max_size=15,
    )
)
@settings(max_examples=50, deadline=None)
def test_ledger_cumulative_identity(counts):
    ledger = Ledger()
    for step, (p, c, d) in enumerate(counts, start=1):
        for phase, n in (("pilot", p), ("commit", c), ("dapo", d)):
            if n:
                ledger.count_rollouts(
                    step, _pilot(step, {"x": [0] * n}).with_columns(phase=pl.lit(phase))
                )
    frame = ledger.frame()
    gen = [sum(frame[f"rollout_stats/{p}"][i] if f"rollout_stats/{p}" in frame.columns else 0
               for p in ("pilot", "commit", "dapo")) for i in range(frame.height)]  # fmt: skip
    assert frame["cumulative/rollouts"].to_list() == np.cumsum(gen).tolist()
    assert frame["cumulative/tokens"].to_list() == (2 * np.cumsum(gen)).tolist()
    assert Ledger.from_frame(frame).frame().equals(frame)


def test_ledger_does_not_count_eval_rollouts():
    ledger = Ledger()
    ledger.count_rollouts(1, _pilot(1, {"x": [0, 1]}).with_columns(phase=pl.lit("eval")))
    ledger.add(1, "rounds")
    assert ledger.frame()["cumulative/rollouts"].to_list() == [0.0]


def test_end_epoch_refuses_an_epoch_that_evictions_left_too_small():
    # 26 prompts, G = 12: two pools per epoch (what Pilot-Commit needs) until 3 are evicted.
    from pcbench.config import RunConfig
    from pcbench.loop import EpochTooSmallError, end_epoch
    from pcbench.state import State
    from pcbench.tasks import PromptStream

    prompts = pl.DataFrame({"prompt_id": [f"p{i}" for i in range(26)], "prompt": ["q"] * 26,
                            "answer": ["1"] * 26})  # fmt: skip
    cfg = RunConfig(batch_prompts=4, pool_prompts=12)
    s = State(engine=None, verifier=None, policy=None, prompts=prompts,
              stream=PromptStream(prompts), buffer=PilotBuffer())  # fmt: skip
    _add(s.buffer, 1, {"p0": [1, 1, 1, 1], "p1": [1, 1, 1, 1], "p2": [1, 0, 0, 0]})
    end_epoch(s, cfg, 1)  # 2 evicted: 24 left, exactly two pools
    assert s.buffer.evicted == {"p0", "p1"} and len(s.stream.order) == 24
    _add(s.buffer, 2, {"p3": [1, 1, 1, 1]})
    with pytest.raises(EpochTooSmallError, match="only 23 training prompts are left after 3 ev"):
        end_epoch(s, cfg, 2)
    assert s.ledger.rows[2]["filtering_stats/evicted"] == 1  # counted before refusing
    # GRPO needs only one batch of B per epoch: the same 23 prompts are plenty.
    end_epoch(s, RunConfig(strategy="grpo", batch_prompts=4, pool_prompts=12), 3)


def test_every_stateful_object_speaks_one_state_protocol():
    """state_dict / load_state_dict (as torch) on the buffer, stream, prior and ledger: a fresh
    object loaded from another's state_dict has the same state_dict."""
    from pcbench.prior import PassRatePrior
    from pcbench.tasks import PromptStream

    buf = PilotBuffer(seed=3)
    _add(buf, 1, {"a": [1, 0, 1, 0]})
    stream = PromptStream(pl.DataFrame({"prompt_id": [f"q{i}" for i in range(10)]}), seed=5)
    stream.next_pool(4)
    prior = PassRatePrior(window=8, min_count=2)
    prior.observe(["x", "x", None], [0.25, 0.5, 1.0], [4, 4, 4])
    ledger = Ledger()
    ledger.add(1, "rounds", 2)
    fresh = {
        "buffer": PilotBuffer(), "prior": PassRatePrior(),
        "stream": PromptStream(pl.DataFrame({"prompt_id": [f"q{i}" for i in range(10)]})),
        "ledger": Ledger(),
    }  # fmt: skip
    for name, obj in {"buffer": buf, "stream": stream, "prior": prior, "ledger": ledger}.items():
        fresh[name].load_state_dict(obj.state_dict())
        a, b = obj.state_dict(), fresh[name].state_dict()
        assert a.keys() == b.keys(), name
        for key in a:
            same = a[key].equals(b[key]) if isinstance(a[key], pl.DataFrame) else a[key] == b[key]
            assert same, (name, key)


def test_the_readable_ledger_shows_counts_as_integers():
    ledger = Ledger()
    ledger.count_rollouts(1, _pilot(1, {"x": [0, 1, 1]}))
    ledger.add(1, "time/generate", 0.25)
    ledger.set(1, "verifier/error_rate", 0.5)
    shown = ledger.readable()
    assert shown["rollout_stats/pilot"].dtype == pl.Int64 and shown["rollout_stats/pilot"][0] == 3
    assert shown["cumulative/rollouts"].dtype == pl.Int64
    assert shown["time/generate"][0] == 0.25 and shown["verifier/error_rate"][0] == 0.5
    assert shown["cumulative/seconds"].dtype == pl.Float64
    assert ledger.frame()["rollout_stats/pilot"].dtype == pl.Float64  # computation unchanged


def test_step_zero_costs_no_training_seconds():
    # The initial evaluation's row (step 0) has time/evaluate but no training step; read back
    # from a run's stable-schema parts it has time/step = 0: either way 0 training seconds.
    ledger = Ledger()
    ledger.add(0, "time/evaluate", 1.5)
    ledger.add(1, "time/step", 3.0)
    ledger.add(1, "time/evaluate", 1.0)
    assert ledger.frame()["cumulative/seconds"].to_list() == [0.0, 2.0]
    again = Ledger.from_frame(ledger.frame())
    assert again.frame()["cumulative/seconds"].to_list() == [0.0, 2.0]
