"""The plan's predictions for every cell of the regime study, written before any of its runs.

    python bench/regime_plan.py [--write configs/experiments/regime-plan.md]

For each cell of configs/experiments/regime.toml and each of its variants: `pcbench.plan`'s
prediction from the profile of the cell's training split (data/profiles/: shipped-n64.json for
the shipped split, mixed-n64.json for the binary-filtered one), and per cell the predicted
advantage of Pilot-Commit over GRPO in rollouts per informative rollout, A = GRPO's ÷ PC's.
It also applies the two choices the study leaves to the plan, by rules fixed here:
- the mini-batch cell is the cell with the largest A (verl's semantics are tried where the plan
  says Pilot-Commit's allocation has the most to give);
- the epochs cell's split is the first S prompts of the shipped split, S = the prompts
  Pilot-Commit pilots in 90 steps at n 16 (the plan's rounds × G × 90) ÷ 4, rounded to a
  multiple of G: the paper's PC made about 4 passes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import polars as pl

from pcbench import experiments as ex
from pcbench.plan import predict
from pcbench.profile import PassRateProfile

ROOT = Path(__file__).resolve().parents[1]
PROFILES = {"shipped": ROOT / "data/profiles/shipped-n64.json",
            "mixed": ROOT / "data/profiles/mixed-n64.json"}  # fmt: skip
PASSES = 4
GRID = ("n16-shipped", "n16-mixed", "n64-shipped", "n64-mixed")  # the cells the choices read


def split_of(cfg) -> str:
    return "mixed" if "mixed" in cfg.train else "shipped"


def predictions(study: ex.Study) -> pl.DataFrame:
    mixtures = {k: PassRateProfile.load(p).mixture for k, p in PROFILES.items()}
    rows = []
    for cell in study.cells:
        for variant, _seed, cfg in ex.variant_configs(cell, seeds=(0,)):
            split = split_of(cfg)
            prompts = (
                cfg.train_prompts
                or pl.scan_parquet(ROOT / cfg.train).select(pl.len()).collect().item()
            )
            p = predict(cfg, mixtures[split], split_prompts=prompts)
            rows.append({"cell": cell.name.removeprefix("regime-"), "variant": variant.name,
                         "split": split, "split_prompts": prompts, "n": cfg.group_size}
                        | p.as_dict())  # fmt: skip
    return pl.DataFrame(rows, infer_schema_length=None)


def advantage(table: pl.DataFrame) -> pl.DataFrame:
    wide = table.filter(pl.col("variant").is_in(["grpo", "pc"])).pivot(
        on="variant", index="cell", values="per_informative"
    )
    return wide.with_columns(A=pl.col("grpo") / pl.col("pc"))


def markdown(table: pl.DataFrame, adv: pl.DataFrame, choices: dict) -> str:
    lines = ["# The plan's predictions for the regime study (written before any of its runs)", "",
             "Made by `python bench/regime_plan.py --write configs/experiments/regime-plan.md` from "
             "the profiles in data/profiles/ (500 prompts x 64 rollouts of each split under the "
             "shipped policy). A = GRPO's rollouts per informative rollout / Pilot-Commit's: the "
             "plan's predicted advantage, the ceiling of what PC can gain in rollouts to target "
             "if learning per informative rollout were the same.", "",
             "| cell | variant | n | rollouts a step | rounds a step | mixed share of trained "
             "groups | rollouts per informative | keep share | P(step > max_rounds) | caveats |",
             "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    fmt = lambda v, f: "—" if v is None else format(v, f)  # noqa: E731
    for r in table.iter_rows(named=True):
        lines.append(f"| {r['cell']} | {r['variant']} | {r['n']} | {fmt(r['rollouts_per_step'], ',.1f')} "
                     f"| {fmt(r['rounds_per_step'], '.2f')} | {fmt(r['mixed_share'], '.3f')} "
                     f"| {fmt(r['per_informative'], '.3f')} | {fmt(r['keep_share'], '.3f')} "
                     f"| {fmt(r['over_max_rounds'], '.3f')} | {r['caveats']} |")  # fmt: skip
    lines += ["", "| cell | GRPO per informative | PC per informative | A (predicted advantage) |",
              "|---|---|---|---|"]  # fmt: skip
    for r in adv.iter_rows(named=True):
        lines.append(f"| {r['cell']} | {r['grpo']:.3f} | {r['pc']:.3f} | {r['A']:.3f} |")
    lines += ["", "Choices the study leaves to the plan (rules in bench/regime_plan.py):", ""]
    lines += [f"- {k}: {v}" for k, v in choices.items()]
    return "\n".join(lines) + "\n"


# The paper's points, placed by assumption (its regime's all-equal share is not reported): the
# 1.5B run at n 128 and the 4B/8B/14B runs at n 64, over the range "most GRPO groups are
# all-correct or all-wrong" (0.5-0.9) that its motivation describes; ratios are its headline.
PAPER = [{"n": 128, "uninformative_lo": 0.5, "uninformative_hi": 0.9,
          "label": "paper 1.5B (1.5-1.9x, assumed share)"},
         {"n": 64, "uninformative_lo": 0.5, "uninformative_hi": 0.9,
          "label": "paper 4B-14B (assumed share)"}]  # fmt: skip


def write_map(study: ex.Study, root: str | Path, path: str | Path) -> pl.DataFrame:
    from pcbench.plan import regime_grid
    from pcbench.plots import regime_map_figure

    mixture = PassRateProfile.load(PROFILES["shipped"]).mixture
    cells = ex.measured_cells(study, root)
    fig = regime_map_figure(regime_grid(mixture), cells if cells.height else None, PAPER,
                            title="Where Pilot-Commit pays: the plan (contour) and the regime "
                                  "study (diamonds)")  # fmt: skip
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.write_html(path, include_plotlyjs="cdn")
    return cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write", help="write the Markdown here")
    parser.add_argument("--map", help="write the regime map (HTML) here, with the measured cells")
    parser.add_argument("--runs", default="runs/results", help="where the study's runs are")
    args = parser.parse_args()
    if args.map:
        cells = write_map(ex.STUDIES["regime"], args.runs, args.map)
        print(cells)
        print(f"wrote {args.map}")
        return
    study = ex.STUDIES["regime"]
    table = predictions(study)
    adv = advantage(table)
    best = adv.filter(pl.col("cell").is_in(GRID)).sort("A", descending=True).row(0, named=True)
    base = table.filter((pl.col("cell") == "n16-shipped") & (pl.col("variant") == "pc")).row(
        0, named=True
    )
    G = 24
    size = round(base["rounds_per_step"] * G * 90 / PASSES / G) * G
    choices = {
        "mini-batch cell": f"{best['cell']} (largest A = {best['A']:.3f})",
        "epochs split": f"train_prompts = {size} (PC at n 16 pilots {base['rounds_per_step']:.2f} "
                        f"rounds x {G} a step: {base['rounds_per_step'] * G * 90:,.0f} prompts in "
                        f"90 steps, / {PASSES} passes, to a multiple of {G})",
    }  # fmt: skip
    text = markdown(table, adv, choices)
    print(text)
    if args.write:
        Path(args.write).write_text(text)
        print(f"wrote {args.write}")


if __name__ == "__main__":
    main()
