"""The weight-sync self-check's tolerance per dtype, from measured probe gaps.

    .venv/bin/python bench/sync_tolerance.py [--write docs/RESULTS.md] [--syncs 12]

For each dtype, in a fresh process (one vLLM engine per process): the tiny policy and the CPU
vLLM engine in that dtype; `--syncs` times, one real update step (lr 1e-3) and then the probe's
mean |Δ logprob| twice: once *before* the sync (the engine holds the previous weights: the gap a
missed sync produces) and once after it (the gap a good sync leaves: kernel and rounding
differences). The tolerance must sit between the two distributions; pcbench's default per dtype
(`pcbench.config.SYNC_TOLERANCE`) is checked against them here.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from common import ROOT, publish

SCRIPT = """
import json, math, sys
import polars as pl
import torch
from pcbench.config import SamplingConfig, UpdateConfig
from pcbench.engines import VLLMEngine, WeightSyncError
from pcbench.policy import Policy, make_batch

model, dtype, syncs, arith = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
engine = VLLMEngine(model, dtype=dtype, max_model_len=256, seed=0, sync_tolerance=math.inf)
policy = Policy(model, UpdateConfig(lr=1e-3, warmup_steps=0), dtype=dtype)
engine.load_weights(policy, check=False)
prompts = pl.read_parquet(arith).head(8)
requests = prompts.select("prompt_id", "prompt").with_columns(n=pl.lit(4), phase=pl.lit("pilot"))
synced, stale = [], []
for _ in range(syncs):
    rollouts = engine.generate(requests, SamplingConfig())
    ids = {p: policy.tokenizer(t).input_ids for p, t in zip(prompts["prompt_id"], prompts["prompt"])}
    batch = make_batch([ids[p] for p in rollouts["prompt_id"]], rollouts["token_ids"].to_list(),
                       policy.tokenizer.pad_token_id)
    policy.step(-(policy.logprobs(batch).sum() / batch.completion_mask.sum()))
    stale.append(engine.check(policy))  # tolerance inf: measures, never raises
    synced.append(engine.load_weights(policy, check=True))
print("RESULT", json.dumps({"synced": synced, "stale": stale}))
"""


def measure(dtype: str, syncs: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(ROOT / "data" / "tiny-policy"), dtype, str(syncs),
         str(ROOT / "data" / "arith" / "train.parquet")],
        capture_output=True, text=True,
    )  # fmt: skip
    if out.returncode:
        return {"error": out.stderr.strip().splitlines()[-1]}
    line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def main() -> None:
    from pcbench.config import SYNC_TOLERANCE

    parser = argparse.ArgumentParser()
    parser.add_argument("--write", metavar="MD", help="also write the table into this file")
    parser.add_argument("--syncs", type=int, default=12)
    args = parser.parse_args()
    rows = []
    for dtype in ("float32", "bfloat16"):
        r = measure(dtype, args.syncs)
        tol = SYNC_TOLERANCE[dtype]
        if "error" in r:
            rows.append(f"| {dtype} | — | — | {tol:g} | not measured here: {r['error']} |")
            continue
        ok = max(r["synced"]) < tol < min(r["stale"])
        rows.append(
            f"| {dtype} | {min(r['synced']):.1e} – {max(r['synced']):.1e} "
            f"| {min(r['stale']):.1e} – {max(r['stale']):.1e} | {tol:g} "
            f"| {'between them' if ok else 'NOT between them'} |"
        )
    text = "\n".join([
        f"Weight-sync self-check on the tiny policy and CPU vLLM, {args.syncs} updates at lr 1e-3 "
        "per dtype: the probe's mean |Δ logprob| after a good sync, and before it (what a missed "
        "sync looks like), against pcbench's default tolerance for that dtype:",
        "",
        "| dtype | after the sync (min – max) | sync missed (min – max) | default tolerance "
        "| tolerance |",
        "|---|---|---|---|---|",
        *rows,
    ])  # fmt: skip
    publish(text, "bench-sync-tolerance", args.write)


if __name__ == "__main__":
    main()
