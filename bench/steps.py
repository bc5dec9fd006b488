"""Where a training step's time goes, per strategy, on the embedded default (2 CPU cores).

    .venv/bin/python bench/steps.py [--steps 6]

Runs each strategy for a few steps into a temporary run directory (logging included) with the
shipped tiny-pc settings, then reads the ledger: seconds per step in generate (engine only),
verify, score (scoring, buffer, training groups), update, weight sync, log writes, and the rest
(epoch ends, request building, ledger bookkeeping). Also PC step time at three group sizes and
three batch sizes, and the process's peak resident memory. Prints markdown tables.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
from dataclasses import replace
from pathlib import Path

import polars as pl

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")

from pcbench.config import load_config  # noqa: E402
from pcbench.loop import train  # noqa: E402
from pcbench.run import open_run  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("generate", "verify", "score", "update", "sync", "log")


def run_steps(cfg, root: Path, verifier=None) -> pl.DataFrame:
    """Ledger rows of a fresh run of cfg (step 0, the initial evaluation, dropped)."""
    state, run = open_run(cfg, root, verifier=verifier)
    train(state, cfg, run, progress=False)
    return state.ledger.frame().filter(pl.col("step") > 0), state.verifier


def breakdown(ledger: pl.DataFrame) -> dict[str, float]:
    col = lambda c: ledger[c] if c in ledger.columns else pl.Series([0.0] * ledger.height)  # noqa: E731
    t = {
        "generate": col("time/generate") - col("verifier/seconds"),
        "verify": col("verifier/seconds"),
        "score": col("time/score"),
        "update": col("time/update"),
        "sync": col("time/sync"),
        "log": col("time/log"),
    }
    # time/evaluate is excluded: evaluation is not part of a training step's cost.
    step = col("time/step") - col("time/evaluate") + col("time/log")
    out = {k: float(v.mean()) for k, v in t.items()}
    out["other"] = float((step - sum(t.values())).mean())
    out["step"] = float(step.mean())
    out["outside generate+verify+update"] = (
        1 - (out["generate"] + out["verify"] + out["update"]) / out["step"]
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=6)
    args = parser.parse_args()
    base = load_config(ROOT / "configs/tiny-pc.toml", [f"steps={args.steps}", "eval.every=1000"])
    base = replace(
        base, model=str(ROOT / base.model), train=str(ROOT / base.train), test=str(ROOT / base.test)
    )
    base = replace(base, eval=replace(base.eval, max_prompts=8))
    rows, verifier = [], None
    with tempfile.TemporaryDirectory() as tmp:
        for strategy in ("pilot_commit", "grpo", "dapo"):
            cfg = replace(base, strategy=strategy, name=f"bench-{strategy}")
            ledger, verifier = run_steps(cfg, Path(tmp), verifier)
            rows.append({"strategy": strategy, **breakdown(ledger)})
        print(
            "| strategy | " + " | ".join(rows[0].keys() - {"strategy"} and list(rows[0])[1:]) + " |"
        )
        print("|---" * len(rows[0]) + "|")
        for r in rows:
            print(f"| {r['strategy']} | " + " | ".join(
                f"{v:.1%}" if k.startswith("outside") else f"{v:.3f}" for k, v in list(r.items())[1:]) + " |")  # fmt: skip
        print("\n| PC setting | step s | generate s | update s |\n|---|---|---|---|")
        for label, cfg in [
            *((f"n = {n} (B = 8)", base.with_pilot_fraction(0.25, n)) for n in (8, 16, 32)),
            *(
                (f"B = {b} (n = 16)", replace(base, batch_prompts=b, pool_prompts=3 * b))
                for b in (4, 8, 16)
            ),
        ]:
            cfg = replace(
                cfg,
                name=f"scale-{label.replace(' ', '').replace('(', '-').replace(')', '').replace('=', '')}",
            )
            b = breakdown(run_steps(cfg, Path(tmp), verifier)[0])
            print(f"| {label} | {b['step']:.2f} | {b['generate']:.2f} | {b['update']:.2f} |")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"\npeak resident memory of this process: {peak:.2f} GiB")


if __name__ == "__main__":
    main()
