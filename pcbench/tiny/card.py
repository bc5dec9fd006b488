"""CARD.md of the tiny policy: what it is, how it was trained, and its measured profile."""

from __future__ import annotations

import json
import re
from pathlib import Path

from pcbench.tiny.profile import Profile

LEARNCHECK = "learncheck"  # the CARD.md block `pcbench tiny learncheck --card` writes


def stage_lines(stats: dict) -> list[str]:
    """One training stage (a train_stats.json) as card bullets."""
    cfg, data = stats["config"], stats.get("data", {})
    if data.get("slip"):
        levels = ", ".join(f"level {i} {p:g}" for i, p in enumerate(data["slip"], 1) if p)
        where = "at the boxed (last) step only" if data["slip_final_only"] else "at every step"
        source = (
            f"{data['prompts']:,} fresh arithmetic prompts (seed {data['seed']}, drawn apart from "
            f"the RL train split) with a noisy teacher's worked solutions: a step writes a value "
            f"one off ({where}) with probability {levels}"
        )
    else:
        source = (
            f"`data/arith/{data.get('split', 'train.parquet')}` ({stats['train_examples']:,} "
            "arithmetic prompts, difficulty 1-5), each prompt's worked solution + `<|eos|>`"
        )
    return [
        f"- Data: {source}; loss on the solution only.",
        f"- {cfg['steps']} AdamW steps x {cfg['batch_size']} sequences "
        f"({stats['examples_seen']:,} examples), lr {cfg['lr']} (warm-up {cfg['warmup_steps']}, "
        f"cosine to {cfg['min_lr_ratio']}x), weight decay {cfg['weight_decay']}, grad clip 1.0, "
        f"length-bucketed batches, seed {cfg['seed']}.",
        f"- Final training loss (mean of last 20 steps): {stats['final_loss']:.4f} nats/token; "
        f"wall time {stats['wall_seconds']:.0f} s on {cfg['threads']} CPU threads "
        f"(torch {stats['torch']}).",
    ]


def training_text(stats: dict) -> str:
    """The training stages, first to last (a fine-tune's stats carry its start's as "init")."""
    stages = [stats]
    while "init" in stages[0]:
        stages.insert(0, stages[0]["init"])
    if len(stages) == 1:
        return "\n".join(stage_lines(stats))
    names = ["Base SFT"] + [
        "Noisy-teacher fine-tune" if st.get("data", {}).get("slip") else "Fine-tune"
        for st in stages[1:]
    ]
    return "\n\n".join(
        f"Stage {i} — {name}:\n" + "\n".join(stage_lines(st))
        for i, (name, st) in enumerate(zip(names, stages, strict=True), 1)
    )


def write_card(model_dir: str | Path, profile: Profile, command: str) -> Path:
    model_dir = Path(model_dir)
    stats = json.loads((model_dir / "train_stats.json").read_text())
    training = training_text(stats) + "\n- Reproduce: `make tiny-policy` (see the Makefile)."
    cfg = stats["config"]
    while "init" in stats:  # the architecture is the base stage's
        stats, cfg = stats["init"], stats["init"]["config"]
    summary = profile.summary()
    weights = sum(f.stat().st_size for f in model_dir.glob("*.safetensors"))
    by_difficulty = "\n".join(
        f"| {r['difficulty']} | {r['prompts']} | {r['mean_accuracy']:.3f} | {r['frac_mixed']:.3f} |"
        for r in profile.by_difficulty().iter_rows(named=True)
    )
    text = f"""# pcbench tiny policy

A {stats["parameters"]:,}-parameter Llama-architecture causal LM ({cfg["layers"]} layers, hidden
{cfg["hidden_size"]}, {cfg["hidden_size"] // 64} heads of 64, MLP {cfg["intermediate_size"]}, tied
embeddings, float32, {weights / 2**20:.1f} MiB of safetensors) with a byte-level tokenizer (256 byte
tokens + `<|pad|>`, `<|bos|>`, `<|eos|>`; a plain tokenizer call prepends `<|bos|>`). It is
pcbench's embedded default policy: it runs on any CPU, under transformers and under vLLM.

## Training
{training}

## Profile (room for RL and for allocation)
`{command}`: the first {summary["prompts"]} prompts of `{profile.split}`,
{profile.samples} samples each at temperature {profile.temperature} (vLLM on CPU, seed {profile.seed}),
answers judged by math-verify.

| measure | value |
|---|---|
| mean accuracy | {summary["mean_accuracy"]:.3f} |
| prompts with pass rate 0 | {summary["frac_pass_0"]:.3f} |
| prompts with pass rate 1 | {summary["frac_pass_1"]:.3f} |
| prompts with 0 < pass rate < 1 | {summary["frac_mixed"]:.3f} |
| completions with a \\boxed{{}} answer | {summary["frac_boxed"]:.3f} |
| sampling + judging time | {summary["seconds"]:.0f} s |

| difficulty | prompts | mean accuracy | fraction mixed |
|---|---|---|---|
{by_difficulty}

Per-prompt pass rates:
```
{profile.histogram()}
```
"""
    path = model_dir / "CARD.md"
    old = path.read_text() if path.exists() else ""
    kept = re.search(f"<!-- begin {LEARNCHECK} -->.*?<!-- end {LEARNCHECK} -->", old, re.S)
    path.write_text(text.rstrip() + "\n" + (f"\n{kept.group(0)}\n" if kept else ""))
    return path
