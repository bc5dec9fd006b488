"""GPU check (one device call, a few minutes): pcbench's policy side on CUDA in bf16.

    PYTHONPATH=. python bench/gpu_check.py [--out DIR]

Runs where torch and transformers are installed and polars is carried as a wheel (the lent GPU
machines: no vLLM, no polars, no downloads; `pcbench.config` imports the strategy registry,
which needs polars, since issue 32), so it uses what of pcbench needs nothing more: `Policy`
(bf16 compute, fp32 master weights and AdamW state, memory-lean log-probs) and the loss and
advantages of `pcbench.algos`. On a random-init model with Qwen2.5-0.5B's shape and vocabulary (151,936):
  1. sampling throughput of the compute copy (transformers `generate`, what HFEngine runs);
  2. a few real update steps (GRPO advantages of random rewards, PPO-clip loss over the
     policy's log-probs): step time, peak memory, and how far the fp32 masters move at the
     paper's lr 1e-6 (~lr per step) vs plain bf16 AdamW (updates rounded away);
  3. log-probs of B 8 x T 2,048 tokens, forward + backward: peak memory of the full-vocabulary
     log_softmax vs the chunked computation, and their agreement.
Prints a JSON summary and writes it (and a Markdown table) to --out.
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
DEVICE = "cuda"  # --device cpu: a smoke test of this script where there is no GPU
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja")


def sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def reset_peak() -> int:
    """Reset the peak-memory counter; returns the memory allocated now (0 on CPU)."""
    if DEVICE != "cuda":
        return 0
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    return torch.cuda.memory_allocated()


def peak_gib(base: int = 0) -> float | None:
    return (
        round((torch.cuda.max_memory_allocated() - base) / 2**30, 2) if DEVICE == "cuda" else None
    )


def qwen_like(path: Path, layers: int) -> None:
    """A random model with Qwen2.5-0.5B's widths and vocabulary, and the tiny byte tokenizer
    (its ids are < 259, all inside the vocabulary), saved where Policy can load it."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    cfg = Qwen2Config(vocab_size=151_936, hidden_size=896, intermediate_size=4_864,
                      num_hidden_layers=layers, num_attention_heads=14, num_key_value_heads=2,
                      max_position_embeddings=4_096, tie_word_embeddings=True,
                      bos_token_id=257, eos_token_id=258, pad_token_id=256)  # fmt: skip
    torch.manual_seed(0)
    Qwen2ForCausalLM(cfg).to(torch.bfloat16).save_pretrained(path)
    for name in TOKENIZER_FILES:
        if (ROOT / "data/tiny-policy" / name).exists():
            shutil.copy(ROOT / "data/tiny-policy" / name, path / name)


def sampling(policy, prompts: int, new_tokens: int) -> dict:
    ids = torch.randint(0, 256, (prompts, 64), device=DEVICE)
    sync()
    start = time.perf_counter()
    with torch.no_grad():
        out = policy.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                    do_sample=True, temperature=1.0, max_new_tokens=new_tokens,
                                    min_new_tokens=new_tokens, pad_token_id=256)  # fmt: skip
    sync()
    seconds = time.perf_counter() - start
    generated = (out.shape[1] - ids.shape[1]) * prompts
    return {"rollouts": prompts, "new_tokens": new_tokens, "seconds": round(seconds, 2),
            "tokens_per_s": round(generated / seconds)}  # fmt: skip


def update_steps(policy, steps: int, rows: int, length: int, group: int) -> dict:
    import numpy as np

    from pcbench.algos import grpo_advantages, ppo_clip_loss
    from pcbench.policy import make_batch

    rng = np.random.default_rng(0)
    ids = torch.randint(0, 256, (rows, length))
    batch = make_batch([r[:64].tolist() for r in ids], [r[64:].tolist() for r in ids], 256)
    rewards = rng.integers(0, 2, rows).astype(float)
    adv = torch.tensor(grpo_advantages(rewards, np.arange(rows) // group), dtype=torch.float32)
    start_masters = [m.detach().clone() for m in policy.masters]
    mask = batch.completion_mask.to(DEVICE)
    times = []
    reset_peak()
    for _ in range(steps):
        sync()
        t = time.perf_counter()
        with torch.no_grad():
            old = policy.logprobs(batch)
        loss, _ = ppo_clip_loss(policy.logprobs(batch), old, adv.to(DEVICE), mask)
        policy.step(loss)
        sync()
        times.append(time.perf_counter() - t)
    moved = torch.cat([(m.detach() - s).abs().flatten()
                       for m, s in zip(policy.masters, start_masters, strict=True)])  # fmt: skip
    return {"steps": steps, "rollouts": rows, "tokens_per_rollout": length,
            "step_seconds": [round(x, 3) for x in times],
            "peak_gib": peak_gib(),
            "masters_mean_abs_move": float(moved.mean()),
            "expected_about": steps * policy.update.lr}  # fmt: skip


def plain_bf16_move(path: Path, steps: int, lr: float) -> float:
    """The failure the masters fix: AdamW straight on bf16 weights (the previous Policy)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16).to(DEVICE)
    start = [p.detach().float().clone() for p in model.parameters()]
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    ids = torch.randint(0, 256, (8, 256), device=DEVICE)
    for _ in range(steps):
        model(input_ids=ids, labels=ids).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    moved = torch.cat([(p.detach().float() - s).abs().flatten()
                       for p, s in zip(model.parameters(), start, strict=True)])  # fmt: skip
    del model, opt
    reset_peak()
    return float(moved.mean())


def logprob_memory(policy, rows: int, length: int) -> dict:
    from pcbench.logprobs import make_batch, token_logprobs

    ids = torch.randint(0, 256, (rows, length))
    batch = make_batch([r[:64].tolist() for r in ids], [r[64:].tolist() for r in ids], 256)
    model, out = policy.model, {}

    def full():
        logits = model(input_ids=batch.input_ids.to(DEVICE),
                       attention_mask=batch.attention_mask.to(DEVICE)).logits  # fmt: skip
        lp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
        lp = lp.gather(-1, batch.input_ids[:, 1:, None].to(DEVICE))[..., 0]
        return torch.nn.functional.pad(lp, (1, 0)) * batch.completion_mask.to(DEVICE)

    for name, fn in (("chunked", lambda: token_logprobs(model, batch, DEVICE)), ("full", full)):
        base = reset_peak()
        try:
            sync()
            t = time.perf_counter()
            lp = fn()
            (lp.sum() / batch.completion_mask.sum()).backward()
            sync()
            out[name] = {"extra_peak_gib": peak_gib(base), "values": lp.detach(),
                         "seconds": round(time.perf_counter() - t, 3)}  # fmt: skip
        except torch.OutOfMemoryError:
            out[name] = {"extra_peak_gib": "out of memory", "values": None}
        model.zero_grad(set_to_none=True)
    a, b = out["chunked"].pop("values"), out["full"].pop("values")
    out["max_abs_diff"] = None if a is None or b is None else float((a - b).abs().max())
    return {"rows": rows, "tokens": length, **out}


def main() -> None:
    from pcbench.config import UpdateConfig
    from pcbench.policy import Policy

    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=".")
    parser.add_argument("--layers", type=int, default=24)  # Qwen2.5-0.5B: 24
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--small", action="store_true", help="toy sizes (a CPU smoke test)")
    args = parser.parse_args()
    import transformers

    global DEVICE
    DEVICE = args.device
    sizes = (dict(prompts=2, new_tokens=8, rows=4, length=80, lp_rows=2, lp_length=96)
             if args.small else
             dict(prompts=64, new_tokens=256, rows=32, length=512, lp_rows=8, lp_length=2048))  # fmt: skip
    name = torch.cuda.get_device_name() if DEVICE == "cuda" else "cpu"
    report = {"device": name, "torch": torch.__version__,
              "transformers": transformers.__version__}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "qwen-like"
        qwen_like(path, args.layers)
        update = UpdateConfig(lr=1e-6, warmup_steps=0, weight_decay=0.0)
        policy = Policy(path, update, dtype="bfloat16", device=DEVICE)
        n = sum(p.numel() for p in policy.model.parameters())
        report["model"] = {"parameters": n, "layers": args.layers, "vocab": 151_936}
        report["sampling"] = sampling(policy, sizes["prompts"], sizes["new_tokens"])
        report["update"] = update_steps(policy, 4, sizes["rows"], sizes["length"], group=4)
        report["plain_bf16_adamw_mean_abs_move"] = plain_bf16_move(path, 4, 1e-6)
        report["logprobs"] = logprob_memory(policy, sizes["lp_rows"], sizes["lp_length"])
    print(json.dumps(report, indent=1))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_check.json").write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
