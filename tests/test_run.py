"""Run directories: atomic logs, refused configs, and exact resume after SIGKILL (CLI, real runs)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from safetensors.torch import load_file

from pcbench.config import ConfigError, RunConfig
from pcbench.run import Run, RunExistsError

from conftest import ROOT

CONFIG = ROOT / "configs" / "tiny-pc.toml"


def test_create_refuses_existing_run_and_changed_config_on_resume(tmp_path):
    cfg = RunConfig(name="r")
    Run.create(cfg, tmp_path)
    with pytest.raises(RunExistsError, match="--resume"):
        Run.create(cfg, tmp_path)
    with pytest.raises(ConfigError, match="update.lr: 0.0001 -> 0.001"):
        Run.create(RunConfig(name="r", update=cfg.update.__class__(lr=1e-3)), tmp_path, resume=True)
    run = Run.create(RunConfig(name="r", steps=99), tmp_path, resume=True)  # more steps: fine
    assert run.config.steps == 99


def test_resume_of_a_run_made_before_an_option_existed_takes_its_default(tmp_path):
    cfg = RunConfig(name="old")
    run = Run.create(cfg, tmp_path)
    saved = json.loads((run.path / "config.json").read_text())
    del saved["engine"]["sync_check_every"]  # as written by an older pcbench
    (run.path / "config.json").write_text(json.dumps(saved))
    assert Run.create(cfg, tmp_path, resume=True).config == cfg
    saved["engine"]["max_model_len"] = 512  # a real difference is still refused
    (run.path / "config.json").write_text(json.dumps(saved))
    with pytest.raises(ConfigError, match="max_model_len"):
        Run.create(cfg, tmp_path, resume=True)


def test_logs_round_trip_and_restore_drops_what_a_kill_left_behind(tmp_path):
    run = Run.create(RunConfig(name="r"), tmp_path)
    for step in (1, 2, 3):
        run.write("metrics", step, pl.DataFrame({"step": [step], "name": ["x"], "value": [1.0]}))
    assert run.read("metrics")["step"].to_list() == [1, 2, 3]
    # What a SIGKILL can leave: a temporary part, a half-made checkpoint, parts past the checkpoint.
    (run.path / "metrics" / ".tmp-step-000004.parquet").write_bytes(b"PAR1 torn")
    (run.path / "checkpoints" / ".tmp-step-000003").mkdir(parents=True)
    (run.path / "checkpoints" / "step-000002").mkdir()
    assert run.read("metrics").height == 3  # temporaries are never read
    run._truncate_logs(2)
    assert run.read("metrics")["step"].to_list() == [1, 2]
    assert sorted(p.name for p in (run.path / "metrics").iterdir()) == [
        "step-000001.parquet",
        "step-000002.parquet",
    ]
    assert not list((run.path / "checkpoints").glob(".tmp-*"))


def _kill_after_checkpoint(proc, run_dir, step: int) -> None:
    """SIGKILL a `pcbench run` as soon as its checkpoint of `step` exists (mid-way through the
    next step), and check that it was the kill that ended it."""
    marker = run_dir / "checkpoints" / f"step-{step:06d}"
    deadline = time.time() + 600
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL


def _pcbench(*args, **kw):
    env = os.environ | {"PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "pcbench.cli", *args], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw,
    )  # fmt: skip


@pytest.mark.parametrize(
    "sets, message",
    [
        (["model=data/no-such-policy"], "missing files: model = 'data/no-such-policy'"),
        (["score.keep_min=0.9"], "keep_min = 0.9 > keep_max = 0.75"),
        (["comit.n_commit=3"], "did you mean 'commit'"),
    ],
)
def test_bad_configs_are_refused_before_any_model_loads(tmp_path, sets, message):
    proc = _pcbench("run", str(CONFIG), "--runs", str(tmp_path), *[f"--set={s}" for s in sets])
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 2, out
    assert message in out and "vllm" not in out.lower()  # refused before vLLM was imported
    assert not (tmp_path / "tiny-pc").exists()


SMALL = ["--set=eval.every=2", "--set=eval.max_prompts=24", "--set=batch_prompts=4",
         "--set=pool_prompts=12", "--quiet"]  # fmt: skip


def _final_weights(run: Path) -> dict:
    last = sorted((run / "checkpoints").glob("step-*"))[-1]
    return load_file(last / "policy" / "model.safetensors")


def _comparable(ledger: pl.DataFrame) -> pl.DataFrame:
    """Wall-clock columns differ between any two runs, and verifier cache hits depend on what
    the process verified before (a resumed process starts cold); everything else must not."""
    process = (
        "verifier/seconds",
        "verifier/cache_hits",
        "verifier/cache_hit_rate",
        "cumulative/seconds",
    )
    return ledger.drop([c for c in ledger.columns if c.startswith("time/") or c in process])


@pytest.mark.slow
def test_checkpoint_cadence_pruning_no_checkpoint_resume_and_extended_steps(tmp_path, tiny_engine):
    """In one process (the engine is shared), with checkpoints every 3 steps, keep 2:

    - a straight 4-step run keeps the checkpoints of steps 3 and 4 only;
    - a run stopped after step 2 has no checkpoint: resuming restarts it from scratch (its
      logs, step-0 evaluation included, are rewritten) and it ends like the straight run;
    - a finished 2-step run extended to 4 steps resumes from the final checkpoint of step 2
      (taken because it was the last step, with an evaluation of its own), even from a
      checkpoint in the layout written before the online prior, manifests and STEP_STATE,
      and prunes that checkpoint later.
    """
    from pcbench.config import load_config
    from pcbench.loop import initial_eval, train, train_step
    from pcbench.policy import Policy
    from pcbench.run import open_run
    from pcbench.verify import Verifier

    sets = ["batch_prompts=4", "pool_prompts=12", "eval.every=3", "eval.max_prompts=16",
            "checkpoint_every=3", "keep_checkpoints=2", "steps=4"]  # fmt: skip

    def cfg(name, *more):
        return load_config(CONFIG, [*sets, f"name={name}", *more])

    def steps_of(run):
        return [int(p.name.split("-")[1]) for p in run.checkpoints()]

    with Verifier(workers=1) as verifier:
        try:
            s, straight = open_run(cfg("straight"), tmp_path, verifier=verifier)
            train(s, cfg("straight"), straight, progress=False)
            assert steps_of(straight) == [3, 4]

            s, cut = open_run(cfg("cut"), tmp_path, verifier=verifier)
            initial_eval(s, cfg("cut"), cut)
            for _ in range(2):
                train_step(s, cfg("cut"), cut)
            assert cut.checkpoints() == [] and cut.read("ledger")["step"].max() == 2
            s, cut = open_run(cfg("cut"), tmp_path, resume=True, verifier=verifier)
            assert s.step == 0 and cut.read("evals").height == 0  # restarted from scratch
            train(s, cfg("cut"), cut, progress=False)

            s, ext = open_run(cfg("ext", "steps=2"), tmp_path, verifier=verifier)
            train(s, cfg("ext", "steps=2"), ext, progress=False)
            assert steps_of(ext) == [2]
            # Rewritten as checkpoints were before state.STEP_STATE: the buffer and the ledger
            # in files of their own, before the sequential pilot (no prior) and before
            # checkpoint manifests.
            ckpt = ext.checkpoints()[0]
            saved = json.loads((ckpt / "state.json").read_text())
            (ckpt / "buffer" / "buffer.json").write_text(json.dumps(saved.pop("buffer")))
            (ckpt / "buffer" / "rollouts.parquet").rename(ckpt / "buffer" / "buffer.parquet")
            (ckpt / "ledger" / "frame.parquet").rename(ckpt / "ledger.parquet")
            for key in ("ledger", "tables", "prior"):
                del saved[key]
            (ckpt / "state.json").write_text(json.dumps(saved))
            (ckpt / "manifest.json").unlink()
            s, ext = open_run(cfg("ext"), tmp_path, resume=True, verifier=verifier)
            assert s.step == 2 and s.prior.state_dict() == type(s.prior)().state_dict()
            train(s, cfg("ext"), ext, progress=False)
            assert steps_of(ext) == [3, 4]  # step 2's checkpoint pruned
        finally:
            tiny_engine.load_weights(Policy(ROOT / "data" / "tiny-policy"))

    a = Run(straight.path)
    for b in (Run(cut.path), Run(ext.path)):
        assert _comparable(a.ledger()).equals(_comparable(b.ledger())), b.name
        assert a.read("rollouts").equals(b.read("rollouts")), b.name
        assert a.read("scores").equals(b.read("scores")), b.name
        wa, wb = _final_weights(a.path), _final_weights(b.path)
        assert max((wa[k] - wb[k]).abs().max().item() for k in wa) <= 1e-6, b.name
    assert a.read("evals").equals(Run(cut.path).read("evals"))
    # The extended run evaluated step 2 as its last step then; the rest is the same.
    ext_evals = Run(ext.path).read("evals")
    assert sorted(set(ext_evals["step"])) == [0, 2, 3, 4]
    assert ext_evals.filter(pl.col("step") != 2).equals(a.read("evals"))


@pytest.mark.slow
def test_demo_trains_three_strategies_then_tables_and_reports(tmp_path):
    """`make demo` at toy size: the three runs, the compare table, the HTML report."""
    sets = ["steps=2", "eval.every=1", "eval.max_prompts=16", "eval.n=4", "batch_prompts=4",
            "pool_prompts=12"]  # fmt: skip
    proc = _pcbench("demo", "--runs", str(tmp_path), "--quiet", *[f"--set={s}" for s in sets])
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    for name in ("tiny-pc", "tiny-grpo", "tiny-dapo"):
        assert name in out and (tmp_path / name / "config.json").exists()
        assert json.loads((tmp_path / name / "config.json").read_text())["steps"] == 2  # --set wins
    assert (tmp_path / "demo-report.html").stat().st_size > 10_000
    assert "report: " in out
    # quiet by default: no third-party warnings or load bars, counts as integers, 120 columns
    for noise in ("WARNING", "Warning", "FutureWarning", "Loading", "it/s"):
        assert noise not in out, (noise, out[-3000:])
    table = out[out.index("target accuracy") : out.index("report: ")].splitlines()
    assert max(len(line) for line in table) <= 120 and ".0 " not in table[2]
    said = " ".join(out.split())  # the plan's line, wrapped to 100 columns
    assert "plan (pcbench plan, from the GRPO run's own groups): Pilot-Commit p4c12" in said
    assert "rollouts per informative rollout" in said and "RESULTS.md §10" in said


def test_reading_a_saved_config_needs_no_vllm_import(tmp_path):
    # `pcbench compare` reads every run's config.json; looking up vLLM's argument names there
    # imported vLLM (~10 s on CPU) for configs already checked when the runs were made.
    from pcbench.config import load_config

    cfg = load_config(ROOT / "configs" / "tiny-pc.toml")
    assert cfg.engine.vllm_args  # the preset passes max_num_seqs through to vLLM
    run = Run.create(cfg, tmp_path)
    probe = (
        "import sys; from pcbench.run import Run; "
        f"c = Run({str(run.path)!r}).config; "
        "print(c.engine.vllm_args['max_num_seqs'], 'vllm' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.split() == [str(cfg.engine.vllm_args["max_num_seqs"]), "False"]
