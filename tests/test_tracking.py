"""What a run leaves for the tools researchers use: TensorBoard events, provenance in
config.json, tables a plain parquet glob reads, and `pcbench export` (a real 2-step run)."""

import json
import os
import re
import struct

import numpy as np
import polars as pl
import pytest

from pcbench.cli import main
from pcbench.ledger import COLUMNS
from pcbench.run import LOGS, Run
from pcbench.tracking import step_payload

from conftest import ROOT

SMALL = ["steps=2", "eval.every=1", "eval.max_prompts=16", "eval.n=4", "batch_prompts=4",
         "pool_prompts=12"]  # fmt: skip


def read_events(path):
    """(step, tag, is_histogram) of every summary value in a TensorBoard event file, parsed
    from its TFRecord frames (length, crc, event, crc)."""
    from tensorboardX.proto import event_pb2

    data, i, out = path.read_bytes(), 0, []
    while i < len(data):
        (n,) = struct.unpack("<Q", data[i : i + 8])
        event = event_pb2.Event.FromString(data[i + 12 : i + 12 + n])
        out += [(event.step, v.tag, v.HasField("histo")) for v in event.summary.value]
        i += 12 + n + 4
    return out


@pytest.mark.slow
def test_a_tracked_run_leaves_events_provenance_and_loadable_tables(tmp_path, tiny_engine,
                                                                     monkeypatch, capsys):  # fmt: skip
    monkeypatch.chdir(ROOT)
    args = ["run", "configs/tiny-pc.toml", "--runs", str(tmp_path), "--quiet",
            "--tracker", "tensorboard", *[f"--set={s}" for s in SMALL]]  # fmt: skip
    assert main(args) == 0
    run = Run(tmp_path / "tiny-pc")
    assert run.config.tracking.backends == ("tensorboard",)

    # TensorBoard: every logged step's ledger and metrics scalars, pilot histograms per step
    (events,) = (run.path / "tracking" / "tensorboard").glob("events.out.tfevents.*")
    seen = read_events(events)
    tags = {tag for _, tag, _ in seen}
    assert {
        "rollout_stats/pilot",
        "cumulative/rollouts",
        "update/loss",
        "eval/arith/mean_k",
        "filtering_stats/kept",
    } <= tags  # TensorBoard: @ -> _
    assert {s for s, tag, _ in seen if tag == "cumulative/rollouts"} == {0, 1, 2}
    hists = {(s, tag) for s, tag, h in seen if h}
    assert hists == {(s, t) for s in (1, 2) for t in ("pilot/pass_rate", "pilot/variance")}

    # provenance: the commit, package versions, the machine and the command line
    prov = run.provenance
    assert re.fullmatch(r"[0-9a-f]{40}", prov["git"]["commit"]) and isinstance(
        prov["git"]["dirty"], bool
    )
    assert prov["versions"]["torch"] and prov["versions"]["transformers"]
    assert prov["versions"]["math-verify"] and prov["versions"]["pcbench"] == "0.1.0"
    assert prov["machine"]["cores"] == os.cpu_count() and prov["machine"]["memory_gb"] > 0
    assert "--tracker" in prov["command"] and prov["resumed"] == []
    assert "provenance" not in run.config.to_dict()  # not part of what resume compares

    # every table: one plain glob, the same rows Run.read gives
    for kind in LOGS:
        globbed = pl.read_parquet(run.path / kind / "*.parquet")
        assert globbed.height == run.read(kind).height > 0, kind
    ledger = pl.read_parquet(run.path / "ledger" / "*.parquet")
    assert set(COLUMNS) <= set(ledger.columns) and ledger["step"].to_list() == [0, 1, 2]
    import pandas as pd  # pandas over the folder (pyarrow's dataset): the same rows and columns

    for kind in LOGS:
        frame = pd.read_parquet(run.path / kind)
        assert (len(frame), set(frame.columns)) == (run.read(kind).height, set(
            run.read(kind).columns)), kind  # fmt: skip

    # export: one file per table
    capsys.readouterr()
    assert main(["export", str(run.path), "--to", "csv", "--out", str(tmp_path / "x")]) == 0
    files = sorted(p.name for p in (tmp_path / "x").iterdir())
    assert files == sorted(f"{k}.csv" for k in LOGS)
    exported = pl.read_csv(tmp_path / "x" / "ledger.csv")
    assert (
        exported["cumulative/rollouts"].to_list() == run.ledger()["cumulative/rollouts"].to_list()
    )


def test_step_payload_sends_ledger_and_metrics_and_pilot_histograms():
    scores = pl.DataFrame({"n": [4, 4, 0], "mean": [0.25, 1.0, None], "var": [0.1875, 0.0, None]})
    scalars, hists = step_payload({"update/loss": 0.5}, {"step": 3, "rounds": 2.0}, scores)
    assert scalars == {"rounds": 2.0, "update/loss": 0.5}
    assert np.array_equal(hists["pilot/pass_rate"], [0.25, 1.0])  # stopped prompt (n 0) left out
    assert step_payload({}, {}, None) == ({}, {})


def test_tracking_config_is_checked_and_may_change_on_resume(tmp_path):
    from pcbench.config import ConfigError, RunConfig, from_dict

    with pytest.raises(ConfigError, match="tracking.backends"):
        from_dict({}, ['tracking.backends=["mlflow"]'])
    Run.create(RunConfig(name="r", steps=2), tmp_path)
    again = Run.create(from_dict({"name": "r", "steps": 2}, ['tracking.backends=["tensorboard"]']),
                       tmp_path, resume=True)  # fmt: skip
    assert len(again.provenance["resumed"]) == 1
    assert json.loads((tmp_path / "r" / "config.json").read_text())["tracking"]["backends"] == [
        "tensorboard"
    ]


def test_wandb_tracker_writes_an_offline_run(tmp_path, monkeypatch):
    """The W&B backend, real and offline: a logged step with its histogram lands in a local
    offline run directory (`wandb sync` uploads it later); nothing goes to the network."""
    pytest.importorskip("wandb")  # the `tracking` extra; dev installs it
    from pcbench.config import from_dict
    from pcbench.tracking import open_trackers

    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = from_dict({"name": "w"}, ['tracking.backends=["wandb"]'])
    (tracker,) = open_trackers(cfg, tmp_path / "w")
    tracker.log(1, {"rollout_stats/pilot": 96.0}, {"pilot/pass_rate": np.array([0.25, 0.5])})
    tracker.close()
    offline = list((tmp_path / "w" / "tracking" / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(offline) == 1 and offline[0].stat().st_size > 0
