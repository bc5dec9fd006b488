"""Run: a self-describing run directory with atomic per-step logs and exact resume.

    runs/<name>/config.json                  the resolved RunConfig, and under "provenance" what
                                             made the run (git, versions, machine, command)
    runs/<name>/<kind>/step-000012.parquet   kind = rollouts | scores | evals | metrics | ledger
    runs/<name>/checkpoints/step-000012/     policy, optimizer, buffer (+ evicted set), stream
                                             position, ledger, torch RNG state, the sequential
                                             pilot's prior and the peers' per-prompt state

Parquet cannot be appended in place, so each step writes its own part file (read back as one
frame by `read`). Every file is written to a temporary name and renamed, and a checkpoint
directory is renamed into place only when complete, so a SIGKILL never leaves a half-written
step. On resume, log parts newer than the checkpoint are deleted: the resumed run rewrites
them, identically, so no row is duplicated or lost.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from contextlib import contextmanager
from pathlib import Path

import polars as pl

from pcbench.config import ConfigError, RunConfig, from_dict

LOGS = ("rollouts", "scores", "evals", "metrics", "ledger")
# Keys (or whole sections) that may change on --resume: they do not change what a run computes.
RESUMABLE_CHANGES = {"steps", "checkpoint_every", "keep_checkpoints", "tracking", "cluster"}


class RunExistsError(FileExistsError):
    """The run directory exists and --resume was not asked for."""


class CheckpointError(RuntimeError):
    """No intact checkpoint to resume from."""


class CheckpointWarning(UserWarning):
    """A damaged checkpoint was skipped; an older one is used."""


MANIFEST = "manifest.json"


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def manifest(folder: Path) -> dict[str, dict]:
    """{relative path: {bytes, sha256}} of every file under `folder` but the manifest."""
    return {
        str(p.relative_to(folder)): {"bytes": p.stat().st_size, "sha256": _sha256(p)}
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }


def verify_manifest(folder: Path) -> list[str]:
    """What is wrong with a checkpoint against its manifest (empty: intact, or made before
    manifests existed, which is recognised by having no manifest but a complete state.json)."""
    path = folder / MANIFEST
    if not path.exists():
        return [] if (folder / "state.json").exists() else ["no manifest and no state.json"]
    try:
        expected = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return ["unreadable manifest"]
    problems = []
    for name, entry in expected.items():
        file = folder / name
        if not file.exists():
            problems.append(f"{name} missing")
        elif file.stat().st_size != entry["bytes"]:
            problems.append(f"{name} has {file.stat().st_size} bytes, not {entry['bytes']}")
        elif _sha256(file) != entry["sha256"]:
            problems.append(f"{name} checksum differs")
    return problems


@contextmanager
def _loud_write(final: Path, tmp: Path, intact: str):
    """A write of `final` through `tmp` that fails (a full disk, a file-size limit) removes
    `tmp` and says what failed and what is still intact."""
    try:
        yield
    except BaseException as error:  # safetensors and torch.save raise their own types
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        why = error.strerror if isinstance(error, OSError) and error.strerror else error
        error.add_note(f"pcbench: writing {final} failed ({why}); {intact}")
        raise


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".tmp-{path.name}")
    tmp.write_text(text)
    os.replace(tmp, path)


def _diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if key in RESUMABLE_CHANGES:
            continue
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _diff(va, vb, f"{prefix}{key}.")
        elif va != vb:
            out.append(f"{prefix}{key}: {va!r} -> {vb!r}")
    return out


def totals(ledger: pl.DataFrame) -> dict:
    """Steps, cumulative rollouts and tokens of a run's ledger frame (Run.ledger) so far."""
    last = ledger.row(-1, named=True) if ledger.height else {}
    return {"steps": int(last.get("step", 0)), "rollouts": last.get("cumulative/rollouts", 0.0),
            "tokens": last.get("cumulative/tokens", 0.0)}  # fmt: skip


def _write_step_state(folder: Path, step: int, parts: dict[str, dict]) -> None:
    """A step's state (State.step_state) as files: state.json holds the step, each part's plain
    values and the names of its tables, each table is `<part>/<key>.parquet`."""
    state: dict = {"step": step, "tables": {}}
    for name, part in parts.items():
        tables = sorted(k for k, v in part.items() if isinstance(v, pl.DataFrame))
        for key in tables:
            (folder / name).mkdir(exist_ok=True)
            part[key].write_parquet(folder / name / f"{key}.parquet")
        state[name] = {k: v for k, v in part.items() if k not in tables}
        state["tables"][name] = tables
    (folder / "state.json").write_text(json.dumps(state) + "\n")


def _read_step_state(folder: Path) -> dict:
    """{"step", "parts"} as `_write_step_state` wrote them, or as checkpoints written before it
    (the buffer in buffer/buffer.{json,parquet}, the ledger in ledger.parquet, no tables list;
    the oldest have no prior either, and keep the State's)."""
    state = json.loads((folder / "state.json").read_text())
    step = state.pop("step")
    if "tables" not in state:  # before 2026-12-03
        buffer = json.loads((folder / "buffer" / "buffer.json").read_text())
        state["buffer"] = buffer | {
            "rollouts": pl.read_parquet(folder / "buffer" / "buffer.parquet")
        }
        state["ledger"] = {"frame": pl.read_parquet(folder / "ledger.parquet")}
        return {"step": step, "parts": state}
    tables = state.pop("tables")
    parts = {
        name: part | {k: pl.read_parquet(folder / name / f"{k}.parquet") for k in tables[name]}
        for name, part in state.items()
    }
    return {"step": step, "parts": parts}


def _config_values(saved: Path | dict) -> dict:
    """config.json (a path, or its parsed contents) without its provenance: the values
    RunConfig is built from."""
    values = dict(saved) if isinstance(saved, dict) else json.loads(saved.read_text())
    values.pop("provenance", None)
    return values


class Run:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not (self.path / "config.json").exists():
            raise FileNotFoundError(f"{self.path} is not a run directory (no config.json)")
        self.trackers: list = []  # open_run opens the config's (pcbench.tracking)

    @classmethod
    def open(cls, path: str | Path, *, verifier=None, overrides: list[str] = ()):
        """(State, Run) of an existing run directory, from its newest intact checkpoint: what a
        fresh kernel calls to continue a run, exactly as `pcbench run --resume` would.
        `overrides`: `key=value` changes allowed on resume (steps, checkpoint_every, ...)."""
        path = Path(path)
        cfg = from_dict(_config_values(cls(path).path / "config.json"), [*overrides])
        if cfg.name != path.name:
            raise ConfigError(
                f"{path} holds run {cfg.name!r}: a run directory is named after its run; "
                f"rename it back to {cfg.name!r}"
            )
        return open_run(cfg, path.parent, resume=True, verifier=verifier)

    @classmethod
    def create(cls, cfg: RunConfig, root: str | Path = "runs", *, resume: bool = False) -> Run:
        """A new run directory for cfg, or (resume) the existing one if its config matches."""
        path = Path(root) / cfg.name
        saved = path / "config.json"
        before = json.loads(saved.read_text()) if saved.exists() else None
        if before is not None:
            if not resume:
                raise RunExistsError(
                    f"{path} exists; pass --resume to continue it, or pick another name "
                    f"(--set name=...), or delete the directory"
                )
            # Read back through the config class: a run made before an option existed gets its
            # default, so adding an option to pcbench does not block resuming older runs.
            old_cfg = from_dict(_config_values(before), saved=True)
            old = json.loads(json.dumps(old_cfg.to_dict()))
            new = json.loads(json.dumps(cfg.to_dict()))
            changed = _diff(old, new)
            if old_cfg.seeding != cfg.seeding:  # [cluster] may change, the samples may not
                changed.append(
                    f"engine.seeding resolves to {cfg.seeding!r}, the run used "
                    f"{old_cfg.seeding!r} (set engine.seeding = {old_cfg.seeding!r})"
                )
            if changed:
                raise ConfigError(
                    f"--resume of {path} with a different config ({'; '.join(changed)}); only "
                    f"{sorted(RESUMABLE_CHANGES)} may change: resume without those --set values"
                )
        path.mkdir(parents=True, exist_ok=True)
        from pcbench.provenance import provenance

        # The first provenance stays; each resume adds its own (another machine, another commit).
        record = (before or {}).get("provenance", {})
        now = provenance()
        record = now | {"resumed": []} if not record else record | {
            "resumed": [*record.get("resumed", []), now]
        }  # fmt: skip
        _atomic_write_text(
            saved, json.dumps(cfg.to_dict() | {"provenance": record}, indent=1) + "\n"
        )
        return cls(path)

    @property
    def config(self) -> RunConfig:
        return from_dict(_config_values(self.path / "config.json"), saved=True)

    @property
    def provenance(self) -> dict:
        """What made the run: git commit and dirty flag, package versions, machine, command
        ({} for a run made before pcbench recorded it)."""
        return json.loads((self.path / "config.json").read_text()).get("provenance", {})

    def track(self, step: int, metrics: dict, ledger_row: dict, scores=()) -> None:
        """Send a logged step to the run's trackers (none unless the config asks); `scores` is
        the step's SCORES frames, joined only when a tracker is there to take them."""
        if not self.trackers:
            return
        from pcbench.tracking import step_payload

        joined = pl.concat(scores, how="diagonal_relaxed") if scores else None
        scalars, hists = step_payload(metrics, ledger_row, joined)
        for tracker in self.trackers:
            tracker.log(step, scalars, hists)

    def close_trackers(self) -> None:
        for tracker in self.trackers:
            tracker.close()
        self.trackers = []

    @property
    def name(self) -> str:
        return self.path.name

    # ---- logs ---------------------------------------------------------------------------
    def write(self, kind: str, step: int, frame: pl.DataFrame) -> None:
        folder = self.path / kind
        folder.mkdir(exist_ok=True)
        final = folder / f"step-{step:06d}.parquet"
        tmp = folder / f".tmp-{final.name}"
        with _loud_write(final, tmp, "earlier steps' parts and the checkpoints are untouched"):
            frame.write_parquet(tmp)
            os.replace(tmp, final)

    def parts(self, kind: str) -> list[Path]:
        return sorted((self.path / kind).glob("step-*.parquet"))

    def read(self, kind: str) -> pl.DataFrame:
        """Every step's part of one log, in step order (empty frame if none)."""
        parts = self.parts(kind)
        if not parts:
            return pl.DataFrame()
        return pl.concat([pl.read_parquet(p) for p in parts], how="diagonal_relaxed")

    def ledger(self) -> pl.DataFrame:
        """The ledger rows with cumulative columns recomputed over all steps."""
        from pcbench.ledger import Ledger

        rows = self.read("ledger")
        return Ledger.from_frame(rows).frame() if rows.height else rows

    # ---- checkpoints ----------------------------------------------------------------------
    def checkpoints(self) -> list[Path]:
        return sorted((self.path / "checkpoints").glob("step-*"))

    def save_checkpoint(self, s, keep: int = 2) -> Path:
        """Write `s` as checkpoints/step-N: into a temporary directory, with a manifest of every
        file's size and checksum written last, then renamed into place; older checkpoints are
        pruned only after that. A failed write (a full disk) raises and removes its temporary
        directory; the checkpoints already there are untouched."""
        root = self.path / "checkpoints"
        final = root / f"step-{s.step:06d}"
        tmp = root / f".tmp-{final.name}"
        shutil.rmtree(tmp, ignore_errors=True)
        with _loud_write(final, tmp, "the previous checkpoints are untouched"):
            tmp.mkdir(parents=True)
            # The policy as a loadable model directory, the torch RNG, and what a step may
            # change (state.STEP_STATE): each part's tables as parquet, its plain values JSON.
            s.policy.save(tmp / "policy")
            import torch  # checkpoints only: reading a run needs no torch

            torch.save({"torch": torch.get_rng_state()}, tmp / "rng.pt")
            _write_step_state(tmp, s.step, s.step_state())
            (tmp / MANIFEST).write_text(json.dumps(manifest(tmp), indent=1) + "\n")
            shutil.rmtree(final, ignore_errors=True)
            os.rename(tmp, final)
        for old in self.checkpoints()[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
        return final

    def good_checkpoint(self) -> tuple[Path | None, list[str]]:
        """The newest checkpoint whose files match its manifest, and what was skipped on the way
        (newer checkpoints that are truncated, corrupted or incomplete). A checkpoint written
        before pcbench kept manifests is taken as it is."""
        skipped = []
        for ckpt in reversed(self.checkpoints()):
            problems = verify_manifest(ckpt)
            if not problems:
                return ckpt, skipped
            skipped.append(f"{ckpt.name} ({'; '.join(problems[:3])})")
        return None, skipped

    def restore(self, s, cfg: RunConfig) -> int:
        """Load the newest intact checkpoint into `s` and drop newer log parts; returns its step.
        A damaged newer checkpoint is skipped with a warning naming it; if every checkpoint is
        damaged, CheckpointError (nothing is deleted: restarting from scratch would drop the
        run's logs)."""
        from pcbench.cluster.sharded import policy_for

        ckpt, skipped = self.good_checkpoint()
        if skipped and ckpt is None:
            raise CheckpointError(
                f"{self.path}: every checkpoint is damaged: {', '.join(skipped)}; nothing was "
                "deleted. Restore a copy of checkpoints/, or start the run again under a new name"
            )
        if skipped:
            warnings.warn(
                f"{self.path}: skipped damaged checkpoint(s) {', '.join(skipped)}; resuming from "
                f"{ckpt.name}", CheckpointWarning, stacklevel=2,
            )  # fmt: skip
            for bad in self.checkpoints():
                if bad.name > ckpt.name:  # the resumed run writes these steps again
                    bad.rename(bad.with_name(f".damaged-{bad.name}"))
        step = int(ckpt.name.split("-")[1]) if ckpt else 0
        self._truncate_logs(step)
        if ckpt is None:
            return 0
        if s.policy is not None and s.policy.data_parallel is not None:
            s.policy.data_parallel.shutdown()  # its ranks' resources go to the new group
        s.policy = policy_for(cfg, ckpt / "policy")
        from pcbench.state import with_data_parallel

        with_data_parallel(s.policy, cfg)  # a new group around the restored policy
        s.engine.load_weights(s.policy)
        step_state = _read_step_state(ckpt)
        try:
            s.load_step_state(step_state["parts"])
        except ValueError as e:
            raise CheckpointError(f"{ckpt}: {e}") from None
        import torch

        torch.set_rng_state(torch.load(ckpt / "rng.pt", weights_only=True)["torch"])
        s.step, s.pending, s.unfinished, s.broken = step_state["step"], {}, None, None
        return step

    def _truncate_logs(self, step: int) -> None:
        """Remove log parts after `step` (and stray temporaries): the resumed run rewrites them."""
        for kind in LOGS:
            for part in (self.path / kind).glob("*.parquet"):
                name = part.name
                # No checkpoint (step 0): the run restarts from scratch, step-0 evals included.
                if name.startswith(".tmp-") or step == 0 or int(name[5:11]) > step:
                    part.unlink()
        for tmp in (self.path / "checkpoints").glob(".tmp-*"):
            shutil.rmtree(tmp, ignore_errors=True)

    def export(self, out: str | Path, fmt: str = "parquet") -> list[Path]:
        """One file per table (rollouts, scores, evals, metrics, ledger with its cumulative
        columns) under `out`, as parquet or csv; tables the run has no rows of are skipped."""
        if fmt not in ("parquet", "csv"):
            raise ValueError(f"export format {fmt!r}: use parquet or csv")
        out, written = Path(out), []
        out.mkdir(parents=True, exist_ok=True)
        for kind in LOGS:
            frame = self.ledger() if kind == "ledger" else self.read(kind)
            if frame.height == 0:
                continue
            path = out / f"{kind}.{fmt}"
            if fmt == "parquet":
                frame.write_parquet(path)
            else:  # csv has no nested types: lists become JSON-like strings
                nested = [c for c, t in frame.schema.items() if t.is_nested()]
                frame.with_columns(
                    pl.col(c).map_elements(str, return_dtype=pl.String) for c in nested
                ).write_csv(path)
            written.append(path)
        return written

    def summary(self) -> dict:
        """Steps, cumulative rollouts/tokens and eval accuracy so far (for compare and widgets)."""
        return {"run": self.name, "strategy": self.config.strategy, **totals(self.ledger()),
                "evals": self.read("evals").height}  # fmt: skip

    def __repr__(self):
        ckpts = self.checkpoints()
        last = ckpts[-1].name if ckpts else "no checkpoint"
        return f"Run({str(self.path)!r}, {len(self.parts('ledger'))} steps logged, {last})"


def open_run(cfg: RunConfig, root: str | Path = "runs", *, resume: bool = False, verifier=None):
    """(State, Run) ready for `train`: a fresh run, or the latest checkpoint of an existing one.

    Config and files are checked before any model loads.
    """
    from pcbench.state import check_files, setup_state

    check_files(cfg)
    run = Run.create(cfg, root, resume=resume)
    has_checkpoint = resume and bool(run.checkpoints())
    s = setup_state(cfg, verifier=verifier, with_policy=not has_checkpoint)
    if resume:
        run.restore(s, cfg)
    from pcbench.tracking import open_trackers

    run.trackers = open_trackers(cfg, run.path)
    return s, run
