"""Engine throughput on a Pilot-Commit-shaped round, tiny policy, 2 CPU cores.

    .venv/bin/python bench/engines.py

One round = pilot of 64 fresh prompts x 16 + commit of 16 buffered prompts x 48, in one call.
Reports rollouts/s and tokens/s of raw `vllm.LLM.generate`, VLLMEngine (its overhead vs raw),
HFEngine, and the latency of a weight sync (reload + self-check).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import polars as pl

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
    sync_s, _ = timed(lambda: engine.load_weights(policy))
    reload_s, _ = timed(
        lambda: engine.llm.collective_rpc(
            "reload_weights", kwargs={"weights_iterator": policy.named_weights()}
        )
    )
    hf = HFEngine(POLICY, max_model_len=256, batch_size=128)
    hf_s, hf_out = timed(lambda: hf.generate(requests, sampling), repeats=1)
    rollouts = int(requests["n"].sum())
    print(
        json.dumps(
            {
                "rollouts_per_round": rollouts,
                "raw_vllm": {
                    "rollouts_per_s": round(rollouts / raw_s),
                    "tokens_per_s": round(raw_tokens / raw_s),
                },
                "VLLMEngine": {
                    "rollouts_per_s": round(rollouts / ours_s),
                    "tokens_per_s": round(int(ours["n_tokens"].sum()) / ours_s),
                    "overhead_vs_raw": f"{(ours_s / raw_s - 1):+.1%}",
                },
                "HFEngine": {
                    "rollouts_per_s": round(rollouts / hf_s),
                    "tokens_per_s": round(int(hf_out["n_tokens"].sum()) / hf_s),
                },
                "weight_sync_s": {
                    "reload_weights": round(reload_s, 3),
                    "load_weights_with_check": round(sync_s, 3),
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
