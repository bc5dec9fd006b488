"""Profile a policy on the arithmetic test split: per-prompt pass rates at temperature 1.

This is the check that the embedded default leaves room for allocation: Pilot-Commit only
matters when some prompts are always solved, some never, and many sometimes.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from pcbench.config import SamplingConfig
from pcbench.verify import Verifier


@dataclass(frozen=True)
class Profile:
    per_prompt: pl.DataFrame  # prompt_id, difficulty, n, n_correct, n_boxed, pass_rate
    samples: int
    temperature: float
    seed: int
    seconds: float
    split: str = ""  # the prompts profiled (a PROMPTS parquet)

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

    def pass_rates(self):
        """The same counts as a `pcbench.profile.PassRateProfile` (fit, curve, plan)."""
        from pcbench.profile import PassRateProfile

        return PassRateProfile(self.per_prompt.select("prompt_id", "difficulty", "n", "n_correct"),
                               f"{self.split}: {self.per_prompt.height} prompts x {self.samples}, "
                               f"T {self.temperature:g}", {"seed": self.seed})  # fmt: skip

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


def profile_policy(
    model_dir: str | Path,
    split: str | Path,
    *,
    prompts: int = 500,
    samples: int = 16,
    temperature: float = 1.0,
    seed: int = 0,
    max_tokens: int = 160,
    engine=None,
) -> Profile:
    """Sample each of the first `prompts` prompts of `split` `samples` times and judge every
    answer (the RL train split is what the organism criteria and the keep band see).

    Pass `engine` (a VLLMEngine of the model) to reuse a loaded one, e.g. in tests; otherwise
    a fresh engine seeded with `seed` makes the profile reproducible.
    """
    from pcbench.engines import VLLMEngine
    from pcbench.profile import sample_counts

    test = pl.read_parquet(split).head(prompts)
    start = time.perf_counter()
    engine = engine or VLLMEngine(str(model_dir), max_model_len=256, seed=seed)
    sampling = SamplingConfig(temperature=temperature, max_tokens=max_tokens)
    with Verifier(workers=1) as verifier:  # the general profile's sampling (pcbench profile)
        rows = sample_counts(engine, verifier, test, samples, sampling, seed)
    per_prompt = rows.with_columns(pass_rate=pl.col("n_correct") / pl.col("n"))
    seconds = time.perf_counter() - start
    return Profile(per_prompt, samples, temperature, seed, seconds, str(split))
