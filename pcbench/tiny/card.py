"""CARD.md of the tiny policy: what it is, how it was trained, and its measured profile."""

from __future__ import annotations

import json
from pathlib import Path

from pcbench.tiny.profile import Profile


def write_card(model_dir: str | Path, profile: Profile, command: str) -> Path:
    model_dir = Path(model_dir)
    stats = json.loads((model_dir / "train_stats.json").read_text())
    cfg = stats["config"]
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
- Data: `data/arith/train.parquet` ({stats["train_examples"]:,} arithmetic prompts, difficulty
  1-5), supervised fine-tuning on each prompt's worked solution + `<|eos|>` (loss on the solution only).
- {cfg["steps"]} AdamW steps x {cfg["batch_size"]} sequences ({stats["examples_seen"]:,} examples),
  lr {cfg["lr"]} (warm-up {cfg["warmup_steps"]}, cosine to {cfg["min_lr_ratio"]}x), weight decay
  {cfg["weight_decay"]}, grad clip 1.0, length-bucketed batches, seed {cfg["seed"]}.
- Final training loss (mean of last 20 steps): {stats["final_loss"]:.4f} nats/token.
- Wall time: {stats["wall_seconds"]:.0f} s on {cfg["threads"]} CPU threads (torch {stats["torch"]}).
- Reproduce: `pcbench tiny train` (then `pcbench tiny profile --card`).

## Profile (room for RL and for allocation)
`{command}`: the first {summary["prompts"]} prompts of `data/arith/test.parquet`,
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
    path.write_text(text)
    return path
