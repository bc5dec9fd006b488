"""Train the embedded tiny policy: a small Llama fitted to worked arithmetic solutions by SFT.

The goal is not a good calculator but a policy that leaves room for RL and for allocation: at
temperature 1 it solves easy problems always, long multi-digit ones never, and the middle
sometimes (see `pcbench tiny profile`). Deterministic for a seed on CPU.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import polars as pl
import torch
from tqdm.auto import tqdm

from pcbench.tasks.templates import ARITH_CHAT_TEMPLATE
from pcbench.tiny.tokenizer import BOS, EOS, PAD, build_tokenizer, to_transformers


@dataclass(frozen=True)
class TinyConfig:
    hidden_size: int = 128  # 2 heads of 64 (a head size vLLM's CPU attention supports)
    layers: int = 4
    intermediate_size: int = 384
    max_positions: int = 256  # prompts plus completions of the arithmetic task fit well inside
    steps: int = 2500  # optimizer steps
    batch_size: int = 48  # sequences per step
    lr: float = 2.5e-3  # peak learning rate, after linear warm-up
    warmup_steps: int = 50
    min_lr_ratio: float = 0.1  # cosine decay ends at lr * this
    weight_decay: float = 0.01
    # Sampling weight of difficulty levels 1-5 in the SFT data (the split itself is uniform).
    difficulty_weights: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0, 1.0)
    seed: int = 0
    threads: int = 2  # torch CPU threads
    init: str = ""  # a saved policy to fine-tune instead of a fresh model (sizes then ignored)

    def __post_init__(self):
        if self.hidden_size % 64:
            raise ValueError(f"hidden_size={self.hidden_size}: use a multiple of 64 (head size 64)")
        if min(self.layers, self.steps, self.batch_size) < 1 or self.lr <= 0:
            raise ValueError("layers, steps, batch_size and lr must be positive")
        if len(self.difficulty_weights) != 5 or min(self.difficulty_weights) < 0:
            raise ValueError("difficulty_weights: give 5 non-negative weights, for levels 1-5")


def model_config(cfg: TinyConfig, tokenizer):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.layers,
        num_attention_heads=cfg.hidden_size // 64,
        num_key_value_heads=cfg.hidden_size // 64,
        max_position_embeddings=cfg.max_positions,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.token_to_id(BOS),
        eos_token_id=tokenizer.token_to_id(EOS),
        pad_token_id=tokenizer.token_to_id(PAD),
        dtype="float32",
    )


def encode_examples(tokenizer, prompts: list[str], solutions: list[str]):
    """Token ids of prompt+solution+EOS and a mask that is 1 on the solution and EOS."""
    eos = tokenizer.token_to_id(EOS)
    examples = []
    for p, s in zip(prompts, solutions, strict=True):
        p_ids = tokenizer.encode(p).ids  # BOS + prompt bytes: exactly what generation sees
        s_ids = tokenizer.encode(s, add_special_tokens=False).ids + [eos]
        examples.append((p_ids + s_ids, [0] * len(p_ids) + [1] * len(s_ids)))
    return examples


def collate(batch, pad_id: int):
    """Right-padded (B, T) input ids, attention mask and labels (-100 outside the solution)."""
    T = max(len(ids) for ids, _ in batch)
    ids = torch.full((len(batch), T), pad_id)
    attn = torch.zeros((len(batch), T), dtype=torch.long)
    labels = torch.full((len(batch), T), -100)
    for i, (x, m) in enumerate(batch):
        ids[i, : len(x)] = torch.tensor(x)
        attn[i, : len(x)] = 1
        labels[i, : len(x)] = torch.where(torch.tensor(m) == 1, torch.tensor(x), -100)
    return ids, attn, labels


def length_bucketed_batches(
    indices: list[int], lengths: list[int], batch_size: int, rng: random.Random
) -> list[list[int]]:
    """Shuffled batches of similar-length examples: padding to the batch maximum costs little.

    Examples are shuffled, cut into chunks of 32 batches, sorted by length inside each chunk and
    batched; the batch order is shuffled again so that lengths do not trend within an epoch.
    """
    order = rng.sample(indices, len(indices))
    chunk = 32 * batch_size
    batches = []
    for c in range(0, len(order), chunk):
        part = sorted(order[c : c + chunk], key=lengths.__getitem__)
        batches += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
    rng.shuffle(batches)
    return batches


def lr_at(step: int, cfg: TinyConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * (
        cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    )


def train_tiny(
    train_split: str | Path,
    out_dir: str | Path,
    cfg: TinyConfig = TinyConfig(),
    source: dict | None = None,
) -> dict:
    """Train on the split's (prompt, solution) pairs and save an HF model dir; returns stats.

    `source` describes the split for the record (e.g. the noisy teacher's slip rates); a
    fine-tune (cfg.init) carries the stats of the policy it started from under "init"."""
    from transformers import GenerationConfig, LlamaForCausalLM

    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    data = pl.read_parquet(train_split)
    tokenizer = build_tokenizer()
    examples = encode_examples(tokenizer, data["prompt"].to_list(), data["solution"].to_list())
    lengths = [len(ids) for ids, _ in examples]
    weights = [cfg.difficulty_weights[d - 1] for d in data["difficulty"]]
    model = (
        LlamaForCausalLM.from_pretrained(cfg.init, dtype=torch.float32)
        if cfg.init
        else LlamaForCausalLM(model_config(cfg, tokenizer))
    )
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    batches: list[list[int]] = []
    losses, start = [], time.perf_counter()
    bar = tqdm(range(cfg.steps), desc="tiny SFT", mininterval=5)
    for step in bar:
        if not batches:  # a new epoch: a weighted draw of len(examples) examples
            drawn = rng.choices(range(len(examples)), weights=weights, k=len(examples))
            batches = length_bucketed_batches(drawn, lengths, cfg.batch_size, rng)
        batch = [examples[i] for i in batches.pop()]
        ids, attn, labels = collate(batch, tokenizer.token_to_id(PAD))
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        loss = model(input_ids=ids, attention_mask=attn, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
        bar.set_postfix(loss=f"{sum(losses[-20:]) / len(losses[-20:]):.3f}")

    stats = {
        "parameters": sum(p.numel() for p in model.parameters()),
        "examples_seen": cfg.steps * cfg.batch_size,
        "train_examples": len(examples),
        "final_loss": sum(losses[-20:]) / len(losses[-20:]),
        "wall_seconds": round(time.perf_counter() - start, 1),
        "torch": torch.__version__,
        "config": asdict(cfg),
        "data": {"split": Path(train_split).name, **(source or {})},
    }
    init_stats = Path(cfg.init) / "train_stats.json" if cfg.init else None
    if init_stats and init_stats.exists():  # read before saving: out_dir may be cfg.init
        stats["init"] = json.loads(init_stats.read_text())
    save_policy(model, tokenizer, out_dir)
    GenerationConfig(
        bos_token_id=model.config.bos_token_id,
        eos_token_id=model.config.eos_token_id,
        pad_token_id=model.config.pad_token_id,
    ).save_pretrained(out_dir)
    (Path(out_dir) / "train_stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    return stats


def save_policy(model, tokenizer, out_dir: str | Path) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    to_transformers(tokenizer, ARITH_CHAT_TEMPLATE).save_pretrained(out)
