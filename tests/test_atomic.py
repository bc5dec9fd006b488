"""What notebooks do to a run: interrupts at every stage of a step, a failing engine, damaged
checkpoints, a full disk (real engine, verifier and policy, in process; pcbench.atomic)."""

import os
import re
import resource
import signal
from contextlib import contextmanager
from dataclasses import replace

import polars as pl
import pytest
from safetensors.torch import load_file

from pcbench.ledger import CUMULATIVE
from pcbench.loop import initial_eval, train, train_step
from pcbench.regression import ledger_violations
from pcbench.run import CheckpointWarning, Run, verify_manifest

from conftest import ROOT, small_config

pytestmark = pytest.mark.slow

CONFIG = ROOT / "configs" / "tiny-pc.toml"
CADENCE = ["eval.every=3", "checkpoint_every=1", "keep_checkpoints=2"]


def cfg_for(name, steps, *more):
    return small_config(CONFIG, name, steps, *CADENCE, *more)


class Boom(Exception):
    """An ordinary failure (an interrupt is tested with KeyboardInterrupt itself)."""


def fail_at(monkeypatch, owner, name, nth, error=KeyboardInterrupt):
    """Make `owner.name` raise `error` at its nth call from now (once), as a kernel interrupt
    or a failure would at that point."""
    real, calls = getattr(owner, name), [0]

    def wrapped(*args, **kwargs):
        calls[0] += 1
        if calls[0] == nth:
            raise error(f"injected into {name}")
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapped)
    return calls


def observe(s):
    return {
        "step": s.step,
        "stream": s.stream.state_dict(),
        "buffer": [(e.prompt_id, e.added_step) for e in s.buffer.entries],
        "evicted": sorted(s.buffer.evicted),
        "ledger": s.ledger.frame(),
        "version": s.policy.version,
    }


UNDONE = "undone"  # the state is as before the step
APPLIED = "applied"  # the update stands; the step's completion is owed


def stages(s, run):
    """(stage, owner, attribute, nth call, expected outcome) for each point of a step."""
    import pcbench.loop as loop
    import pcbench.rounds as rounds
    import pcbench.steps.update as update_module

    return [
        ("pilot and commit generation", s.engine, "generate", 1, UNDONE),
        ("inside vLLM's engine loop", s.engine.llm.llm_engine, "step", 3, UNDONE),
        ("verification", s.verifier, "verify", 1, UNDONE),
        ("scoring", rounds, "score", 1, UNDONE),
        ("buffer add", s.buffer, "add", 1, UNDONE),
        ("commit (training groups)", rounds, "training_group", 1, UNDONE),
        ("update", update_module, "update", 1, UNDONE),
        ("weight sync", s.engine, "load_weights", 1, APPLIED),
        ("evaluation", loop, "evaluate", 1, APPLIED),
        ("log write", run, "write", 2, APPLIED),
        ("checkpoint", run, "save_checkpoint", 1, APPLIED),
    ]


def test_an_interrupt_at_any_stage_leaves_the_state_consistent(fresh, monkeypatch):
    """For each stage: interrupt the next step there; the state is as before the step (or the
    step stands with its completion owed), every generated rollout counted once; continuing
    works; and the whole run ends exactly like one never interrupted."""
    steps = 20  # the 11 stages take 16 steps (some fire a step or two after they are armed)
    s, run = fresh(cfg_for("cut", steps))
    cfg = run.config
    initial_eval(s, cfg, run)
    train_step(s, cfg, run)
    for stage, owner, attr, nth, outcome in stages(s, run):
        before, generated = observe(s), s.engine.rollouts_generated
        with monkeypatch.context() as m:
            fail_at(m, owner, attr, nth)
            for _ in range(3):  # the evaluation stage fires on the next evaluated step
                try:
                    train_step(s, cfg, run)
                except KeyboardInterrupt as e:
                    note = " ".join(e.__notes__)
                    break
                before, generated = observe(s), s.engine.rollouts_generated
            else:
                pytest.fail(f"{stage}: the injected interrupt never fired")
        step = before["step"] + 1
        assert s.engine.policy_version == s.policy.version or outcome == APPLIED, stage
        assert not s.engine.llm.llm_engine.has_unfinished_requests(), stage
        if outcome == UNDONE:
            after = observe(s)
            assert "was undone" in note, stage
            for key in ("step", "stream", "buffer", "evicted", "version"):
                assert after[key] == before[key], (stage, key)
            paid = s.engine.rollouts_generated - generated
            ledger = after["ledger"]
            row = ledger.filter(pl.col("step") == step).drop("step", *CUMULATIVE).row(0, named=True)
            assert row["interrupted"] == 1 and row["rollout_stats/interrupted"] == paid, stage
            paid_for = {"interrupted", "rollout_stats/interrupted", "token_stats/interrupted"}
            assert {name for name, value in row.items() if value} <= paid_for, stage
            earlier = ledger.filter(pl.col("step") != step).select(before["ledger"].columns)
            assert earlier.equals(before["ledger"]), stage
            assert s.pending == {} and s.unfinished is None, stage
        else:
            assert re.search(f"step {step} was applied|the update was applied", note), stage
            assert s.step == step and s.unfinished is not None, stage
            assert s.policy.version == before["version"] + 1, stage
        train_step(s, cfg, run)  # continuing works (an owed completion is finished first)
        assert s.unfinished is None and s.engine.policy_version == s.policy.version, stage
    assert s.step < steps
    train(s, cfg, run, progress=False)
    assert s.step == steps and ledger_violations(run) == []
    ledger = run.ledger()
    ledger = run.ledger()  # ledger_violations: cumulative rollouts include the interrupted
    assert ledger["interrupted"].sum() == 7  # one per undone stage
    assert ledger["rollout_stats/interrupted"].sum() > 0

    # The same run never interrupted: the same rollouts, scores, evaluations and weights.
    s2, whole = fresh(cfg_for("whole", steps))
    train(s2, whole.config, whole, progress=False)
    for kind in ("rollouts", "scores", "evals"):
        assert whole.read(kind).equals(run.read(kind)), kind
    keep = [c for c in whole.ledger().columns if not c.startswith(("time/", "cumulative/seconds"))
            and "interrupted" not in c and c != "cumulative/rollouts" and c != "cumulative/tokens"
            and not c.startswith("verifier/")]  # fmt: skip
    assert whole.ledger().select(keep).equals(run.ledger().select(keep))
    wa, wb = (load_file(r.checkpoints()[-1] / "policy" / "model.safetensors") for r in (whole, run))
    assert max((wa[k] - wb[k]).abs().max().item() for k in wa) <= 1e-6


def test_a_kernel_interrupt_during_the_update_waits_for_it_and_the_sync(fresh, monkeypatch):
    import pcbench.steps.update as update_module

    s, run = fresh(cfg_for("sigint", 3))
    cfg = run.config
    train(s, replace(cfg, steps=1), run, progress=False)
    real = update_module.update

    def update_then_interrupt(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)  # what JupyterLab's interrupt button sends
        return real(*args, **kwargs)

    monkeypatch.setattr(update_module, "update", update_then_interrupt)
    with pytest.raises(KeyboardInterrupt) as info:
        train_step(s, cfg, run)
    assert "the update was applied" in " ".join(info.value.__notes__)
    # Held until the update and the sync were done: neither is half-applied.
    assert s.step == 2 and s.policy.version == 2 and s.engine.policy_version == 2
    assert s.unfinished is not None and not s.unfinished.logged
    monkeypatch.undo()
    train(s, cfg, run, progress=False)
    assert s.step == 3 and ledger_violations(run) == [] and run.ledger()["interrupted"].sum() == 0


def test_an_engine_failure_names_step_and_round_and_the_run_reopens(fresh, monkeypatch, verifier):
    s, run = fresh(cfg_for("engine-dies", 3))
    cfg = run.config
    fail_at(monkeypatch, s.engine, "generate", 3, error=Boom)  # after step 0's eval, step 1
    with pytest.raises(Boom) as info:
        train(s, cfg, run, progress=False)
    note = " ".join(info.value.__notes__)
    failed = int(re.search(r"the engine failed generating \d+ rollouts \(.*\) at step (\d+), "
                           r"round \d+", note).group(1))  # fmt: skip
    assert failed == s.step + 1 and "was undone" in note
    monkeypatch.undo()
    # A fresh kernel would do this: reopen the directory and go on from its last checkpoint.
    s, run = Run.open(run.path, verifier=verifier)
    assert s.step == failed - 1
    train(s, run.config, run, progress=False)
    assert s.step == 3 and ledger_violations(run) == []


def test_a_damaged_checkpoint_is_skipped_for_the_previous_intact_one(fresh, verifier):
    s, run = fresh(cfg_for("damaged", 3))
    train(s, replace(run.config, steps=2), run, progress=False)
    newest = run.checkpoints()[-1]
    assert [c.name for c in run.checkpoints()] == ["step-000001", "step-000002"]
    assert verify_manifest(newest) == []
    weights = newest / "policy" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # torn write
    assert any("model.safetensors" in p for p in verify_manifest(newest))
    with pytest.warns(CheckpointWarning, match="skipped damaged checkpoint.*step-000002"):
        s, run = Run.open(run.path, verifier=verifier)
    assert s.step == 1 and run.ledger()["step"].max() == 1  # logs cut back to the checkpoint
    train(s, run.config, run, progress=False)
    assert s.step == 3 and ledger_violations(run) == []
    assert all(verify_manifest(c) == [] for c in run.checkpoints())


@contextmanager
def file_size_limit(limit_bytes):
    """Writes past `limit_bytes` fail with EFBIG, as on a full disk (SIGXFSZ ignored, which
    would otherwise kill the process)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


def test_a_full_disk_fails_loudly_and_damages_no_checkpoint_or_log(fresh):
    s, run = fresh(cfg_for("full", 4))
    cfg = run.config
    train(s, replace(cfg, steps=2), run, progress=False)
    intact = {c.name: verify_manifest(c) for c in run.checkpoints()}
    parts = {p: p.read_bytes() for kind in ("rollouts", "ledger") for p in run.parts(kind)}
    # The policy file (3.5 MB) cannot be written, the step's log parts (KBs) can.
    with file_size_limit(1 << 20), pytest.raises(Exception) as info:
        train_step(s, cfg, run)
    assert "writing" in " ".join(info.value.__notes__) and "step-000003" in str(
        info.value.__notes__
    )
    assert "the previous checkpoints are untouched" in " ".join(info.value.__notes__)
    assert not list((run.path / "checkpoints").glob(".tmp-*"))
    assert {c.name: verify_manifest(c) for c in run.checkpoints()} == intact
    assert all(p.read_bytes() == b for p, b in parts.items())
    assert s.step == 3 and s.unfinished is not None and s.unfinished.logged
    # A log part that cannot be written fails the same way and leaves earlier parts alone.
    with file_size_limit(256), pytest.raises(Exception, match="File too large") as info:
        run.write("rollouts", 99, run.read("rollouts"))
    assert "earlier steps' parts" in " ".join(info.value.__notes__)
    assert not list((run.path / "rollouts").glob(".tmp-*"))
    assert all(p.read_bytes() == b for p, b in parts.items())
    train(s, cfg, run, progress=False)  # space again: the owed checkpoint, then step 4
    assert s.step == 4 and ledger_violations(run) == []
    assert [c.name for c in run.checkpoints()] == ["step-000003", "step-000004"]
    assert all(verify_manifest(c) == [] for c in run.checkpoints())
    assert pl.read_parquet(run.path / "ledger" / "*.parquet").height == 5
