"""Device check for issue 31 (one call, a few minutes): `pcbench profile` on a GPU.

    PYTHONPATH=. python bench/gpu_profile.py --out DIR [--device cuda] [--n 64] [--prompts 500]

A lent GPU machine has torch and transformers but no vLLM, so a real model profiled there runs
on the HF engine (transformers `generate`). This profiles the shipped tiny policy that way, at
the settings of `data/profiles/shipped-n64.json` (made on 2 CPU cores with vLLM: the first 500
training prompts x 64 rollouts, T 1, 64 tokens), and checks that the two engines measure the
same policy and hand `pcbench plan` the same regime:
  1. the shares of prompts never / always / sometimes solved, and the all-equal share by group
     size (exact subsampling), from each profile;
  2. per prompt, the two counts' difference in units of its binomial SE (z, pooled pass rate):
     mean z^2 is ~1 where both engines sample the same pass rates, and well above 1 where not;
  3. the plan (GRPO, paper Pilot-Commit at n 16 and at n 64 with p16c48) from each profile:
     rollouts per step, per informative rollout, keep share, and the advantage A.
Needs polars and math-verify (carried as wheels there). Prints a JSON summary and writes it,
the GPU's profile and a Markdown table to --out. `--device cpu --n 8 --prompts 16` is a smoke
test where there is no GPU (its comparison is against the first 16 prompts' counts at n 8).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "data/profiles/shipped-n64.json"
# The plan's settings compared: the regime study's two group sizes (configs/experiments/regime.toml).
SETTINGS = {"n16": [], "n64": ["pilot.n_pilot=16", "commit.n_commit=48"]}


def hf_config(device: str, seed: int):
    """configs/tiny-pc.toml on the HF engine: its vLLM-only setting (max_num_seqs) dropped."""
    from pcbench.config import load_config

    text = (ROOT / "configs/tiny-pc.toml").read_text().replace("max_num_seqs = 1024", "")
    path = Path(tempfile.mkdtemp()) / "tiny-pc.toml"  # same name, so the profile says tiny-pc
    path.write_text(text)
    return load_config(path, ["engine.kind=hf", f"engine.device={device}", f"seed={seed}"])


def subsampled(profile, n: int, prompts: int):
    """The reference profile cut to its first `prompts` prompts; below its N, each count scaled
    to k * n / N and rounded: a stand-in, not a sample, so only the smoke test uses it."""
    from pcbench.profile import PassRateProfile

    counts = profile.counts.head(prompts)
    if n == int(counts["n"].min()):
        return PassRateProfile(counts, profile.source, profile.meta)
    scaled = counts.with_columns(
        n_correct=(pl.col("n_correct") * n / pl.col("n")).round().cast(pl.Int64), n=pl.lit(n)
    )
    return PassRateProfile(scaled, profile.source + f" (scaled to n {n})", profile.meta)


def agreement(a, b) -> dict:
    """Per prompt (joined on prompt_id): z = (k_a/N_a - k_b/N_b) / SE under one pooled rate."""
    joined = a.counts.join(b.counts, on="prompt_id", suffix="_b")
    ka, na = joined["n_correct"].to_numpy(), joined["n"].to_numpy()
    kb, nb = joined["n_correct_b"].to_numpy(), joined["n_b"].to_numpy()
    pooled = (ka + kb) / (na + nb)
    se = np.sqrt(pooled * (1 - pooled) * (1 / na + 1 / nb))
    informative = se > 0  # both engines all-correct (or all-wrong): no spread to compare
    z = (ka / na - kb / nb)[informative] / se[informative]
    return {
        "prompts_joined": int(joined.height),
        "both_all_equal": int((~informative).sum()),
        "mean_z2": round(float(np.mean(z**2)), 3),
        "share_abs_z_over_2": round(float(np.mean(np.abs(z) > 2)), 3),
        "pass_rate_correlation": round(float(np.corrcoef(ka / na, kb / nb)[0, 1]), 4),
        "mean_pass_rate_difference": round(float(np.mean(ka / na - kb / nb)), 4),
    }


def plan_rows(mixture) -> list[dict]:
    from pcbench.config import load_config
    from pcbench.plan import predict

    rows = []
    for setting, sets in SETTINGS.items():
        for name in ("grpo", "pc"):
            p = predict(load_config(ROOT / f"configs/tiny-{name}.toml", sets), mixture)
            rows.append({"setting": setting, "strategy": name,
                         "rollouts_per_step": p.rollouts_per_step,
                         "per_informative": p.per_informative, "keep_share": p.keep_share})  # fmt: skip
    return rows


def markdown(summary: dict) -> str:
    g, c = summary["gpu"]["summary"], summary["cpu_vllm"]["summary"]
    lines = ["| measure | HF engine, GPU | vLLM, CPU (shipped) |", "|---|---|---|"]
    for key in ("mean_pass_rate", "share_0", "share_1", "share_between"):
        lines.append(f"| {key} | {g[key]:.4f} | {c[key]:.4f} |")
    for n, (x, y) in summary["all_equal"].items():
        lines.append(f"| all-equal share, n {n} | {x:.4f} | {y:.4f} |")
    for row_g, row_c in zip(summary["gpu"]["plan"], summary["cpu_vllm"]["plan"], strict=True):
        for key in ("rollouts_per_step", "per_informative", "keep_share"):
            if row_g[key] is not None:
                label = f"plan {row_g['strategy']} {row_g['setting']}: {key}"
                lines.append(f"| {label} | {row_g[key]:.4f} | {row_c[key]:.4f} |")
    for setting, (x, y) in summary["advantage"].items():
        lines.append(f"| plan: advantage A, {setting} | {x:.4f} | {y:.4f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/gpu-profile")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--prompts", type=int, default=500)
    ap.add_argument("--batch-size", type=int, default=1024, help="HF engine sequences a batch")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    import torch

    from pcbench.profile import PassRateProfile, profile_state
    from pcbench.state import setup_state

    start = time.perf_counter()
    cfg = hf_config(args.device, seed=0)
    state = setup_state(cfg, with_policy=False)
    # HFEngine's default of 64 sequences a batch is sized for a CPU; a GPU takes 1,024 of the
    # tiny policy's at once (a batch changes which sample is drawn, not what is sampled from)
    state.engine.batch_size = args.batch_size
    try:
        gpu = profile_state(state, cfg, n=args.n, prompts=args.prompts)
    finally:
        state.verifier.close()
    seconds = time.perf_counter() - start
    gpu.save(out / "profile-hf.json")
    ref = subsampled(PassRateProfile.load(REFERENCE), args.n, args.prompts)
    sizes = [n for n in (2, 4, 8, 16, 32, 64) if n <= args.n]
    curves = [p.all_equal_curve(args.n).filter(pl.col("n").is_in(sizes)) for p in (gpu, ref)]
    plans = [plan_rows(p.mixture) for p in (gpu, ref)]

    def advantage(rows):
        by = {(r["setting"], r["strategy"]): r["per_informative"] for r in rows}
        return {s: by[(s, "grpo")] / by[(s, "pc")] for s in SETTINGS}

    adv = [advantage(r) for r in plans]
    summary = {
        "device": torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu",
        "torch": torch.__version__,
        "profile_seconds": round(seconds, 1),
        "batch_size": args.batch_size,
        "samples": int(gpu.N.sum()),
        "gpu": {"source": gpu.source, "summary": gpu.summary(), "plan": plans[0]},
        "cpu_vllm": {"source": ref.source, "summary": ref.summary(), "plan": plans[1]},
        "all_equal": {
            str(n): [round(float(x), 4), round(float(y), 4)]
            for n, x, y in zip(sizes, curves[0]["measured"], curves[1]["measured"], strict=True)
        },
        "agreement": agreement(gpu, ref),
        "advantage": {s: [round(adv[0][s], 4), round(adv[1][s], 4)] for s in SETTINGS},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    (out / "table.md").write_text(markdown(summary) + "\n")
    print(json.dumps(summary, indent=1))
    print(markdown(summary))


if __name__ == "__main__":
    main()
