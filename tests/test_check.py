"""`pcbench check`, the memory plan, sharded dataset paths and `pcbench data fetch` (no engine;
real files on disk, real transformers configs)."""

import json
import shutil
from pathlib import Path

import polars as pl
import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from pcbench.check import OFFLINE_CONFIGS, check
from pcbench.cli import main
from pcbench.config import ConfigError, load_config
from pcbench.memory import GiB, memory_plan, parameter_count
from pcbench.policy import Policy
from pcbench.state import check_files, load_prompts
from pcbench.tasks import DatasetError, TextTemplate, load_benchmark
from pcbench.tasks.fetch import FetchError, fetch

from conftest import ROOT, TINY_POLICY

CONFIGS = sorted((ROOT / "configs").glob("*.toml"))


def test_every_shipped_config_checks_clean(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)  # configs name their files relative to the repository root
    assert len(CONFIGS) >= 12
    assert main(["check", *map(str, CONFIGS)]) == 0
    out = capsys.readouterr().out
    assert "error" not in out
    reports = {p.name: check(p) for p in CONFIGS}
    for name, report in reports.items():
        statuses = {s for s, _ in report.findings}
        if name.startswith("tiny"):  # everything is shipped: nothing to download
            assert statuses <= {"ok", "plan", "info"}, report.text()
            assert any(m.startswith("vocab: tokenizer 259") for _, m in report.findings)
        else:  # the presets need the model (and data, unless fetched): said so, not an error
            assert "download" in statuses and "error" not in statuses, report.text()
            fetched = any((ROOT / "data" / "deepmath").glob("data/train-*.parquet"))
            assert fetched or any("pcbench data fetch deepmath" in m for _, m in report.findings)
            gpu = ("total", "a training rank's GPU")  # one GPU, or a cluster's ranks apart
            assert any(m.startswith(gpu) and "of 80.0 GiB" in m for _, m in report.findings)


def test_check_reports_what_would_fail_and_exits_2(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    bad = tmp_path / "bad.toml"
    bad.write_text(
        f'inherit = "{ROOT / "configs" / "tiny-pc.toml"}"\n'
        'test = "data/arith/nowhere-*.parquet"\n'
        "[sampling]\nmax_tokens = 600\n[engine]\nmax_model_len = 512\n"
    )
    report = check(bad)
    errors = [m for s, m in report.findings if s == "error"]
    assert not report.ok and len(errors) == 3, report.text()
    assert "exceeds the model's 256 positions" in errors[1]
    assert "no file matches this pattern" in errors[0]
    assert "sampling.max_tokens = 600 leaves no room" in errors[2]
    nowhere = tmp_path / "nowhere.toml"
    nowhere.write_text(
        f'inherit = "{ROOT / "configs" / "tiny-pc.toml"}"\nmodel = "data/no-policy"\n'
    )
    assert [m for s, m in check(nowhere).findings if s == "error"] == [
        "model = data/no-policy: no such directory"
    ]
    invalid = tmp_path / "invalid.toml"
    invalid.write_text('inherit = "' + str(ROOT / "configs" / "tiny-pc.toml") + '"\nsteps = 0\n')
    assert main(["check", str(invalid), str(bad)]) == 2
    assert "2 of 2 configs have errors" in capsys.readouterr().err


def test_a_plan_that_does_not_fit_is_an_error(monkeypatch):
    monkeypatch.chdir(ROOT)
    preset = ROOT / "configs" / "qwen2.5-math-1.5b-pc-1gpu.toml"
    assert check(preset, gpu_gib=80).ok
    small = check(preset, gpu_gib=40)  # vLLM's 0.45 x 40 = 18 GiB leaves 22 for a 31.6 policy
    assert any(s == "error" and "of GPU memory" in m for s, m in small.findings), small.text()


def test_the_4b_to_14b_presets_fit_only_sharded(monkeypatch):
    """One node of 8 x 80 GB: each of the Qwen3 4B/8B/14B presets fits a training rank with
    its state sharded over 4 ranks; replicated (~20 bytes a parameter on every rank at the
    optimizer step) none does, not even the 4B (82 GiB), and the 14B fits at 2 and 4 nodes too
    (--set, as `pcbench check` takes it)."""
    monkeypatch.chdir(ROOT)
    for size in ("4b", "8b", "14b"):
        preset = ROOT / "configs" / f"qwen3-{size}-pc.toml"
        assert check(preset).ok, check(preset).text()
        whole = check(preset, overrides=["cluster.train_sharding='replicate'"])
        assert not whole.ok and "of GPU memory" in whole.text(), whole.text()
    preset = ROOT / "configs" / "qwen3-14b-pc.toml"
    for ranks in (8, 16):
        wider = [f"cluster.engines={ranks}", f"cluster.train_workers={ranks}"]
        assert check(preset, overrides=wider).ok


def test_a_sharded_plan_divides_the_fp32_state_and_gathers_the_root_and_two_layers():
    qwen = AutoConfig.for_model(
        **json.loads((OFFLINE_CONFIGS / "Qwen--Qwen3-8B-Base.json").read_text())
    )
    cfg = load_config(ROOT / "configs" / "qwen3-8b-pc.toml")
    params = parameter_count(qwen)
    plan = memory_plan(cfg, qwen, params)
    assert plan.shards == 4 and not plan.colocated
    assert (plan.masters, plan.grads, plan.optimizer, plan.temporaries) == (
        params,
        params,
        2 * params,
        params,
    )  # fmt: skip  -- 4, 4, 8 and 4 bytes a parameter, over 4 ranks
    root = 151936 * 4096 * 2  # untied: embeddings and head
    layer = (params - root) // 36
    assert plan.weights == 2 * (root + 2 * layer)  # bf16
    assert plan.total == plan.policy  # the replicas' GPUs are not the ranks'
    # a replica holds the whole bf16 model and a KV cache beside it on its own GPU
    kv = (int(0.9 * 80 * GiB) - 2 * params - 2 * GiB) // (2 * 36 * 8 * 128 * 2)
    assert plan.kv_tokens == kv


def test_parameter_count_is_exact_for_the_tiny_policy_and_the_published_qwen():
    policy = Policy(str(TINY_POLICY))
    real = sum(p.numel() for p in policy.model.parameters())
    assert parameter_count(AutoConfig.from_pretrained(TINY_POLICY)) == real
    qwen = json.loads((OFFLINE_CONFIGS / "Qwen--Qwen2.5-Math-1.5B.json").read_text())
    assert round(parameter_count(AutoConfig.for_model(**qwen)) / 1e9, 3) == 1.544  # 1.54B


def test_memory_plan_terms_follow_the_precision_and_checkpointing():
    qwen = AutoConfig.for_model(
        **json.loads((OFFLINE_CONFIGS / "Qwen--Qwen2.5-Math-1.5B.json").read_text())
    )
    cfg = load_config(ROOT / "configs" / "qwen2.5-math-1.5b-pc-1gpu.toml")
    params = 1_000_000_000
    plan = memory_plan(cfg, qwen, params)
    assert (plan.weights, plan.masters, plan.grads, plan.optimizer) == (
        2 * params, 4 * params, 4 * params, 8 * params,
    )  # fmt: skip
    assert plan.engine == int(0.45 * 80 * GiB) and plan.kv_per_token == 2 * 28 * 2 * 128 * 2
    # AdamW's step (fp32 grads + state + temporaries, 22 bytes/param) outweighs the backward
    assert plan.policy == plan.step == 22 * params > plan.backward
    fp32 = load_config(
        ROOT / "configs" / "qwen2.5-math-1.5b-pc-1gpu.toml",
        ["engine.dtype=float32", "engine.gradient_checkpointing=false"],
    )
    plain = memory_plan(fp32, qwen, params)
    assert plain.masters == 0 and plain.weights == 4 * params
    assert plain.activations > 5 * plan.activations  # every layer's activations kept, in fp32


def test_uniform_commit_needs_no_value_per_cost_bounds():
    cfg = load_config(ROOT / "configs" / "qwen2.5-math-1.5b-pc.toml")
    assert cfg.commit.n_commit == 96 > cfg.commit.max_commit
    with pytest.raises(ConfigError, match="commit bounds.*value_per_cost"):
        load_config(
            ROOT / "configs" / "qwen2.5-math-1.5b-pc.toml", ["commit.allocation=value_per_cost"]
        )


def _deepmath_shards(folder: Path, rows_per_shard=(3, 2, 4)) -> list[dict]:
    folder.mkdir(parents=True, exist_ok=True)
    rows, count = [], len(rows_per_shard)
    for i, n in enumerate(rows_per_shard):
        shard = [
            {"question": f"What is {len(rows) + j} + 1?", "final_answer": str(len(rows) + j + 1)}
            for j in range(n)
        ]
        pl.DataFrame(shard).write_parquet(folder / f"train-{i:05d}-of-{count:05d}.parquet")
        rows += shard
    return rows


def test_a_glob_reads_every_shard_in_order(tmp_path):
    rows = _deepmath_shards(tmp_path / "data")
    bench = load_benchmark(tmp_path / "data" / "train-*.parquet", TextTemplate("{problem}"))
    assert bench.name == "train" and len(bench) == len(rows) == 9
    assert bench.prompts["answer"].to_list() == [r["final_answer"] for r in rows]
    assert bench.prompts["prompt_id"].n_unique() == 9  # numbered across shards
    with pytest.raises(DatasetError, match="no file matches this pattern"):
        load_benchmark(tmp_path / "data" / "test-*.parquet", TextTemplate("{problem}"))


def test_prompts_parquet_shards_and_missing_globs_in_check_files(tmp_path):
    arith = pl.read_parquet(ROOT / "data" / "arith" / "test.parquet")
    for i, part in enumerate(arith.iter_slices(400)):
        part.write_parquet(tmp_path / f"test-{i}.parquet")
    assert load_prompts(str(tmp_path / "test-*.parquet"), str(TINY_POLICY)).equals(arith)
    cfg = load_config(ROOT / "configs" / "tiny-pc.toml", [f"test={tmp_path}/nothing-*.parquet"])
    with pytest.raises(ConfigError, match="nothing-\\*.parquet"):
        check_files(cfg)


def test_fetch_without_network_says_what_to_do(tmp_path, monkeypatch):
    import huggingface_hub.constants

    # The real hub client, told there is no network (its constant is read at import, so the
    # environment variable alone would not reach it in this process); CI has none either.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(FetchError, match="could not download HuggingFaceH4/MATH-500.*copy"):
        fetch("math500", tmp_path)
    assert not (tmp_path / "benchmarks" / "math500.jsonl").exists()
    with pytest.raises(FetchError, match="known: deepmath"):
        fetch("gsm8k", tmp_path)


def _from_disk(files: dict[str, Path]):
    """A download that copies local files into the snapshot layout (the hub is unreachable
    here); everything after the download is the real code."""

    def download(repo, patterns, into):
        for rel, src in files.items():
            (into / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, into / rel)

    return download


def test_fetch_writes_what_the_presets_read(benchmarks, tmp_path, monkeypatch):
    out = fetch("math500", tmp_path, _from_disk({"test.jsonl": benchmarks / "math500.jsonl"}))
    assert out == tmp_path / "benchmarks" / "math500.jsonl"
    assert len(load_benchmark(out, TextTemplate("{problem}"))) == 500
    shards = tmp_path / "src"
    _deepmath_shards(shards)
    files = {f"data/{p.name}": p for p in shards.glob("*.parquet")}
    assert fetch("deepmath", tmp_path / "data", _from_disk(files)) == tmp_path / "data/deepmath"
    monkeypatch.chdir(tmp_path)  # the preset's relative path now finds the shards
    preset = load_config(ROOT / "configs" / "qwen2.5-math-1.5b-pc.toml")
    assert len(load_benchmark(preset.train, TextTemplate("{problem}"))) == 9
    again = {f"data/{p.name}": p for p in sorted(shards.glob("*.parquet"))[:1]}
    fetch("deepmath", tmp_path / "data", _from_disk(again))  # a refetch replaces, never mixes
    assert len(list((tmp_path / "data/deepmath/data").glob("*.parquet"))) == 1
    assert not (tmp_path / "data/deepmath.partial").exists()
    junk = tmp_path / "junk.parquet"
    pl.DataFrame({"text": ["no problem field"]}).write_parquet(junk)
    with pytest.raises(FetchError, match="not a dataset pcbench reads"):
        fetch("deepmath", tmp_path / "data", _from_disk({"data/train-0.parquet": junk}))
    assert len(list((tmp_path / "data/deepmath/data").glob("*.parquet"))) == 1  # kept as it was
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "no problem field"}\n')
    with pytest.raises(FetchError, match="not a benchmark pcbench reads"):
        fetch("aime24", tmp_path, _from_disk({"test.jsonl": bad}))
    assert not list((tmp_path / "benchmarks").glob("aime24*"))


def test_shrunk_architectures_count_like_built_models():
    for name in ("Qwen--Qwen2.5-Math-1.5B", "Qwen--Qwen3-1.7B"):
        raw = json.loads((OFFLINE_CONFIGS / f"{name}.json").read_text())
        raw |= {"num_hidden_layers": 2, "hidden_size": 64, "intermediate_size": 128,
                "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 300}  # fmt: skip
        if "head_dim" in raw:
            raw["head_dim"] = 16
        config = AutoConfig.for_model(**raw)
        torch.manual_seed(0)
        built = AutoModelForCausalLM.from_config(config)
        assert parameter_count(config) == sum(p.numel() for p in built.parameters())


def test_rollouts_per_step_follows_each_strategys_budget():
    from pcbench.memory import rollouts_per_step

    per = {s: load_config(ROOT / "configs" / f"tiny-{s}.toml")
           for s in ("pc", "grpo", "dapo", "greso", "mopps", "knapsack")}  # fmt: skip
    B, n = per["grpo"].batch_prompts, per["grpo"].group_size
    assert rollouts_per_step(per["grpo"]) == B * n
    assert rollouts_per_step(per["mopps"]) == rollouts_per_step(per["knapsack"]) == B * n
    assert rollouts_per_step(per["greso"], rounds=2) == 2 * per["greso"].greso.round_prompts * n
    assert rollouts_per_step(per["dapo"]) == per["dapo"].pool_prompts * n
    pc = per["pc"]
    assert rollouts_per_step(pc) == pc.pool_prompts * pc.pilot.n_pilot + B * pc.commit.n_commit
