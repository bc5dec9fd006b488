"""Fingerprints of a run's first steps: what "no behaviour change" is checked against.

`fingerprint(cfg, steps)` trains `steps` steps of `cfg` in this process (no run directory, no
evaluation but the last step's) and returns, per step, digests of the rollouts generated
(prompt, phase, round, sample, token ids, reward), of the scores, the ledger's counts (every
count column, wall-clock and the verifier's seconds aside) and, at the end, a digest of the
policy's weights. Two codes that make the same decisions give the same fingerprint to the bit;
`tests/fingerprints/` holds the ones recorded from main before the strategy registry
(issue 32), and `tests/test_fingerprints.py` compares against them.

`transplanted(cfg)` is a GPU preset moved onto the embedded default (the tiny policy, the
arithmetic splits, CPU vLLM, B 8 / G 24, 64 tokens), keeping what its strategy decides by:
the strategy, group and pilot sizes, band, order, staleness, eviction, update and mini-batches.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import polars as pl

from pcbench.config import RunConfig, load_config
from pcbench.ledger import is_count

ROLLOUT_COLUMNS = ("step", "round", "phase", "prompt_id", "sample", "token_ids", "reward")
STEPS = 5
TINY = "configs/tiny-pc.toml"  # whose engine, data and sizes a transplanted preset takes


def digest(frame: pl.DataFrame | None, columns: tuple[str, ...] | None = None) -> str:
    """sha256 of a frame's values in row order (the given columns, all when None)."""
    if frame is None or frame.height == 0:
        return "empty"
    if columns is not None:
        frame = frame.select([c for c in columns if c in frame.columns])
    text = json.dumps(frame.to_dict(as_series=False), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def weights_digest(policy) -> str:
    """sha256 of every parameter and buffer's bytes, in name order."""
    h = hashlib.sha256()
    for name, tensor in sorted(policy.model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().float().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def ledger_counts(row: dict) -> dict[str, float]:
    """A step's ledger row without wall-clock and the verifier's own bookkeeping (its cache
    hits depend on what the process judged before, its timeouts on the load: a verdict that
    changed shows in the rollouts' rewards)."""
    return {
        k: v
        for k, v in sorted(row.items())
        if is_count(k) and v and (not k.startswith("verifier/") or k == "verifier/items")
    }


def transplanted(cfg: RunConfig) -> RunConfig:
    """A GPU preset on the embedded default's model, data, engine and sizes: B 8, G 24, n 16 at
    the preset's pilot fraction, mini-batches at the preset's share of B (module docstring)."""
    tiny = load_config(TINY)
    B = tiny.batch_prompts
    mini = cfg.update.mini_batch_prompts
    moved = replace(
        cfg, model=tiny.model, train=tiny.train, test=tiny.test, extra_eval=(), batch_prompts=B,
        pool_prompts=tiny.pool_prompts, sampling=tiny.sampling, engine=tiny.engine,
        cluster=tiny.cluster, verify=tiny.verify, tracking=tiny.tracking,
        update=replace(cfg.update, micro_batch_size=tiny.update.micro_batch_size,
                       mini_batch_prompts=None if mini is None
                       else max(1, round(mini * B / cfg.batch_prompts))),
    )  # fmt: skip
    return moved.with_pilot_fraction(cfg.pilot_fraction, tiny.group_size)


def fingerprinted(cfg: RunConfig, steps: int) -> RunConfig:
    """`cfg` as `fingerprint` trains it: `steps` steps of B 4 prompts from pools of G 12 (the
    tests' size: every code path of the config at half its cost), one evaluation of 16 prompts
    at the end (it does not touch training's draws or seeds), no checkpoints."""
    return replace(
        cfg, name="fingerprint", steps=steps, checkpoint_every=steps, keep_checkpoints=1,
        batch_prompts=4, pool_prompts=12,
        eval=replace(cfg.eval, every=steps, max_prompts=16, k=1, n=1),
    )  # fmt: skip


def fingerprint(cfg: RunConfig, steps: int = 5, *, verifier=None) -> dict:
    """Per-step digests of `steps` steps of `cfg` as `fingerprinted` sets it (module docstring)."""
    from pcbench.loop import train_step
    from pcbench.state import setup_state

    cfg = fingerprinted(cfg, steps)
    s = setup_state(cfg, verifier=verifier)
    out = {"steps": []}
    for _ in range(steps):
        _, frames = train_step(s, cfg)
        out["steps"].append(
            {
                "step": s.step,
                "rollouts": digest(frames.get("rollouts"), ROLLOUT_COLUMNS),
                "scores": digest(frames.get("scores")),
                "ledger": ledger_counts(s.ledger.rows[s.step]),
            }
        )
    out["weights"] = weights_digest(s.policy)
    return out


def shipped(path: Path) -> RunConfig:
    """A shipped config as its fingerprint trains it: the tiny ones as they are, the GPU presets
    transplanted."""
    cfg = load_config(path)
    return fingerprinted(cfg if path.name.startswith("tiny-") else transplanted(cfg), STEPS)


def groups(paths: list[Path]) -> list[tuple[RunConfig, list[str]]]:
    """The configs of `paths` (as `shipped`) grouped where they train identically: (the first
    one's config, every name in the group)."""
    out: dict[str, tuple[RunConfig, list[str]]] = {}
    for path in paths:
        cfg = shipped(path)
        key = json.dumps(replace(cfg, name="fingerprint").to_dict(), sort_keys=True, default=str)
        out.setdefault(key, (cfg, []))[1].append(path.stem)
    return list(out.values())
