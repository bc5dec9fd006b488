import re

import pytest

from pcbench.config import (
    CommitConfig,
    ConfigError,
    RunConfig,
    ScoreConfig,
    UpdateConfig,
    from_dict,
    load_config,
)

from conftest import ROOT


def test_defaults_validate_and_derive_group_quantities():
    cfg = RunConfig()
    assert cfg.group_size == cfg.pilot.n_pilot + cfg.commit.n_commit
    assert cfg.pilot_fraction == pytest.approx(cfg.pilot.n_pilot / cfg.group_size)


@pytest.mark.parametrize(
    "section, values, fragment",
    [
        ("score", {"keep_min": 0.8, "keep_max": 0.5}, "lower keep_min or raise keep_max"),
        ("score", {"keep_max": 1.2}, "keep_max = 1.2"),
        ("score", {"evict_at": 0.7}, "set evict_at above keep_max"),
        ("commit", {"n_commit": 0}, "n_commit = 0: must be > 0"),
        ("commit", {"order": "fifo"}, "order = 'fifo'"),
        ("update", {"loss_agg": "sum"}, "loss_agg = 'sum'"),
        ("update", {"dual_clip": 1.0}, "dual_clip"),
        ("pilot", {"n_pilot": -1}, "n_pilot = -1"),
        ("greso", {"p_easy": 0.0}, "greso.p_easy = 0.0: must be in (0, 1]"),
        ("greso", {"target_zero_variance": 1.0}, "target_zero_variance = 1.0"),
        ("greso", {"min_round_prompts": 13}, "lower min_round_prompts or raise round_prompts"),
        ("greso", {"round_prompts": 0}, "round_prompts = 0: must be > 0"),
        ("mopps", {"candidate_ratio": 0.5}, "candidate_ratio = 0.5: must be >= 1"),
        ("mopps", {"selection": "threshold"}, "selection = 'threshold': use one of"),
        ("mopps", {"band": [0.7, 0.3]}, "need 0 <= low < high <= 1"),
        ("mopps", {"decay": 1.5}, "decay = 1.5"),
        ("mopps", {"prior": [0.0, 1.0]}, "both > 0"),
        ("knapsack", {"min_n": 1}, "a group of one has no baseline"),
        ("knapsack", {"max_n": 1}, "max_n = 1 < min_n = 2"),
        ("knapsack", {"alpha": 1.0}, "alpha = 1.0"),
        ("knapsack", {"window": 0}, "window = 0: must be > 0"),
        ("knapsack", {"budget": 9}, "unknown key knapsack.budget"),
    ],
)
def test_invalid_values_say_what_to_change(section, values, fragment):
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(")):
        from_dict({section: values})


def test_cross_section_check_on_reuse():
    with pytest.raises(ConfigError, match="n_reuse = 9 > pilot.n_pilot = 4"):
        from_dict({"pilot": {"n_pilot": 4}, "commit": {"n_reuse": 9}})


def test_peer_tables_sizes_and_cross_checks():
    """The peers' sizes derive from B (an epoch must hold one round, candidate set or batch),
    and Knapsack-RL's base allocation must fit B x n; other strategies ignore the peer tables."""
    cfg = from_dict({"strategy": "mopps", "batch_prompts": 4, "mopps": {"candidate_ratio": 2.5}})
    assert cfg.min_epoch_prompts == 10 and "10 candidates" in cfg.epoch_need
    cfg = from_dict({"strategy": "greso", "greso": {"round_prompts": 6}})
    assert cfg.min_epoch_prompts == 6 and "greso.round_prompts = 6" in cfg.epoch_need
    assert from_dict({"strategy": "knapsack"}).min_epoch_prompts == RunConfig().batch_prompts
    small = {"pilot": {"n_pilot": 1}, "commit": {"n_commit": 2}, "knapsack": {"positive_n": 4}}
    with pytest.raises(ConfigError, match="exceed the group size n = 3"):
        from_dict(small | {"strategy": "knapsack"})
    assert from_dict(small | {"strategy": "grpo"}).knapsack.positive_n == 4
    for name in ("greso", "mopps", "knapsack"):
        cfg = load_config(ROOT / "configs" / f"tiny-{name}.toml")
        assert cfg.strategy == name and cfg.group_size == 16 and cfg.batch_prompts == 8
        assert getattr(cfg, name) == type(getattr(cfg, name))()  # the published defaults


def test_pilot_fraction_keeps_group_size():
    cfg = RunConfig().with_pilot_fraction(0.5)
    assert (cfg.pilot.n_pilot, cfg.commit.n_commit) == (8, 8)
    cfg = RunConfig().with_pilot_fraction(0.25, group_size=128)
    assert (cfg.pilot.n_pilot, cfg.commit.n_commit) == (32, 96)
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(ConfigError, match="must be in \\(0, 1\\)"):
            RunConfig().with_pilot_fraction(bad)
    with pytest.raises(ConfigError, match="both must be >= 1"):
        RunConfig().with_pilot_fraction(0.01, group_size=16)


def test_official_threshold_names():
    assert ScoreConfig(keep_min=0.125, keep_max=0.75, evict_at=1.0).official() == {
        "diversity_threshold_lower": 0.125,
        "diversity_threshold_upper": 0.25,
        "exclude_threshold_upper": 1.0,
    }


def test_configs_are_frozen():
    with pytest.raises(AttributeError):
        UpdateConfig().lr = 1.0  # type: ignore[misc]
    with pytest.raises(AttributeError):
        CommitConfig().order = "random"  # type: ignore[misc]


def test_toml_with_overrides(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text(
        'name = "x"\nstrategy = "grpo"\n[score]\nkeep_min = 0.25\n[update]\nbetas = [0.9, 0.95]\n'
    )
    cfg = load_config(path, ["update.lr=3e-5", "commit.order=random", "steps=7"])
    assert cfg.strategy == "grpo" and cfg.score.keep_min == 0.25 and cfg.steps == 7
    assert cfg.update.lr == 3e-5 and cfg.update.betas == (0.9, 0.95)
    assert cfg.commit.order == "random"


def test_toml_errors_name_the_problem(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    typo = tmp_path / "typo.toml"
    typo.write_text("[score]\nkeep_mn = 0.1\n")
    with pytest.raises(ConfigError, match="score.keep_mn; did you mean 'keep_min'"):
        load_config(typo)
    with pytest.raises(ConfigError, match="write it as key=value"):
        from_dict({}, ["update.lr"])


def test_engine_passes_vllm_arguments_through_checked(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text("[engine]\nmax_model_len = 128\nmax_num_seqs = 512\nenforce_eager = false\n")
    cfg = load_config(path, ["engine.enable_prefix_caching=true"])
    assert cfg.engine.max_model_len == 128  # pcbench's own key stays a field
    assert cfg.engine.vllm_args == {
        "max_num_seqs": 512, "enforce_eager": False, "enable_prefix_caching": True,
    }  # fmt: skip
    # the saved form (config.json) reads back to the same config
    assert from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="engine.max_num_seq: .*did you mean 'max_num_seqs'"):
        from_dict({"engine": {"max_num_seq": 8}})
    with pytest.raises(ConfigError, match="engine.max_modl_len: .*did you mean 'max_model_len'"):
        from_dict({"engine": {"max_modl_len": 8}})
    with pytest.raises(ConfigError, match="engine.seed: pcbench sets this itself; use seed"):
        from_dict({"engine": {"seed": 3}})
    with pytest.raises(ConfigError, match="does not take the vLLM arguments"):
        from_dict({"engine": {"kind": "hf", "max_num_seqs": 8}})


def test_sync_tolerance_defaults_by_dtype_and_can_be_set():
    from pcbench.config import SYNC_TOLERANCE, EngineConfig, sync_tolerance

    assert sync_tolerance(EngineConfig()) == SYNC_TOLERANCE["float32"] == 1e-3
    assert sync_tolerance(EngineConfig(dtype="bfloat16")) == SYNC_TOLERANCE["bfloat16"] > 1e-3
    assert sync_tolerance(EngineConfig(dtype="bfloat16", sync_tolerance=0.1)) == 0.1
    with pytest.raises(ConfigError, match="sync_tolerance = 0: must be > 0"):
        EngineConfig(sync_tolerance=0)


def test_a_wrongly_typed_value_names_its_key_and_the_cli_exits_2(capsys, monkeypatch):
    from pcbench.cli import main

    from conftest import ROOT

    for override, message in (("steps=ten", "steps = 'ten': expected an int"),
                              ("update.lr=fast", "update.lr = 'fast': expected a float"),
                              ("pilot.prior_key=3", "pilot.prior_key = 3: expected a str")):  # fmt: skip
        with pytest.raises(ConfigError, match=re.escape(message)):
            from_dict({}, [override])
    monkeypatch.chdir(ROOT)
    assert main(["run", "configs/tiny-pc.toml", "--set", "steps=ten"]) == 2
    assert "steps = 'ten': expected an int" in capsys.readouterr().err
    with pytest.raises(SystemExit) as version:
        main(["--version"])
    assert version.value.code == 0 and capsys.readouterr().out.startswith("pcbench 0.1.0")


def test_the_configuration_reference_is_current_and_the_readme_stays_in_the_repo():
    """docs/configuration.md is what bench/config_reference.py writes now (a new option must be
    documented), and README.md links only to files of this repository."""
    import sys

    from conftest import ROOT

    sys.path.insert(0, str(ROOT / "bench"))
    from config_reference import reference

    assert (ROOT / "docs" / "configuration.md").read_text() == reference(), (
        "run: .venv/bin/python bench/config_reference.py"
    )
    readme = (ROOT / "README.md").read_text()
    assert "../" not in readme and "DESIGN" not in readme
    for link in re.findall(r"\]\(([^)#]+)\)", readme):
        assert (ROOT / link).exists(), link
