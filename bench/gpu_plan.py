"""Does the memory plan hold? The 1-GPU preset's policy side, measured on a lent GPU.

    PYTHONPATH=. python bench/gpu_plan.py [--out DIR] [--layers 28] [--length 4096]

Runs where only torch and transformers are installed (no vLLM, no polars, no tomllib needed).
A random-init model of Qwen2.5-Math-1.5B's published config (configs/models/), built as
`Policy(dtype="bfloat16", device="cuda", gradient_checkpointing=True)` (fp32 masters and AdamW),
then one update of configs/qwen2.5-math-1.5b-pc-1gpu.toml's shape: micro-batches of 4
sequences x `--length` tokens (the preset's max_model_len), old-policy log-probs without grad,
the PPO-clip loss, backward, AdamW. Reports the memory after loading, the peak of the update,
seconds per micro-batch, and the plan's terms for the same shapes (pcbench.memory), so the
plan's estimate can be compared with what CUDA allocated.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
GiB = 2**30


def build(path: Path, layers: int) -> dict:
    from transformers import AutoConfig, AutoModelForCausalLM

    raw = json.loads((ROOT / "configs/models/Qwen--Qwen2.5-Math-1.5B.json").read_text())
    raw |= {
        "num_hidden_layers": layers,
        "bos_token_id": 257,
        "eos_token_id": 258,
        "pad_token_id": 256,
    }  # fmt: skip  (the tiny byte tokenizer's ids, all < vocab)
    config = AutoConfig.for_model(**raw)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).to(torch.bfloat16).save_pretrained(path)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        if (ROOT / "data/tiny-policy" / name).exists():
            shutil.copy(ROOT / "data/tiny-policy" / name, path / name)
    return raw


def main() -> None:
    import numpy as np
    from transformers import AutoConfig

    from pcbench.algos import grpo_advantages, ppo_clip_loss
    from pcbench.config import load_config
    from pcbench.memory import memory_plan, parameter_count
    from pcbench.policy import Policy, TokenBatch, make_batch

    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=".")
    parser.add_argument("--layers", type=int, default=28)  # Qwen2.5-Math-1.5B: 28
    parser.add_argument("--length", type=int, default=4096)  # the preset's max_model_len
    parser.add_argument("--micro-batches", type=int, default=2)
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    cuda = args.device == "cuda"
    cfg = load_config(ROOT / "configs/qwen2.5-math-1.5b-pc-1gpu.toml",
                      [f"engine.max_model_len={args.length}", f"engine.device={args.device}"])  # fmt: skip
    micro = cfg.update.micro_batch_size
    with tempfile.TemporaryDirectory() as tmp:
        raw = build(Path(tmp), args.layers)
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        policy = Policy(tmp, cfg.update, dtype="bfloat16", device=args.device,
                        gradient_checkpointing=True)  # fmt: skip
    loaded = torch.cuda.memory_allocated() if cuda else 0
    params = sum(p.numel() for p in policy.model.parameters())
    rows = micro * args.micro_batches
    ids = torch.randint(0, 256, (rows, args.length))
    prompt = 1024 if args.length > 2048 else args.length // 4
    batch = make_batch([r[:prompt].tolist() for r in ids], [r[prompt:].tolist() for r in ids], 256)
    rng = np.random.default_rng(0)
    adv = torch.tensor(grpo_advantages(rng.integers(0, 2, rows).astype(float), np.arange(rows) // 4),
                       dtype=torch.float32, device=args.device)  # fmt: skip
    mask = batch.completion_mask.to(args.device)

    def rows_of(k):
        sl = slice(k * micro, (k + 1) * micro)
        return TokenBatch(batch.input_ids[sl], batch.attention_mask[sl], batch.completion_mask[sl])

    times = {"old_logprobs": [], "forward_backward": [], "optimizer": []}
    for k in range(args.micro_batches):
        part = rows_of(k)
        t = time.perf_counter()
        with torch.no_grad():
            old = policy.logprobs(part)
        torch.cuda.synchronize() if cuda else None
        times["old_logprobs"].append(time.perf_counter() - t)
        t = time.perf_counter()
        sl = slice(k * micro, (k + 1) * micro)
        loss, _ = ppo_clip_loss(policy.logprobs(part), old, adv[sl], mask[sl])
        (loss / args.micro_batches).backward()
        torch.cuda.synchronize() if cuda else None
        times["forward_backward"].append(time.perf_counter() - t)
    backward_peak = torch.cuda.max_memory_allocated() if cuda else 0
    t = time.perf_counter()
    policy.step()
    torch.cuda.synchronize() if cuda else None
    times["optimizer"].append(time.perf_counter() - t)
    plan = memory_plan(
        cfg, AutoConfig.for_model(**raw), parameter_count(AutoConfig.for_model(**raw))
    )
    result = {
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "torch": torch.__version__, "parameters": params, "layers": args.layers,
        "micro_batch": [micro, args.length], "micro_batches": args.micro_batches,
        "loaded_gib": round(loaded / GiB, 2),
        "backward_peak_gib": round(backward_peak / GiB, 2),
        "peak_gib": round(torch.cuda.max_memory_allocated() / GiB, 2) if cuda else None,
        "checkpointing": bool(policy.model.is_gradient_checkpointing and policy.model.training),
        "seconds": {k: [round(x, 3) for x in v] for k, v in times.items()},
        "plan_gib": {k: round(getattr(plan, k) / GiB, 2) for k in
                     ("weights", "masters", "grads", "optimizer", "activations", "logits", "policy")},
    }  # fmt: skip
    print(json.dumps(result, indent=1))
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "gpu_plan.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
