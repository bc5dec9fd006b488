"""Multi-seed experiment tables over hand-written run directories (pure analysis logic), and the
Markdown block writer that puts generated tables into docs/RESULTS.md."""

import polars as pl
import pytest
from test_analysis import _run

from pcbench import experiments as ex
from pcbench.analysis import (
    FIRST_EVAL_SMOOTHED,
    MECHANISM,
    Crossing,
    informative_rollouts,
    mechanism,
)
from pcbench.cli import main
from pcbench.results import summarize
from pcbench.tables import markdown

EXP = ex.Experiment("t", "test", (ex.PC, ex.GRPO, ex.DAPO))
ORDER = [v.name for v in EXP.variants]
FIRST_EVAL = Crossing(smooth=1, interpolate=False)  # the tables' arithmetic by hand


@pytest.fixture
def root(tmp_path):
    # seed 0: PC reaches GRPO's smoothed peak first; seed 1: PC never does.
    _run(tmp_path, "grpo-s0", "grpo", [0.5, 0.55, 0.6, 0.58], 128, steps=3)
    _run(tmp_path, "pc-s0", "pilot_commit", [0.5, 0.6, 0.62, 0.61], 100, steps=3)
    _run(tmp_path, "dapo-s0", "dapo", [0.5, 0.52, 0.54, 0.6], 300, steps=3)
    _run(tmp_path, "grpo-s1", "grpo", [0.5, 0.7, 0.5, 0.5], 128, steps=3)
    _run(tmp_path, "pc-s1", "pilot_commit", [0.5, 0.55, 0.55, 0.55], 100, steps=3)
    return tmp_path


def test_targets_are_paired_by_seed_and_ratios_are_per_seed(root):
    runs = ex.per_run(EXP, root, seeds=(0, 1), crossing=FIRST_EVAL_SMOOTHED)
    by = {(r["variant"], r["seed"]): r for r in runs.to_dicts()}
    assert by[("pc", 0)]["target"] == pytest.approx(0.59)  # trailing mean of (0.6, 0.58)
    assert by[("pc", 1)]["target"] == pytest.approx(0.6)  # (0.5 + 0.7) / 2
    assert by[("pc", 0)]["rollouts_to_target"] == 200  # smoothed 0.61 at step 2
    assert by[("grpo", 0)]["rollouts_to_target"] == 384  # smoothed 0.59 at step 3
    assert by[("pc", 0)]["x_vs_grpo"] == pytest.approx(384 / 200)
    # wall seconds of training (evaluations left out) at the same step: 2 x 100/64, 3 x 128/64
    assert by[("pc", 0)]["seconds_to_target"] == pytest.approx(200 / 64)
    assert by[("grpo", 0)]["seconds_to_target"] == pytest.approx(384 / 64)
    assert by[("dapo", 0)]["rollouts_to_target"] is None  # smoothed 0.57 at best
    assert by[("pc", 1)]["rollouts_to_target"] is None
    assert ("dapo", 1) not in by  # missing runs are skipped, not invented


def test_unfinished_runs_are_left_out_and_named(root):
    _run(root, "dapo-s1", "dapo", [0.5, 0.9], 300, steps=3)  # 1 of 3 steps so far
    runs = ex.per_run(EXP, root, seeds=(0, 1), crossing=FIRST_EVAL_SMOOTHED)
    assert ("dapo", 1) not in set(zip(runs["variant"], runs["seed"], strict=True))
    assert ex.left_out(EXP, root, seeds=(0, 1)) == ["dapo-s1 (unfinished: step 1 of 3)"]
    # A run the experiment gave up on says so, and the table does not ask to finish it.
    (root / "dapo-s1" / ex.STOPPED).write_text("MaxRoundsError: step 2: only 3 of 8 prompts\n")
    stopped = "dapo-s1 (stopped by MaxRoundsError at step 1 of 3)"
    assert ex.left_out(EXP, root, seeds=(0, 1)) == [stopped]
    text = ex.table(EXP, root, seeds=(0, 1))[2]
    assert "**Stopped before their last step**, so not compared" in text and stopped in text
    assert "**Not in this table**" not in text
    # Where it stood: last evaluation at step 1 (300 rollouts, 0.9); GRPO of seed 1 had 0.5
    # at 256 and at 384 rollouts, so 0.5 at 300.
    stop = ex.stopped_runs(EXP, root, seeds=(0, 1)).row(0, named=True)
    assert stop == {"run": "dapo-s1", "steps": 1, "eval_step": 1, "rollouts": 300.0,
                    "accuracy": 0.9, "grpo_accuracy": 0.5}  # fmt: skip
    assert "| `dapo-s1` | 1 | 1 | 300 | 0.900 | 0.500 |" in text


def test_a_subdir_experiment_keeps_its_runs_and_targets_in_its_own_folder(tmp_path):
    # Same variant names as the headline, other runs: the subdir's own GRPO sets the target.
    sub = tmp_path / "epochs"
    _run(sub, "grpo-s0", "grpo", [0.5, 0.8, 0.8, 0.8], 128, steps=3)
    _run(sub, "pc-s0", "pilot_commit", [0.5, 0.8, 0.8, 0.8], 100, steps=3)
    _run(tmp_path, "grpo-s0", "grpo", [0.5, 0.55, 0.6, 0.58], 128, steps=3)  # the headline's
    exp = ex.Experiment("e", "test", (ex.PC, ex.GRPO), subdir="epochs")
    assert exp.root(tmp_path) == sub
    runs = ex.per_run(exp, tmp_path, seeds=(0,), crossing=FIRST_EVAL)
    assert set(runs["run"]) == {"grpo-s0", "pc-s0"} and (runs["target"] == 0.8).all()
    assert runs.filter(pl.col("variant") == "pc")["x_vs_grpo"][0] == pytest.approx(128 / 100)
    _run(sub, "grpo-s1", "grpo", [0.5, 0.6], 128, steps=3)  # unfinished: seed 1 has no target
    _run(sub, "pc-s1", "pilot_commit", [0.5, 0.6, 0.6, 0.6], 100, steps=3)
    assert ex.left_out(exp, tmp_path, seeds=(0, 1)) == [
        "pc-s1 (no target: grpo-s1 step 1 of 3)", "grpo-s1 (unfinished: step 1 of 3)",
    ]  # fmt: skip
    # The shipped one: every variant gets the experiment's `set` before its own.
    epochs = ex.EXPERIMENTS["peers-epochs"]
    cfgs = {c.name: c for _, _, c in ex.variant_configs(epochs, seeds=(1,))}
    assert {c.train_prompts for c in cfgs.values()} == {240}
    assert {c.steps for c in cfgs.values()} == {60}
    assert cfgs["pc-history-s1"].pilot.gate == "history" and cfgs["pc-s1"].pilot.gate == "none"


def test_no_comparison_against_an_unfinished_grpo_target(tmp_path):
    # GRPO of seed 0 is at step 1 of 3: its peak so far is not the target. PC (finished) must
    # not be scored against it; the table says why it is missing.
    _run(tmp_path, "grpo-s0", "grpo", [0.5, 0.55], 128, steps=3)
    _run(tmp_path, "pc-s0", "pilot_commit", [0.5, 0.6, 0.62, 0.61], 100, steps=3)
    _run(tmp_path, "grpo-s1", "grpo", [0.5, 0.6, 0.6, 0.6], 128, steps=3)
    _run(tmp_path, "pc-s1", "pilot_commit", [0.5, 0.6, 0.62, 0.61], 100, steps=3)
    runs = ex.per_run(EXP, tmp_path, seeds=(0, 1), crossing=FIRST_EVAL)
    assert set(zip(runs["variant"], runs["seed"], strict=True)) == {("grpo", 1), ("pc", 1)}
    skipped = ex.left_out(EXP, tmp_path, seeds=(0, 1))
    assert skipped == ["pc-s0 (no target: grpo-s0 step 1 of 3)",
                       "grpo-s0 (unfinished: step 1 of 3)"]  # fmt: skip
    text = markdown(summarize(runs, ORDER), runs, FIRST_EVAL, skipped)
    assert "seed 1: 0.600 (" in text and "seed 0" not in text
    assert "**Not in this table**" in text and "pc-s0 (no target: grpo-s0 step 1 of 3)" in text


def test_summary_counts_reached_seeds_and_spans_them(root):
    runs = ex.per_run(EXP, root, seeds=(0, 1), crossing=FIRST_EVAL_SMOOTHED)
    summary = {r["variant"]: r for r in summarize(runs, ORDER).to_dicts()}
    assert list(summarize(runs, ORDER)["variant"]) == ["pc", "grpo", "dapo"]
    assert summary["pc"]["seeds"] == 2 and summary["pc"]["reached"] == 1
    assert summary["grpo"]["rollouts_to_target_min"] == 128  # seed 1: 0.6 at step 1
    assert summary["grpo"]["rollouts_to_target_max"] == 384
    text = markdown(summarize(runs, ORDER), runs, crossing=FIRST_EVAL_SMOOTHED)
    assert "seed 0: 0.590 (+0.090 ± 0.000), seed 1: 0.600 (+0.100 ± 0.000)" in text
    assert "| `pc` |" in text and "| 1/2 |" in text and "not reached" in text


def test_write_block_replaces_only_its_own_block(tmp_path):
    doc = tmp_path / "R.md"
    doc.write_text("# Results\n\nprose before\n")
    ex.write_block(doc, "a", "table one")
    ex.write_block(doc, "b", "table two")
    ex.write_block(doc, "a", "table one, rerun")
    text = doc.read_text()
    assert text.startswith("# Results\n\nprose before\n")
    assert "table one, rerun" in text and "table one\n" not in text and "table two" in text
    assert text.count("<!-- begin a -->") == 1 and text.index("rerun") < text.index("two")


def test_experiment_configs_are_valid_and_named_per_seed():
    cfgs = ex.variant_configs(ex.EXPERIMENTS["ablations"], seeds=(0, 1))
    names = [c.name for _, _, c in cfgs]
    assert len(names) == len(set(names)) == 2 * len(ex.EXPERIMENTS["ablations"].variants)
    by = {c.name: c for _, _, c in cfgs}
    assert by["pc-f1_8-s1"].pilot.n_pilot == 2 and by["pc-f1_8-s1"].seed == 1
    assert by["pc-f1_8-s1"].pilot.n_pilot + by["pc-f1_8-s1"].commit.n_commit == 16
    assert by["pc-reuse2-s0"].commit.n_reuse == 2 and by["grpo-s0"].strategy == "grpo"


def test_a_variant_subset_keeps_the_experiment_order_and_refuses_unknown_names(capsys):
    exp = ex.EXPERIMENTS["ablations"]
    cfgs = ex.variant_configs(exp, seeds=(0, 2), only=["pc-f1_2", "pc-f1_8"])
    assert [c.name for _, _, c in cfgs] == ["pc-f1_8-s0", "pc-f1_2-s0", "pc-f1_8-s2", "pc-f1_2-s2"]
    with pytest.raises(ValueError, match="no variant 'pc-f1_3'.*known: pc, grpo, pc-f1_8"):
        ex.select_variants(exp, ["pc-f1_2", "pc-f1_3"])
    # The CLI refuses it before training or tabulating anything.
    code = main(["experiment", "ablations", "--variants", "pc-f1_3", "--table-only"])
    assert code == 2 and "no variant 'pc-f1_3'" in capsys.readouterr().err


def test_cli_tabulates_and_writes_the_doc(root, tmp_path, capsys):
    doc = tmp_path / "docs" / "RESULTS.md"
    code = main(["experiment", "headline", "--seeds", "0", "1", "--runs", str(root),
                 "--table-only", "--write", str(doc)])  # fmt: skip
    assert code == 0
    assert "| `pc` |" in capsys.readouterr().out
    assert "<!-- begin headline -->" in doc.read_text()
    assert (tmp_path / "docs" / "results" / "headline.html").stat().st_size > 1000
    # --block: a second table of the same runs beside the first, the first left as it was
    first = doc.read_text()
    code = main(["experiment", "headline", "--seeds", "0", "--runs", str(root), "--table-only",
                 "--write", str(doc), "--block", "headline-s0"])  # fmt: skip
    both = doc.read_text()
    assert code == 0 and both.startswith(first.rstrip("\n"))
    assert "<!-- begin headline-s0 -->" in both and "--block headline-s0`" in both
    assert (tmp_path / "docs" / "results" / "headline-s0.html").stat().st_size > 1000
    # not an experiment, a study or a study cell: refused with the known names, nothing run
    assert main(["experiment", "nope", "--runs", str(root), "--table-only"]) == 2
    assert "known: ablations" in capsys.readouterr().err


def test_informative_rollouts_count_trained_rollouts_with_nonzero_advantage(root):
    from pcbench.run import Run

    run = Run(root / "pc-s0")
    for step, (n, zero) in enumerate([(64, 0.25), (64, 0.5), (64, 0.0)], start=1):
        run.write("metrics", step, pl.DataFrame(
            {"step": [step] * 2, "name": ["update/rollouts", "update/zero_advantage_frac"],
             "value": [float(n), zero]}))  # fmt: skip
    assert informative_rollouts(run) == 48 + 32 + 64
    row = ex.per_run(EXP, root, seeds=(0,)).filter(pl.col("variant") == "pc").row(0, named=True)
    assert row["per_informative"] == pytest.approx(300 / 144)  # 3 steps x 100 rollouts


@pytest.mark.slow
def test_run_experiment_goes_on_after_max_rounds_and_stops_on_anything_else(
    tmp_path, tiny_engine, monkeypatch
):
    """Real runs: a variant that hits max_rounds, or whose epoch cannot fill a batch, is logged
    and the next one runs (properties of the variant on its split); a variant that fails
    otherwise (here a model directory that is not there) stops the experiment loudly."""
    from pcbench.config import ConfigError
    from pcbench.policy import Policy

    from conftest import ARITH, ROOT, TINY_POLICY

    monkeypatch.chdir(ROOT)  # configs name their files relative to the repository root
    train_file = tmp_path / "train.parquet"
    pl.read_parquet(ARITH / "train.parquet").head(48).write_parquet(train_file)
    never_kept = ("score.keep_min=0.9", "score.keep_max=0.95", "score.evict_at=1.5")
    exp = ex.Experiment("t", "test", (
        ex.Variant("rounds", "tiny-pc.toml", ("max_rounds=1", *never_kept)),
        ex.Variant("epoch", "tiny-pc.toml", never_kept),
        ex.Variant("missing", "tiny-pc.toml", (f"model={tmp_path / 'gone-model'}",)),
        ex.Variant("never-reached", "tiny-pc.toml"),
    ))  # fmt: skip
    sets = [f"train={train_file}", "batch_prompts=4", "pool_prompts=12", "steps=1",
            "eval.max_prompts=8", "eval.k=1"]  # fmt: skip
    log = []
    try:
        with pytest.raises(ConfigError, match="gone-model"):
            ex.run_experiment(exp, tmp_path / "runs", seeds=(0,), sets=sets, progress=False,
                              log=log.append)  # fmt: skip
    finally:
        tiny_engine.load_weights(Policy(TINY_POLICY))
    assert any(m.startswith("!! rounds-s0 stopped at step 0") for m in log)
    assert any(
        m.startswith("!! epoch-s0 stopped at step 0: step 1: a whole epoch of 48") for m in log
    )
    # Its table says why it is not compared (the stop is recorded in the run directory).
    assert ex.left_out(exp, tmp_path / "runs", seeds=(0,))[:2] == [
        "rounds-s0 (stopped by MaxRoundsError at step 0 of 1)",
        "epoch-s0 (stopped by EpochTooSmallError at step 0 of 1)",
    ]
    assert not (tmp_path / "runs" / "never-reached-s0").exists()


def test_ratio_intervals_bootstrap_over_seeds(tmp_path):
    # PC reaches each seed's target (0.6 at GRPO's step 2, 256 rollouts) in 1, 2 and 1 steps
    # of 64: per-seed ratios 4, 2, 4.
    for seed, curve in enumerate(([0.5, 0.6, 0.6], [0.5, 0.55, 0.6], [0.5, 0.6, 0.6])):
        _run(tmp_path, f"grpo-s{seed}", "grpo", [0.5, 0.55, 0.6], 128, steps=2)
        _run(tmp_path, f"pc-s{seed}", "pilot_commit", curve, 64, steps=2)
    runs = ex.per_run(EXP, tmp_path, seeds=(0, 1, 2), crossing=FIRST_EVAL)
    assert sorted(runs.filter(pl.col("variant") == "pc")["x_vs_grpo"]) == [2.0, 4.0, 4.0]
    pc = summarize(runs, ORDER).filter(pl.col("variant") == "pc").row(0, named=True)
    assert pc["x_vs_grpo"] == pytest.approx(10 / 3)
    lo, hi = pc["x_vs_grpo_ci"]
    assert 2.0 <= lo < 10 / 3 < hi == pytest.approx(4.0)  # the mean of 3 resampled seeds
    assert pc["x_vs_dapo_ci"] is None  # no DAPO runs: no ratio, no interval
    text = markdown(summarize(runs, ORDER), runs, FIRST_EVAL)
    assert f"| 3.33 [{lo:.2f}, {hi:.2f}] |" in text
    assert "seed 0: 0.600 (+0.100 ± 0.000)" in text  # the target, its gain and paired SE


def test_bootstrap_interval_of_a_mean():
    from pcbench.results import bootstrap_interval

    assert bootstrap_interval([1.7]) is None and bootstrap_interval([None, 2.0]) is None
    assert bootstrap_interval([1.5, 1.5, 1.5]) == (1.5, 1.5)
    lo, hi = bootstrap_interval([1.0, 2.0, 6.0])
    assert 1.0 <= lo < 3.0 < hi <= 6.0
    assert bootstrap_interval([1.0, 2.0, 6.0]) == (lo, hi)  # seeded: the same every time
    wide = bootstrap_interval([1.0, 2.0, 6.0], level=0.99)
    assert wide[0] <= lo and wide[1] >= hi


def test_mechanism_says_where_the_pilots_went(tmp_path):
    from pcbench.config import RunConfig
    from pcbench.run import Run

    run = Run.create(RunConfig(name="m", strategy="pilot_commit", steps=2), tmp_path)
    for step, (seen, easy, hard, kept, marked, take, age, add, stale) in enumerate(
        [(24, 10, 6, 8, 4, 8, 8, 8, 0), (24, 12, 4, 8, 6, 8, 16, 8, 2)], start=1
    ):
        run.write("ledger", step, pl.DataFrame({"step": [step]} | {
            f"filtering_stats/{k}": [float(v)] for k, v in
            {"seen": seen, "too_easy": easy, "too_hard": hard, "kept": kept,
             "evict_marked": marked}.items()
        } | {f"buffer_stats/{k}": [float(v)] for k, v in
             {"take": take, "age_sum": age, "add": add, "stale_drop": stale}.items()}))  # fmt: skip
    m = mechanism(run)
    assert m["too_easy_share"] == pytest.approx(22 / 48)
    assert m["too_hard_share"] == pytest.approx(10 / 48) and m["kept_share"] == pytest.approx(1 / 3)
    assert m["evicted_share"] == pytest.approx(10 / 48)
    assert m["buffer_age"] == pytest.approx(24 / 16) and m["stale_share"] == pytest.approx(2 / 16)
    grpo = _run(tmp_path, "g", "grpo", [0.5, 0.6], 128, steps=1)
    assert mechanism(grpo)["kept_share"] is None  # no pilots: no shares, not zeros


def test_markdown_has_the_mechanism_table_for_piloted_variants_only(root):
    runs = ex.per_run(EXP, root, seeds=(0, 1), crossing=FIRST_EVAL_SMOOTHED)
    runs = runs.with_columns(
        pl.when(pl.col("variant") == "pc").then(0.25).otherwise(None).alias(c) for c in MECHANISM
    )
    text = markdown(summarize(runs, ORDER), runs, crossing=FIRST_EVAL_SMOOTHED)
    assert "| `pc` | 25.0% | 25.0% | 25.0% | 25.0% | 0.25 | 25.0% |" in text
    assert "| `grpo` | 25.0%" not in text


def test_experiments_are_data_files_and_bad_ones_are_refused(tmp_path):
    """Every shipped experiment loads from configs/experiments/; a file with a variant missing
    its config, or a variant name that means two different runs, is refused with the reason."""
    cells = {c.name for c in ex.STUDIES["regime"].cells}
    assert set(ex.EXPERIMENTS) == {
        "headline", "ablations", "beyond", "explore", "peers", "peers-epochs", *cells,
    }  # fmt: skip
    assert len(cells) == 6 and {c.subdir for c in ex.STUDIES["regime"].cells} == cells
    for cell in ex.STUDIES["regime"].cells:  # every pre-registered run's config is valid
        assert ex.variant_configs(cell, seeds=ex.STUDIES["regime"].seeds)
    assert [v.name for v in ex.EXPERIMENTS["headline"].variants] == ["pc", "grpo", "dapo"]
    assert ex.EXPERIMENTS["ablations"].variants[2].overrides[0] == "pilot.n_pilot=2"
    (tmp_path / "a.toml").write_text('title = "a"\n[[variant]]\nname = "x"\n')
    with pytest.raises(ValueError, match="variant 1 needs `name` and `config`"):
        ex.load_experiments(tmp_path)
    (tmp_path / "a.toml").write_text('[[variant]]\nname = "x"\nconfig = "tiny-pc.toml"\n')
    (tmp_path / "b.toml").write_text(
        '[[variant]]\nname = "x"\nconfig = "tiny-pc.toml"\nset = ["seed=3"]\n'
    )
    with pytest.raises(ValueError, match="variant 'x' means different runs in a and b"):
        ex.load_experiments(tmp_path)
    (tmp_path / "b.toml").write_text('[[variant]]\nname = "y"\nconfig = "no-such.toml"\n')
    with pytest.raises(ValueError, match="no config"):
        ex.load_experiments(tmp_path)
    (tmp_path / "b.toml").write_text("[[variant]\n")
    with pytest.raises(ValueError, match="not valid TOML"):
        ex.load_experiments(tmp_path)
    # A subdir experiment may reuse a name for other runs, but needs its own GRPO targets.
    (tmp_path / "b.toml").write_text(
        'subdir = "s"\nset = ["seed=3"]\n[[variant]]\nname = "x"\nconfig = "tiny-pc.toml"\n'
        '[[variant]]\nname = "grpo"\nconfig = "tiny-grpo.toml"\n'
    )
    assert ex.load_experiments(tmp_path)["b"].variants[0].overrides == ("seed=3",)
    (tmp_path / "b.toml").write_text(
        'subdir = "s"\n[[variant]]\nname = "x"\nconfig = "tiny-pc.toml"\n'
    )
    with pytest.raises(ValueError, match="hold their own targets: add a 'grpo'"):
        ex.load_experiments(tmp_path)
    for bad in ('subdir = "../x"', 'subdir = ".."', 'runs = "x"'):
        (tmp_path / "b.toml").write_text(
            f'{bad}\n[[variant]]\nname = "y"\nconfig = "tiny-pc.toml"\n'
        )
        with pytest.raises(ValueError, match="subdir = |unknown keys"):
            ex.load_experiments(tmp_path)


def test_regression_checks_find_what_they_check(tmp_path):
    """Notebook 03's checks as functions: a ledger that breaks batch composition or has verifier
    errors is named; cost verdicts say 'still climbing', 'within tolerance', or raise."""
    from pcbench.config import RunConfig
    from pcbench.regression import cost_verdicts, ledger_violations, mechanism_violations
    from pcbench.results import measure
    from pcbench.run import Run

    def grpo_run(name, trained_prompts, error_rate):
        run = Run.create(RunConfig(name=name, strategy="grpo", steps=2), tmp_path)
        for step in (1, 2):
            run.write("ledger", step, pl.DataFrame({
                "step": [step], "rollout_stats/grpo": [128.0], "rollout_stats/trained": [128.0],
                "filtering_stats/trained_prompts": [trained_prompts], "verifier/error_rate": [error_rate],
            }))  # fmt: skip
        return run

    assert ledger_violations(grpo_run("ok", 8.0, 0.0)) == []
    assert ledger_violations(grpo_run("bad", 7.0, 0.25)) == [
        "a batch without 8 prompts", "verifier errors (max rate 0.250)"
    ]  # fmt: skip
    climbing = [
        _run(tmp_path / "a", "grpo-s0", "grpo", [0.5, 0.55, 0.6], 128, steps=2),
        _run(tmp_path / "a", "pc-s0", "pilot_commit", [0.5, 0.6, 0.6], 100, steps=2),
    ]
    assert "GRPO still climbing" in cost_verdicts(measure(climbing), tolerance=1.0,
                                                  require_signal=True)[0]  # fmt: skip
    peaked = [
        _run(tmp_path / "b", "grpo-s0", "grpo", [0.5, 0.6, 0.55], 128, steps=2),
        _run(tmp_path / "b", "pc-s0", "pilot_commit", [0.5, 0.55, 0.6], 100, steps=2),
    ]
    table = measure(peaked)  # PC reaches 0.6 at 200 rollouts, GRPO at 128
    assert "PC within tolerance" in cost_verdicts(table, tolerance=1.0, require_signal=True)[0]
    with pytest.raises(AssertionError, match="PC needed 200.0 rollouts to the GRPO target"):
        cost_verdicts(table, tolerance=0.5, require_signal=True)
    flat = [
        _run(tmp_path / "c", "grpo-s0", "grpo", [0.6, 0.6, 0.5], 128, steps=2),
        _run(tmp_path / "c", "pc-s0", "pilot_commit", [0.6, 0.6, 0.6], 100, steps=2),
    ]
    with pytest.raises(AssertionError, match="no signal"):
        cost_verdicts(measure(flat), tolerance=1.0, require_signal=True)
    # no informative-rollout metrics in hand-written runs: the mechanism check says so
    assert mechanism_violations(table) == [
        "seed 0: pc spends None rollouts per informative one, GRPO None"
    ]


def test_a_study_expands_into_one_experiment_per_cell_with_its_own_targets(tmp_path):
    study = tmp_path / "grid.toml"
    study.write_text("""
title = "a grid"
seeds = [0, 1, 2]
set = ["eval.every=5"]

[[variant]]
name = "grpo"
config = "tiny-grpo.toml"

[[variant]]
name = "pc"
config = "tiny-pc.toml"

[[variant]]
name = "dapo"
config = "tiny-dapo.toml"
seeds = [0]

[[cell]]
name = "n16"

[[cell]]
name = "n64"
set = ["pilot.n_pilot=16", "commit.n_commit=48"]
variants = ["grpo", "pc"]
variant_set = { pc = ["score.evict_at=1.01"] }

[[block]]
name = "group size"
cells = ["n16", "n64"]
rule = "confirmed if ..."
""")
    s = ex.load_study(study)
    assert [c.name for c in s.cells] == ["grid-n16", "grid-n64"] and s.seeds == (0, 1, 2)
    n16, n64 = s.cells
    assert n16.subdir == "grid-n16" and [v.name for v in n64.variants] == ["grpo", "pc"]
    pc = {v.name: v for v in n64.variants}["pc"]
    assert pc.overrides == ("eval.every=5", "pilot.n_pilot=16", "commit.n_commit=48",
                            "score.evict_at=1.01")  # fmt: skip
    # DAPO runs seed 0 only: its other seeds are never configured, so never "left out"
    runs = ex.variant_configs(n16, seeds=(0, 1, 2))
    assert [(v.name, seed) for v, seed, _ in runs].count(("dapo", 0)) == 1
    assert ("dapo", 1) not in [(v.name, seed) for v, seed, _ in runs]
    assert {cfg.group_size for _, _, cfg in ex.variant_configs(n64, seeds=(0,))} == {64}
    study.write_text(study.read_text().replace('cells = ["n16", "n64"]', 'cells = ["n32"]'))
    with pytest.raises(ValueError, match="unknown cells"):
        ex.load_study(study)
    with pytest.raises(ValueError, match="read it with load_study"):
        ex.load_experiment(study)


def test_measured_cells_read_each_cell_against_its_own_targets(tmp_path):
    study = tmp_path / "grid.toml"
    study.write_text('seeds = [0]\n[[variant]]\nname = "grpo"\nconfig = "tiny-grpo.toml"\n'
                     '[[variant]]\nname = "pc"\nconfig = "tiny-pc.toml"\n'
                     '[[cell]]\nname = "a"\n[[cell]]\nname = "b"\n')  # fmt: skip
    s = ex.load_study(study)
    root = tmp_path / "runs"
    # cell a: PC reaches GRPO's 0.6 after 1 step of 64 (GRPO: 2 steps of 128); cell b: no runs
    _run(root / "grid-a", "grpo-s0", "grpo", [0.5, 0.55, 0.6], 128, steps=2)
    _run(root / "grid-a", "pc-s0", "pilot_commit", [0.5, 0.6, 0.6], 64, steps=2)
    cells = ex.measured_cells(s, root)
    assert cells["label"].to_list() == ["a"] and cells["n"][0] == 16
    assert cells["ratio"][0] == pytest.approx(256 / 64) and cells["seeds"][0] == 1
