"""Engine throughput on a Pilot-Commit-shaped round, tiny policy, 2 CPU cores.

    .venv/bin/python bench/engines.py [--write docs/RESULTS.md]

One round = pilot of 64 fresh prompts x 16 + commit of 16 buffered prompts x 48, in one call.
Reports rollouts/s and tokens/s of raw `vllm.LLM.generate`, VLLMEngine (its overhead vs raw),
HFEngine, and the latency of a weight sync (reload + self-check). Then the engine settings:
`max_num_seqs` (an `[engine]` pass-through argument) swept over the calls the embedded default
makes, one fresh engine per value in a subprocess (vLLM allows one engine per process).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
from common import publish

from pcbench.config import SamplingConfig
from pcbench.engines import HFEngine, VLLMEngine
from pcbench.policy import Policy

ROOT = Path(__file__).resolve().parents[1]
POLICY = str(ROOT / "data/tiny-policy")


def workload() -> pl.DataFrame:
    prompts = pl.read_parquet(ROOT / "data/arith/test.parquet").head(80)
    return prompts.select("prompt_id", "prompt").with_columns(
        n=pl.Series([16] * 64 + [48] * 16), phase=pl.Series(["pilot"] * 64 + ["commit"] * 16)
    )


# The calls the embedded default makes (configs/tiny-pc.toml and tiny-grpo.toml, B 8, G 24,
# n 16): a Pilot-Commit round, a GRPO step, an evaluation of 1,000 prompts x 8; and the
# Pilot-Commit-shaped call above (the paper's proportions).
CALLS = {
    "PC round (24 x 4 + 8 x 12)": [4] * 24 + [12] * 8,
    "GRPO step (8 x 16)": [16] * 8,
    "eval (1,000 x 8)": [8] * 1000,
    "paper-shaped round (64 x 16 + 16 x 48)": [16] * 64 + [48] * 16,
}

SWEEP_SCRIPT = """
import json, sys, time
import polars as pl, torch
from vllm import SamplingParams
from pcbench.engines import VLLMEngine
policy, test, calls, args, repeats = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), \
    json.loads(sys.argv[4]), int(sys.argv[5])
engine = VLLMEngine(policy, max_model_len=256, engine_args=args)
prompts = pl.read_parquet(test)["prompt"].to_list()
engine.llm.generate(prompts[:4], SamplingParams(max_tokens=64), use_tqdm=False)  # warm-up
out = {}
for name, ns in calls.items():
    params = [SamplingParams(n=n, temperature=1.0, max_tokens=64) for n in ns]
    best = float("inf")
    for seed in range(repeats):
        torch.manual_seed(seed)
        start = time.perf_counter()
        engine.llm.generate(prompts[: len(ns)], params, use_tqdm=False)
        best = min(best, time.perf_counter() - start)
    out[name] = sum(ns) / best
print("RESULT", json.dumps(out))
"""


def sweep(values: list[int], repeats: int) -> dict[int, dict[str, float]]:
    """Rollouts/s of each default-shaped call at each max_num_seqs (best of `repeats`)."""
    results = {}
    for value in values:
        out = subprocess.run(
            [sys.executable, "-c", SWEEP_SCRIPT, POLICY, str(ROOT / "data/arith/test.parquet"),
             json.dumps(CALLS), json.dumps({"max_num_seqs": value} if value else {}),
             str(repeats)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT "))
        results[value] = json.loads(line.removeprefix("RESULT "))
    return results


def timed(fn, repeats: int = 3):
    """Best of `repeats` wall times, and the last result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    from vllm import SamplingParams

    parser = argparse.ArgumentParser()
    parser.add_argument("--write", metavar="MD", help="also write the table into this file")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--max-num-seqs", type=int, nargs="+", default=[0, 128, 512, 1024],
        help="engine.max_num_seqs values to sweep (0: unset, vLLM's own default)",
    )  # fmt: skip
    args = parser.parse_args()

    requests, sampling = workload(), SamplingConfig()
    engine = VLLMEngine(POLICY, max_model_len=256)
    engine.generate(requests.head(4), sampling)  # warm-up
    params = [
        SamplingParams(n=n, temperature=1.0, max_tokens=sampling.max_tokens, logprobs=0)
        for n in requests["n"]
    ]
    import torch

    def raw_call(seed):
        torch.manual_seed(seed)  # what VLLMEngine does per call: both sample the same tokens
        return engine.llm.generate(requests["prompt"].to_list(), params, use_tqdm=False)

    # Interleaved, same seed per pair: machine noise hits both alike, and both generate the
    # same completions, so the difference is the wrapper's work (frames, log-prob lists).
    raw_s = ours_s = float("inf")
    for seed in range(args.repeats):
        start = time.perf_counter()
        raw = raw_call(seed)
        raw_s = min(raw_s, time.perf_counter() - start)
        start = time.perf_counter()
        ours = engine.generate(requests, sampling, seed=seed)
        ours_s = min(ours_s, time.perf_counter() - start)
    raw_tokens = sum(len(c.token_ids) for o in raw for c in o.outputs)
    policy = Policy(POLICY)
    sync_s, _ = timed(lambda: engine.load_weights(policy, check=True))
    reload_s, _ = timed(
        lambda: engine.llm.collective_rpc(
            "reload_weights", kwargs={"weights_iterator": policy.named_weights()}
        )
    )
    hf = HFEngine(POLICY, max_model_len=256, batch_size=128)
    hf_s, hf_out = timed(lambda: hf.generate(requests, sampling), repeats=1)
    rollouts, tokens = int(requests["n"].sum()), int(ours["n_tokens"].sum())
    rows = [
        ("raw `vllm.LLM.generate`", rollouts / raw_s, raw_tokens / raw_s, ""),
        ("`VLLMEngine` (pcbench)", rollouts / ours_s, tokens / ours_s, f"{ours_s / raw_s - 1:+.1%}"),
        ("`HFEngine` (transformers)", rollouts / hf_s, int(hf_out["n_tokens"].sum()) / hf_s,
         f"{hf_s / raw_s - 1:+.0%}"),
    ]  # fmt: skip
    text = "\n".join(
        [
            f"One Pilot-Commit-shaped engine call: pilot of 64 prompts x 16 + commit of 16 x 48 "
            f"= {rollouts} rollouts, temperature 1, up to 64 tokens; best of {args.repeats} "
            "interleaved raw/ours pairs with the same seed (same completions); HF: one call.",
            "",
            "| engine | rollouts/s | tokens/s | time vs raw vLLM |",
            "|---|---|---|---|",
            *(f"| {name} | {r:,.0f} | {t:,.0f} | {d} |" for name, r, t, d in rows),
            "",
            f"Weight sync: `reload_weights` alone {reload_s:.3f} s; with the log-prob self-check "
            f"{sync_s:.3f} s (the check runs on the first sync and every "
            "`engine.sync_check_every` = 8th by default).",
            "",
            *sweep_table(sweep(args.max_num_seqs, repeats=3)),
        ]
    )
    publish(text, "bench-engines", args.write)


def sweep_table(results: dict[int, dict[str, float]]) -> list[str]:
    values = list(results)
    return [
        "`engine.max_num_seqs` (raw `vllm.LLM.generate`, rollouts/s, best of 3 per call, one "
        "fresh engine per value):",
        "",
        "| call | " + " | ".join(str(v) if v else "unset (vLLM's default)" for v in values) + " |",
        "|---|" + "---|" * len(values),
        *(f"| {call} | " + " | ".join(f"{results[v][call]:,.0f}" for v in values) + " |"
          for call in CALLS),
    ]  # fmt: skip


if __name__ == "__main__":
    main()
