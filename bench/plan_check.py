"""The plan's prediction beside what one experiment's finished runs spent (issue 31's validation,
deliver 2): rollouts a step, rounds a step, rollouts per informative rollout, keep share.

    python bench/plan_check.py EXPERIMENT [--runs runs/results] [--seeds 0 1 2] [--write MD]

Each run is predicted by `plan.predict` from the pass rates of its seed's GRPO run in the same
folder (`results.predicted_vs_measured`: the profile the runs met, not the step-0 one). With
--write, the table goes into MD's block `plan-EXPERIMENT`, beside the section's own table.
"""

from __future__ import annotations

from common import experiment_args, publish_reading

from pcbench import experiments as ex
from pcbench.results import predicted_vs_measured
from pcbench.tables import validation_markdown


def main() -> None:
    args = experiment_args(__doc__, "plan")
    exp = ex.EXPERIMENTS[args.experiment]
    runs = ex.finished_runs(exp, args.runs, args.seeds)
    if not runs:
        raise SystemExit(f"no finished runs of {args.experiment} under {args.runs}")
    text = validation_markdown(predicted_vs_measured(runs))
    publish_reading(text, exp, args, "plan")


if __name__ == "__main__":
    main()
