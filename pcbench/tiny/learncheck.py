"""Learning check: does group-based RL measurably improve a policy? (the model-organism test)

GRPO runs (a config, one per seed) on the policy; each run's held-out gain is measured paired on
the same prompts: per prompt, the mean@k over the last `last` evaluations minus its step-0
mean@k. The gain's standard error is sd / sqrt(prompts). A default qualifies as a model organism
for allocation research when, in every seed, the gain is >= `min_gain` with SE <= `max_se` and
gain >= 5 SE, and the run's peak does not come within the first quarter of its steps (the gain
keeps coming).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pcbench.analysis import accuracy_curve, paired_gain, run_evals
from pcbench.run import Run


@dataclass(frozen=True)
class Criteria:
    min_gain: float = 0.10  # absolute held-out mean@k gain
    max_se: float = 0.01  # paired standard error of that gain
    min_z: float = 5.0  # gain / SE
    no_peak_before: float = 0.25  # share of the run's steps the peak may not fall within


def last_evals_gain(run: Run, last: int = 2, benchmark: str | None = None) -> dict:
    """Gain of the mean of the last `last` evaluations over step 0, per prompt, with its SE."""
    evals = run_evals(run, benchmark)
    steps = sorted(evals["step"].unique().to_list())
    if len(steps) < 2 or steps[0] != 0:
        raise ValueError(f"{run.name}: needs a step-0 evaluation and at least one more")
    tail = steps[1:][-last:]
    curve = accuracy_curve(run, benchmark)
    peak_step = int(curve.sort("accuracy", descending=True, maintain_order=True)["step"][0])
    ledger = run.ledger()
    seconds = float(ledger["time/step"].sum()) if "time/step" in ledger.columns else None
    return paired_gain(evals, tail) | {
        "run": run.name, "steps": run.config.steps, "evaluated": tail, "peak_step": peak_step,
        "curve": [round(x, 4) for x in curve["accuracy"].to_list()], "seconds": seconds,
    }  # fmt: skip


def verdict(row: dict, c: Criteria = Criteria()) -> list[str]:
    """The criteria a learning-check row fails ([] = it qualifies)."""
    fails = []
    if row["gain"] < c.min_gain:
        fails.append(f"gain {row['gain']:+.4f} < {c.min_gain}")
    if row["se"] > c.max_se:
        fails.append(f"SE {row['se']:.4f} > {c.max_se}")
    if row["gain"] < c.min_z * row["se"]:
        fails.append(f"gain < {c.min_z:g} SE")
    if 0 < row["peak_step"] <= c.no_peak_before * row["steps"]:
        fails.append(f"peak at step {row['peak_step']} of {row['steps']}")
    return fails


def learning_check(model: str, config: str, seeds, root: str | Path, sets=(), progress=False):
    """Train (or reuse) one GRPO run per seed on `model` and measure each; returns the rows."""
    from pcbench.config import load_config
    from pcbench.loop import train
    from pcbench.run import open_run

    rows = []
    for seed in seeds:
        cfg = load_config(config, [*sets, f"model={model}", f"seed={seed}",
                                   f"name=learncheck-s{seed}"])  # fmt: skip
        state, run = open_run(cfg, root, resume=True)
        train(state, cfg, run, progress=progress)
        row = last_evals_gain(run)
        rows.append(row | {"seed": seed, "fails": verdict(row)})
    return rows


def card_text(rows: list[dict], command: str, c: Criteria = Criteria()) -> str:
    """The learning check as a CARD.md section: per seed, the curve's ends, the paired gain
    with its SE, where the peak came, and the verdict against the organism criteria."""
    ok = not any(r["fails"] for r in rows)
    lines = [
        "## Learning check (GRPO learns on this policy)",
        f"`{command}`: one GRPO run per seed; gain = per held-out prompt, mean@k of the last "
        "two evaluations minus step 0, averaged over prompts, ± its paired standard error. "
        f"Criteria: gain >= {c.min_gain} with SE <= {c.max_se} and >= {c.min_z:g} SE in every "
        f"seed, peak not in the first {c.no_peak_before:.0%} of steps.",
        "",
        "| seed | steps | held-out prompts | step 0 | last evals | gain ± SE | peak at step "
        "| run time | verdict |",
        "|---|---|---|---|---|---|---|---|---|",
        *(
            f"| {r['seed']} | {r['steps']} | {r['prompts']} | {r['start']:.3f} | {r['end']:.3f} "
            f"| {r['gain']:+.4f} ± {r['se']:.4f} | {r['peak_step']} "
            f"| {_minutes(r.get('seconds'))} | {'; '.join(r['fails']) or 'qualifies'} |"
            for r in rows
        ),
        "",
        f"Model organism: **{'yes' if ok else 'no'}**. Curves (mean@k per evaluation): "
        + "; ".join(f"seed {r['seed']}: {r['curve']}" for r in rows)
        + ".",
    ]
    return "\n".join(lines)


def _minutes(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds / 60:.1f} min"


def write_card_section(model: str | Path, rows: list[dict], command: str) -> Path:
    """Put the learning check into the model's CARD.md (its own block; `tiny profile --card`
    keeps it when it rewrites the rest)."""
    from pcbench.experiments import write_block
    from pcbench.tiny.card import LEARNCHECK

    return write_block(Path(model) / "CARD.md", LEARNCHECK, card_text(rows, command))
