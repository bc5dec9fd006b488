"""compare / report over run directories (hand-written ledgers and evals: pure analysis logic)."""

import json
import re

import polars as pl
import pytest

from pcbench.analysis import FIRST_EVAL_SMOOTHED, Crossing, to_target
from pcbench.cli import main
from pcbench.config import RunConfig
from pcbench.report import write_report
from pcbench.results import measure
from pcbench.run import Run


def _run(root, name, strategy, accuracy, rollouts_per_step, steps=20):
    seed = int(name.rsplit("-s", 1)[1]) if re.search(r"-s\d+$", name) else 0
    run = Run.create(RunConfig(name=name, strategy=strategy, steps=steps, seed=seed), root)
    for step, acc in enumerate(accuracy):
        evals = pl.DataFrame(
            {"step": [step] * 2, "benchmark": ["arith"] * 2, "prompt_id": ["a", "b"], "k": [4, 4],
             "mean@k": [acc, acc], "pass@k": [min(1.0, acc + 0.1)] * 2}
        )  # fmt: skip
        run.write("evals", step, evals)
        if step:
            ledger = {"step": [step], f"rollout_stats/{'pilot' if strategy == 'pilot_commit' else strategy}": [float(rollouts_per_step)],
                      f"token_stats/{'pilot' if strategy == 'pilot_commit' else strategy}": [10.0 * rollouts_per_step],
                      "filtering_stats/kept": [3.0], "filtering_stats/too_easy": [5.0],
                      # training seconds = rollouts / 64; the evaluation's second is left out
                      "time/step": [rollouts_per_step / 64 + 1.0], "time/evaluate": [1.0]}  # fmt: skip
            run.write("ledger", step, pl.DataFrame(ledger))
            scores = pl.DataFrame(
                {
                    "step": [step] * 3,
                    "prompt_id": ["a", "b", "c"],
                    "mean": [0.0, 0.5, 1.0],
                    "var": [0.0, 0.25, 0.0],
                }
            )
            run.write("scores", step, scores)
    return run


@pytest.fixture
def runs(tmp_path):
    grpo = _run(tmp_path, "g", "grpo", [0.5, 0.55, 0.6, 0.58], 128)
    pc = _run(tmp_path, "p", "pilot_commit", [0.5, 0.6, 0.62, 0.61], 100)
    dapo = _run(tmp_path, "d", "dapo", [0.5, 0.52, 0.54, 0.6], 300)
    return [pc, grpo, dapo]


def test_compare_targets_peak_grpo_and_counts_rollouts_to_it(runs):
    table = measure(runs)
    assert table["target"].to_list() == [0.6] * 3  # every run is seed 0: GRPO's seed-0 peak
    rows = {r["run"]: r for r in table.to_dicts()}
    assert rows["p"]["rollouts_to_target"] == 100  # reached at step 1
    assert rows["g"]["rollouts_to_target"] == 256  # step 2
    assert rows["d"]["rollouts_to_target"] == 900  # step 3
    assert rows["p"]["x_vs_grpo"] == pytest.approx(2.56)
    assert rows["p"]["x_vs_dapo"] == pytest.approx(9.0)
    assert rows["p"]["x_vs_pc"] is None  # no run of the paper-PC variant `pc` here
    assert rows["p"]["tokens_to_target"] == 1000 and rows["p"]["best_acc"] == 0.62


def test_smoothing_and_an_unreached_target(runs):
    table = measure(runs, crossing=FIRST_EVAL_SMOOTHED)
    assert table["target"][0] == pytest.approx(0.59)  # trailing mean of (0.6, 0.58)
    table = measure(runs, target=0.7)
    assert table["rollouts_to_target"].null_count() == 3
    assert (
        to_target(
            pl.DataFrame(
                {
                    "accuracy": [0.1],
                    "step": [0],
                    "cumulative/rollouts": [0.0],
                    "cumulative/tokens": [0.0],
                }
            ),
            0.5,
        )["step"]
        is None
    )


def test_report_is_one_html_file_plotly_from_cdn_or_inlined(runs, tmp_path):
    small = write_report([r.path for r in runs], tmp_path / "cdn.html").read_text()
    assert small.count('src="https://cdn.plot.ly/') == 1 and len(small) < 500_000
    out = write_report([r.path for r in runs], tmp_path / "r.html", offline=True)
    text = out.read_text()
    assert text.count("<script") >= 4 and "plotly" in text.lower()
    assert '<script src="http' not in text and len(text) > 3_000_000  # plotly.js inlined
    assert "Accuracy vs cumulative rollouts" in text and "p: pilot pass rates" in text
    assert "<td>2.56</td>" in text  # the PC/GRPO ratio, written as `pcbench compare` writes it


def test_cli_compare_prints_the_table(runs, capsys):
    assert main(["compare", *[str(r.path) for r in runs]]) == 0
    out = capsys.readouterr().out
    assert "target accuracy: 0.6000 (seed 0)" in out and "×GRPO" in out
    assert "×PC" not in out  # no paper-preset "pc" variant here: its all-empty column is left out
    assert max(len(line) for line in out.splitlines()) <= 120
    assert "900.0" not in out and " 900 " in out  # counts are integers
    # an unreached target reads "not reached"; csv and json keep every column, nulls empty
    assert main(["compare", *[str(r.path) for r in runs], "--target", "0.99"]) == 0
    assert "not reached" in capsys.readouterr().out
    assert main(["compare", *[str(r.path) for r in runs], "--format", "csv"]) == 0
    csv = capsys.readouterr().out.splitlines()
    assert csv[0].startswith("run,strategy,seed") and "per_informative" in csv[0]
    assert main(["compare", *[str(r.path) for r in runs], "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["rollouts_to_target"] == 100 and isinstance(rows[0]["rollouts"], int)
    assert main(["compare", *[str(r.path) for r in runs], "--format", "markdown"]) == 0
    assert "| run | seed |" in capsys.readouterr().out


def _evals_run(root, name, per_step):
    """A GRPO run whose evals give each of 4 prompts its own mean@k at each step."""
    run = Run.create(RunConfig(name=name, strategy="grpo", steps=len(per_step) - 1), root)
    for step, accs in enumerate(per_step):
        run.write("evals", step, pl.DataFrame(
            {"step": [step] * 4, "benchmark": ["arith"] * 4, "prompt_id": list("abcd"),
             "k": [4] * 4, "mean@k": accs, "pass@k": [1.0] * 4}))  # fmt: skip
    return run


def test_target_signal_is_the_paired_gain_of_the_smoothed_peak_and_its_se(tmp_path):
    from pcbench.analysis import target_signal

    run = _evals_run(tmp_path, "g", [[0.5, 0.5, 0.25, 0.75], [0.75, 0.5, 0.5, 0.75],
                                     [1.0, 0.75, 0.5, 0.75], [0.5, 0.5, 0.5, 0.5]])  # fmt: skip
    # smooth 2: the peak is step 2 (mean of steps 1-2 = 0.6875); per-prompt window means minus
    # step 0: (0.375, 0.125, 0.25, 0.0), mean 0.1875, sample sd 0.16137, SE = sd / 2.
    sig = target_signal(run, smooth=2)
    assert sig["step"] == 2 and sig["target"] == pytest.approx(0.6875)
    assert sig["initial"] == 0.5 and sig["gain"] == pytest.approx(0.1875)
    assert sig["paired_se"] == pytest.approx(0.161374 / 2, rel=1e-5) and sig["prompts"] == 4
    # A curve whose peak is step 0 has no gain at all: nothing learned, nothing to compare.
    flat = _evals_run(tmp_path, "f", [[0.5] * 4, [0.5, 0.5, 0.25, 0.5], [0.25] * 4])
    sig = target_signal(flat, smooth=1)
    assert sig["step"] == 0 and sig["gain"] == 0.0 and not sig["gain"] > sig["paired_se"]


def test_learning_check_gain_is_paired_over_the_last_evaluations(tmp_path):
    from pcbench.tiny.learncheck import Criteria, last_evals_gain, verdict

    run = _evals_run(tmp_path, "g", [[0.5, 0.5, 0.25, 0.75], [0.75, 0.5, 0.5, 0.75],
                                     [1.0, 0.75, 0.5, 0.75], [0.5, 0.75, 0.5, 1.0]])  # fmt: skip
    row = last_evals_gain(run, last=2)
    # Steps 2 and 3 per prompt: (0.75, 0.75, 0.5, 0.875) minus step 0: (0.25, 0.25, 0.25, 0.125)
    assert row["evaluated"] == [2, 3] and row["gain"] == pytest.approx(0.21875)
    assert row["se"] == pytest.approx(0.0625 / 2) and row["peak_step"] == 2 and row["steps"] == 3
    assert verdict(row) == ["SE 0.0312 > 0.01"]  # the default criteria: gain 0.22 >= 0.10, z 7
    fails = verdict(row, Criteria(min_gain=0.3, max_se=0.05, min_z=8, no_peak_before=0.7))
    assert fails == ["gain +0.2188 < 0.3", "gain < 8 SE", "peak at step 2 of 3"]
    assert verdict(row, Criteria(min_gain=0.2, max_se=0.05)) == []


def test_measure_pairs_targets_and_ratios_by_seed(tmp_path):
    # Seed 1's GRPO peaks higher than seed 0's: each PC run is measured against its own seed's
    # target, and x_vs_grpo divides by its own seed's GRPO cost (never across seeds).
    runs = [
        _run(tmp_path, "grpo-s0", "grpo", [0.5, 0.55, 0.6], 128, steps=2),
        _run(tmp_path, "pc-s0", "pilot_commit", [0.5, 0.6, 0.6], 64, steps=2),
        _run(tmp_path, "grpo-s1", "grpo", [0.5, 0.7, 0.6], 128, steps=2),
        _run(tmp_path, "pc-s1", "pilot_commit", [0.5, 0.6, 0.7], 64, steps=2),
    ]
    rows = {r["run"]: r for r in measure(runs).to_dicts()}
    assert rows["pc-s0"]["target"] == 0.6 and rows["pc-s1"]["target"] == 0.7
    assert rows["pc-s0"]["x_vs_grpo"] == pytest.approx(256 / 64)
    assert rows["pc-s1"]["x_vs_grpo"] == pytest.approx(128 / 128)
    assert rows["pc-s1"]["variant"] == "pc" and rows["pc-s1"]["x_vs_pc"] == 1.0


def test_pass_rate_spend_shares_the_rollouts_by_their_groups_pass_rate():
    from pcbench.analysis import PASS_RATE_BUCKETS, pass_rate_spend

    # step 1: a 4 of 4 right, b 0 of 2; step 2: a again 1 of 4 (its own group that step), c 2 of 2
    rollouts = pl.DataFrame({
        "step": [1] * 6 + [2] * 6,
        "prompt_id": ["a"] * 4 + ["b"] * 2 + ["a"] * 4 + ["c"] * 2,
        "correct": [True] * 4 + [False] * 2 + [True, False, False, False] + [True, True],
    })  # fmt: skip
    shares = pass_rate_spend(rollouts)
    assert list(shares) == list(PASS_RATE_BUCKETS)
    assert shares == {"0": 2 / 12, "(0, 0.25]": 4 / 12, "(0.25, 0.5]": 0.0, "(0.5, 0.75]": 0.0,
                      "(0.75, 1)": 0.0, "1": 6 / 12}  # fmt: skip


def _curve(accuracy, rollouts, se=None):
    return pl.DataFrame({
        "step": list(range(len(accuracy))), "accuracy": accuracy,
        "se": se or [0.0] * len(accuracy), "cumulative/rollouts": [float(r) for r in rollouts],
        "cumulative/tokens": [10.0 * r for r in rollouts],
    })  # fmt: skip


def test_the_interpolated_crossing_reads_the_line_between_two_evaluations():
    from pcbench.analysis import FIRST_EVAL_SMOOTHED, INTERPOLATED

    curve = _curve([0.5, 0.55, 0.65], [0, 100, 300])
    hit = to_target(curve, 0.6, INTERPOLATED)
    # halfway from 0.55 to 0.65: halfway from 100 to 300 rollouts, from step 1 to step 2
    assert hit["rollouts"] == pytest.approx(200) and hit["step"] == pytest.approx(1.5)
    assert hit["tokens"] == pytest.approx(2000) and hit["seconds"] is None  # no time column
    assert to_target(curve, 0.6, Crossing(interpolate=False))["rollouts"] == 300
    # the old rule: trailing means (0.5, 0.525, 0.6): reached at step 2 only
    assert to_target(curve.with_columns(accuracy=pl.Series([0.5, 0.525, 0.6])), 0.6,
                     FIRST_EVAL_SMOOTHED)["rollouts"] == 300  # fmt: skip
    assert to_target(curve, 0.5, INTERPOLATED)["rollouts"] == 0  # met at step 0: no cost
    assert to_target(curve, 0.7, INTERPOLATED)["rollouts"] is None


def test_the_interpolated_crossing_does_not_charge_a_strategy_for_its_rollouts_per_step():
    # One learning curve in rollouts (accuracy 0.5 + rollouts / 10,000), evaluated every 15
    # steps by a strategy of 128 rollouts a step and by one of 256: both reach 0.8 at 3,000
    # rollouts. The interpolated reading says so for both; a 2-eval trailing mean read at the
    # first evaluation charges the second about twice the lag of the first.
    from pcbench.analysis import FIRST_EVAL_SMOOTHED, INTERPOLATED

    def evaluated(per_step, smooth):
        rollouts = [15 * per_step * i for i in range(8)]
        acc = pl.Series([0.5 + r / 10_000 for r in rollouts]).rolling_mean(smooth, min_samples=1)
        return _curve(acc.to_list(), rollouts)

    for per_step in (128, 256):
        assert to_target(evaluated(per_step, 1), 0.8, INTERPOLATED)["rollouts"] == pytest.approx(
            3000
        )
    slow, fast = (to_target(evaluated(p, 2), 0.8, FIRST_EVAL_SMOOTHED)["rollouts"]
                  for p in (128, 256))  # fmt: skip
    # trailing means at 0, 1,920, 3,840, 5,760 rollouts: 0.5, 0.596, 0.788, 0.980; at 0, 3,840,
    # 7,680: 0.5, 0.692, 1.076
    assert (slow, fast) == (5760, 7680)  # 2,760 and 4,680 rollouts of lag


def test_the_crossing_interval_is_the_reading_on_the_curve_plus_and_minus_its_se():
    from pcbench.analysis import INTERPOLATED

    curve = _curve([0.5, 0.55, 0.65, 0.75], [0, 100, 300, 400], se=[0.03, 0.03, 0.04, 0.04])
    hit = to_target(curve, 0.6, INTERPOLATED, target_se=0.03)
    # band per evaluation = sqrt(se^2 + 0.03^2): 0.0424, 0.0424, 0.05, 0.05
    b1, b2 = (0.03**2 * 2) ** 0.5, 0.05
    # + band: 0.55 + b1 = 0.5924 < 0.6 <= 0.65 + b2 = 0.70: between steps 1 and 2
    assert hit["rollouts_lo"] == pytest.approx(100 + 200 * (0.6 - 0.55 - b1) / (0.1 + b2 - b1))
    # - band: 0.65 - 0.05 = 0.60 reaches it at step 2 exactly
    assert hit["rollouts_hi"] == pytest.approx(300)
    assert hit["rollouts"] == pytest.approx(200)
    assert hit["rollouts_lo"] < hit["rollouts"] < hit["rollouts_hi"]
    wide = to_target(curve, 0.6, Crossing(z=4.0), target_se=0.03)
    assert wide["rollouts_hi"] is None and wide["rollouts_lo"] == 0  # not resolved at 4 SE


def test_a_target_at_grpos_last_evaluation_is_censored(tmp_path):
    from pcbench.analysis import target_signal

    rising = _evals_run(tmp_path, "r", [[0.5] * 4, [0.5, 0.75, 0.5, 0.5], [0.75, 0.75, 0.5, 0.5]])
    sig = target_signal(rising)
    assert sig["censored"] and sig["step"] == 2 and sig["target"] == 0.625
    assert sig["se"] == pytest.approx(pl.Series([0.75, 0.75, 0.5, 0.5]).std() / 2)
    peaked = _evals_run(tmp_path, "p", [[0.5] * 4, [0.75, 0.75, 0.5, 0.5], [0.5] * 4])
    assert not target_signal(peaked)["censored"]


def test_the_table_states_the_rule_its_interval_and_the_censored_seeds(tmp_path):
    from pcbench.results import summarize
    from pcbench.tables import markdown

    runs = [_run(tmp_path, "grpo-s0", "grpo", [0.5, 0.55, 0.6], 128, steps=2),
            _run(tmp_path, "pc-s0", "pilot_commit", [0.5, 0.58, 0.62], 64, steps=2)]  # fmt: skip
    table = measure(runs)
    pc = table.filter(pl.col("run") == "pc-s0").row(0, named=True)
    assert pc["rollouts_to_target"] == pytest.approx(64 + 64 * 0.02 / 0.04)  # 96
    assert pc["x_vs_grpo"] == pytest.approx(256 / 96) and pc["target_censored"]
    text = markdown(summarize(table), table)
    assert "interpolated between evaluations (± 1 SE)" in text and "| ± 1 SE |" in text
    assert "Censored (GRPO's peak is its last evaluation" in text and "seed 0." in text
    header, sep = text.splitlines()[2:4]
    assert header.count("|") == sep.count("|")  # one column more, in the header and the rule
