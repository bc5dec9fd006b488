"""Verifier throughput on 2 cores: embedded-task rollouts and MATH-style answers.

    .venv/bin/python bench/verifier.py [--prompts 200] [--samples 16] [--write docs/RESULTS.md]

Prints verifications per second with a cold and a warm cache, and the verification time as
a share of the vLLM generation time for the same embedded-task rollouts.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import polars as pl
from common import publish

from pcbench.config import SamplingConfig
from pcbench.engines import VLLMEngine
from pcbench.verify import Verifier

ROOT = Path(__file__).resolve().parents[1]


def rate(verifier: Verifier, completions: list[str], golds: list[str]) -> tuple[float, float]:
    start = time.perf_counter()
    verifier.verify(completions, golds)
    seconds = time.perf_counter() - start
    return len(completions) / seconds, seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--write", metavar="MD", help="also write the table into this file")
    args = parser.parse_args()

    test = pl.read_parquet(ROOT / "data/arith/test.parquet").head(args.prompts)
    engine = VLLMEngine(str(ROOT / "data/tiny-policy"), max_model_len=256)
    requests = test.select("prompt_id", "prompt").with_columns(
        n=pl.lit(args.samples, pl.Int64), phase=pl.lit("pilot")
    )
    engine.generate(requests.head(8), SamplingConfig())  # warm-up
    start = time.perf_counter()
    rollouts = engine.generate(requests, SamplingConfig())
    generation_s = time.perf_counter() - start
    completions = rollouts["completion"].to_list()
    gold = dict(zip(test["prompt_id"], test["answer"], strict=True))
    golds = [gold[p] for p in rollouts["prompt_id"]]

    math500 = [
        json.loads(line) for line in (ROOT.parent / "shared/data/benchmarks/math500.jsonl").open()
    ]
    solutions, answers = [r["solution"] for r in math500], [r["answer"] for r in math500]

    results = {}
    with Verifier(workers=args.workers) as v:
        results["arith_cold_per_s"], arith_s = rate(v, completions, golds)
        results["arith_warm_per_s"], _ = rate(v, completions, golds)
    with Verifier(workers=args.workers) as v:
        results["math500_cold_per_s"], _ = rate(v, solutions, answers)
        results["math500_warm_per_s"], _ = rate(v, solutions, answers)
    r = results
    text = "\n".join(
        [
            f"math-verify in {args.workers} worker processes; {len(completions):,} tiny-policy "
            f"completions of {args.prompts} arithmetic test prompts ({args.samples} samples each) "
            f"and the {len(solutions)} MATH-500 reference solutions.",
            "",
            "| input | cold cache, verifications/s | warm cache, verifications/s |",
            "|---|---|---|",
            f"| arithmetic rollouts | {r['arith_cold_per_s']:,.0f} | {r['arith_warm_per_s']:,.0f} |",
            f"| MATH-500 solutions | {r['math500_cold_per_s']:,.0f} | {r['math500_warm_per_s']:,.0f} |",
            "",
            f"Verifying the arithmetic rollouts took {arith_s / generation_s:.1%} of the time vLLM "
            f"took to generate them ({generation_s:.1f} s).",
        ]
    )
    publish(text, "bench-verifier", args.write)


if __name__ == "__main__":
    main()
