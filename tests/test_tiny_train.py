"""Training the tiny policy: a short run saves a loadable, deterministic model that learned."""

import json

import polars as pl
import pytest
import torch

from pcbench.tiny.tokenizer import build_tokenizer
from pcbench.tiny.train import (
    TinyConfig,
    collate,
    length_bucketed_batches,
    lr_at,
    model_config,
    train_tiny,
)

from conftest import ARITH

SHORT = TinyConfig(
    hidden_size=64, layers=2, intermediate_size=128, steps=6, batch_size=8, warmup_steps=2
)


@pytest.fixture(scope="module")
def small_split(tmp_path_factory):
    path = tmp_path_factory.mktemp("split") / "train.parquet"
    pl.read_parquet(ARITH / "train.parquet").head(200).write_parquet(path)
    return path


def weights(path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path).state_dict()


def test_short_run_is_deterministic_and_loadable(small_split, tmp_path):
    from transformers import AutoTokenizer, LlamaForCausalLM

    stats = train_tiny(small_split, tmp_path / "a", SHORT)
    train_tiny(small_split, tmp_path / "b", SHORT)
    train_tiny(small_split, tmp_path / "c", TinyConfig(**{**SHORT.__dict__, "seed": 1}))
    a, b, c = (weights(tmp_path / x) for x in "abc")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    assert stats["examples_seen"] == 48 and stats["parameters"] > 0
    # Every parameter tensor moved away from its initialisation (same seed, same init order).
    torch.manual_seed(SHORT.seed)
    init = LlamaForCausalLM(model_config(SHORT, build_tokenizer())).state_dict()
    assert not [k for k in init if torch.equal(init[k], a[k])]
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "a")
    assert tokenizer.chat_template and tokenizer.eos_token == "<|eos|>"


def test_a_fine_tune_starts_from_its_init_and_records_both_stages(small_split, tmp_path):
    base = train_tiny(small_split, tmp_path / "base", SHORT)
    source = {"prompts": 200, "seed": 2, "slip": [0, 0, 0.7, 0.7, 0.7], "slip_final_only": True}
    tuned = train_tiny(small_split, tmp_path / "tuned",
                       TinyConfig(**{**SHORT.__dict__, "init": str(tmp_path / "base")}), source)  # fmt: skip
    assert tuned["init"] == json.loads((tmp_path / "base" / "train_stats.json").read_text())
    assert tuned["init"]["final_loss"] == base["final_loss"]
    assert tuned["data"] == {"split": "train.parquet", **source}
    # it went on from the base: its weights moved on, and its loss starts where the base ended
    a, b = weights(tmp_path / "base"), weights(tmp_path / "tuned")
    assert not all(torch.equal(a[k], b[k]) for k in a)
    assert tuned["final_loss"] < base["final_loss"]


def test_loss_falls_on_a_fixed_batch(small_split, tmp_path):
    more = TinyConfig(**{**SHORT.__dict__, "steps": 40})
    stats = train_tiny(small_split, tmp_path / "m", more)
    first = train_tiny(small_split, tmp_path / "f", TinyConfig(**{**SHORT.__dict__, "steps": 1}))
    assert stats["final_loss"] < first["final_loss"] - 0.5


def test_collate_masks_everything_but_the_solution():
    ids, attn, labels = collate([([1, 5, 6, 7], [0, 0, 1, 1]), ([1, 8], [0, 1])], pad_id=0)
    assert ids.tolist() == [[1, 5, 6, 7], [1, 8, 0, 0]]
    assert attn.tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]
    assert labels.tolist() == [[-100, -100, 6, 7], [-100, 8, -100, -100]]


def test_batches_cover_every_example_once_and_group_similar_lengths():
    import random

    lengths = [random.Random(i).randint(10, 200) for i in range(1000)]
    drawn = list(range(1000)) + [7, 7]  # a weighted draw may repeat an example
    batches = length_bucketed_batches(drawn, lengths, 16, random.Random(0))
    assert sorted(i for b in batches for i in b) == sorted(drawn)
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches)
    assert spread / len(batches) < 40  # random batches of 16 would spread ~170


def test_learning_rate_schedule():
    cfg = TinyConfig(steps=100, warmup_steps=10, lr=1.0, min_lr_ratio=0.1)
    assert lr_at(0, cfg) == pytest.approx(0.1)
    assert lr_at(9, cfg) == pytest.approx(1.0)
    assert lr_at(99, cfg) == pytest.approx(0.1, abs=1e-3)
    with pytest.raises(ValueError, match="multiple of 64"):
        TinyConfig(hidden_size=100)
    with pytest.raises(ValueError, match="5 non-negative weights"):
        TinyConfig(difficulty_weights=(1.0, 2.0))
