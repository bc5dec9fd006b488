"""Engine throughput on a Pilot-Commit-shaped round, tiny policy, 2 CPU cores.

    .venv/bin/python bench/engines.py [--write docs/RESULTS.md]

One round = pilot of 64 fresh prompts x 16 + commit of 16 buffered prompts x 48, in one call.
Reports rollouts/s and tokens/s of raw `vllm.LLM.generate`, VLLMEngine (its overhead vs raw),
HFEngine, and the latency of a weight sync (reload + self-check).
"""

from __future__ import annotations

import argparse
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
    args = parser.parse_args()

    requests, sampling = workload(), SamplingConfig()
    engine = VLLMEngine(POLICY, max_model_len=256)
    engine.generate(requests.head(4), sampling)  # warm-up
    params = [
        SamplingParams(n=n, temperature=1.0, max_tokens=sampling.max_tokens, logprobs=0)
        for n in requests["n"]
    ]
    raw_s, raw = timed(
        lambda: engine.llm.generate(requests["prompt"].to_list(), params, use_tqdm=False)
    )
    raw_tokens = sum(len(c.token_ids) for o in raw for c in o.outputs)
    ours_s, ours = timed(lambda: engine.generate(requests, sampling))
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
            f"= {rollouts} rollouts, temperature 1, up to 64 tokens; best of 3 (HF: 1).",
            "",
            "| engine | rollouts/s | tokens/s | time vs raw vLLM |",
            "|---|---|---|---|",
            *(f"| {name} | {r:,.0f} | {t:,.0f} | {d} |" for name, r, t, d in rows),
            "",
            f"Weight sync: `reload_weights` alone {reload_s:.3f} s; with the log-prob self-check "
            f"{sync_s:.3f} s (the check runs on the first sync and every "
            "`engine.sync_check_every` = 8th by default).",
        ]
    )
    publish(text, "bench-engines", args.write)


if __name__ == "__main__":
    main()
