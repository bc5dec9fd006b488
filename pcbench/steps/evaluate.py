"""evaluate: mean@k and pass@k per prompt, for any PROMPTS frame (one benchmark per source)."""

from __future__ import annotations

import polars as pl

from pcbench.algos import mean_at_k, pass_at_k
from pcbench.config import RunConfig, SamplingConfig
from pcbench.schema import EVALS
from pcbench.steps.rollouts import call_seed, generate, requests

EVAL_SALT = 1  # eval samples never share a seed with training rollouts


def eval_prompts(prompts: pl.DataFrame, max_prompts: int | None) -> pl.DataFrame:
    """The first max_prompts prompts of each source (benchmark), in file order."""
    if max_prompts is None:
        return prompts
    return prompts.filter(pl.int_range(pl.len()).over("source") < max_prompts)


def evaluate(engine, verifier, prompts: pl.DataFrame, cfg: RunConfig, step: int) -> pl.DataFrame:
    """PROMPTS -> EVALS: n samples per prompt (first max_prompts per source); not counted."""
    ec = cfg.eval
    n = ec.n or ec.k
    chosen = eval_prompts(prompts, ec.max_prompts)
    sampling = SamplingConfig(ec.temperature, ec.top_p, cfg.sampling.max_tokens)
    reqs = requests(chosen["prompt_id"], n, "eval")
    seed = call_seed(cfg.seed, step, 0, salt=EVAL_SALT)
    rollouts = generate(engine, verifier, reqs, chosen, sampling, step=step, seed=seed)
    counts = rollouts.group_by("prompt_id", maintain_order=True).agg(
        pl.col("correct").fill_null(False).sum().alias("c"), pl.len().alias("n")
    )
    evals = counts.join(chosen.select("prompt_id", "source"), on="prompt_id").select(
        pl.lit(step, pl.Int64).alias("step"),
        pl.col("source").alias("benchmark"),
        "prompt_id",
        pl.lit(ec.k, pl.Int64).alias("k"),
        pl.struct("n", "c")
        .map_elements(lambda r: mean_at_k(r["n"], r["c"]), return_dtype=pl.Float64)
        .alias("mean@k"),
        pl.struct("n", "c")
        .map_elements(lambda r: pass_at_k(r["n"], r["c"], ec.k), return_dtype=pl.Float64)
        .alias("pass@k"),
    )
    return EVALS.check(evals)


def eval_summary(evals: pl.DataFrame) -> pl.DataFrame:
    """One row per (step, benchmark): prompts, mean@k, pass@k."""
    return (
        evals.group_by("step", "benchmark", "k")
        .agg(pl.len().alias("prompts"), pl.col("mean@k").mean(), pl.col("pass@k").mean())
        .sort("step", "benchmark")
    )
