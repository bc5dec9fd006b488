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

from common import publish  # noqa: E402

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
    out["outside generate+update"] = 1 - (out["generate"] + out["update"]) / out["step"]
    out["outside generate+verify+update"] = (
        1 - (out["generate"] + out["verify"] + out["update"]) / out["step"]
    )
    out["verify/s"] = float(col("verifier/items").sum() / max(col("verifier/seconds").sum(), 1e-9))
    out["cache hit"] = float(col("verifier/cache_hits").sum() / max(col("verifier/items").sum(), 1))
    out["fast path"] = float(col("verifier/fast_path").sum() / max(col("verifier/items").sum(), 1))
    return out


def markdown(rows: list[dict], scaling: list[tuple[str, dict]], peak_gib: float, steps: int) -> str:
    pct = lambda v: f"{v:.1%}"  # noqa: E731
    lines = [
        f"Seconds per training step (mean of {steps} steps after the initial evaluation; "
        "evaluation excluded), tiny-pc settings (B 8, G 24, n 16, p4c12, 64-token completions).",
        "",
        "| strategy | step | generate | verify | score+plan | update | weight sync | logging "
        "| other | outside generate+update | outside generate+verify+update |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['strategy']} | {r['step']:.2f} | {r['generate']:.2f} | {r['verify']:.3f} "
            f"| {r['score']:.3f} | {r['update']:.2f} | {r['sync']:.3f} | {r['log']:.3f} "
            f"| {r['other']:.3f} | {pct(r['outside generate+update'])} "
            f"| {pct(r['outside generate+verify+update'])} |"
        )
    lines += [
        "",
        "Verifier during these runs (training rollouts, real math-verify):",
        "",
        "| strategy | verifications/s | cache hit rate | answered by the exact-match fast path |",
        "|---|---|---|---|",
        *(
            f"| {r['strategy']} | {r['verify/s']:,.0f} | {pct(r['cache hit'])} | {pct(r['fast path'])} |"
            for r in rows
        ),  # fmt: skip
        "",
        "Pilot-Commit step time as the group size n and the batch B grow (pilot fraction 1/4, "
        "G = 3B):",
        "",
        "| PC setting | step s | generate s | update s |",
        "|---|---|---|---|",
        *(
            f"| {label} | {b['step']:.2f} | {b['generate']:.2f} | {b['update']:.2f} |"
            for label, b in scaling
        ),  # fmt: skip
        "",
        f"Peak resident memory of the benchmark process (engine + policy + optimizer + all runs): "
        f"{peak_gib:.2f} GiB.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--write", metavar="MD", help="also write the tables into this file")
    args = parser.parse_args()
    base = load_config(ROOT / "configs/tiny-pc.toml", [f"steps={args.steps}", "eval.every=1000"])
    base = replace(
        base, model=str(ROOT / base.model), train=str(ROOT / base.train), test=str(ROOT / base.test)
    )
    base = replace(base, eval=replace(base.eval, max_prompts=8))
    rows, scaling, verifier = [], [], None
    with tempfile.TemporaryDirectory() as tmp:
        for strategy in ("pilot_commit", "grpo", "dapo"):
            cfg = replace(base, strategy=strategy, name=f"bench-{strategy}")
            ledger, verifier = run_steps(cfg, Path(tmp), verifier)
            rows.append({"strategy": strategy, **breakdown(ledger)})
        for label, cfg in [
            *((f"n = {n} (B = 8)", base.with_pilot_fraction(0.25, n)) for n in (8, 16, 32)),
            *(
                (f"B = {b} (n = 16)", replace(base, batch_prompts=b, pool_prompts=3 * b))
                for b in (4, 8, 16)
            ),
        ]:
            name = "scale-" + "".join(ch for ch in label if ch.isalnum())
            scaling.append(
                (label, breakdown(run_steps(replace(cfg, name=name), Path(tmp), verifier)[0]))
            )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    publish(markdown(rows, scaling, peak, args.steps), "bench-steps", args.write)


if __name__ == "__main__":
    main()
