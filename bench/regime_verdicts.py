"""The regime study's blocks read by their pre-registered rules, computed from the runs.

    python bench/regime_verdicts.py [--runs runs/results]

Each `[[block]]` of configs/experiments/regime.toml carries its decision rule as text; this
script is that text as code, one function per block name (a block with no function, or a
function with no block, is an error: the file is the record and the code must follow it). The
numbers are the study tables' own: per-seed x = GRPO's rollouts to its target ÷ the variant's
(`results.measure`, the crossing rule of docs/method.md), means over the seeds that reached the
target, the bootstrap interval of `results.bootstrap_interval`, and the plan's A from the
committed profiles (bench/regime_plan.py). A block whose cells have not all landed says which
it waits for. The verdicts written in docs/RESULTS.md §10 are checked against this output.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path

import polars as pl
from regime_plan import advantage, predictions  # bench/ is the script's own folder

from pcbench import experiments as ex
from pcbench.results import bootstrap_interval

PerSeed = dict[int, float | None]  # seed -> x (None: the variant did not reach the target)
RISE_FLOOR = 1.3  # the "x >= 1.3 in every seed" of the group-size and difficulty-mix rules
PAYS, PAYS_LOW = 1.5, 1.0  # "pays if mean x >= 1.5 with the interval's lower end >= 1.0"
ORDER_RHO, LEVEL_RATIO = 0.8, 1.25  # the plan block's Spearman floor and its 25% level band


def mean_x(xs: PerSeed) -> float | None:
    """Mean over the seeds that reached the target (the tables' mean)."""
    got = [x for x in xs.values() if x is not None]
    return sum(got) / len(got) if got else None


def rises(before: PerSeed, after: PerSeed, floor: float | None = None) -> tuple[bool, str]:
    """The shared "x rises" rule: mean x after > before, x higher in >= 2 of 3 paired seeds,
    and (with a floor) x >= floor after in every seed. A seed that did not reach the target
    after does not rise and is below any floor; one that did not before is risen above."""
    seeds = sorted(set(before) & set(after))
    up = sum(after[s] is not None and (before[s] is None or after[s] > before[s]) for s in seeds)
    m0, m1 = mean_x(before), mean_x(after)
    means_up = m0 is not None and m1 is not None and m1 > m0
    floor_ok = floor is None or all(after.get(s) is not None and after[s] >= floor for s in seeds)
    ok = means_up and up >= 2 and floor_ok
    why = f"mean {_f(m0)} -> {_f(m1)}, up in {up} of {len(seeds)} paired seeds"
    if floor is not None:
        why += f", >= {floor} in every seed: {'yes' if floor_ok else 'no'}"
    return ok, why


def pays(xs: PerSeed) -> tuple[str, str]:
    """Per cell: pays if mean x >= 1.5 with the bootstrap interval's lower end >= 1.0; does not
    pay if mean x < 1.0; inconclusive otherwise."""
    m = mean_x(xs)
    ci = bootstrap_interval([x for x in xs.values() if x is not None])
    lo = ci[0] if ci else m
    why = f"mean {_f(m)} [{_f(lo)}, {_f(ci[1] if ci else m)}]"
    if m is not None and m >= PAYS and lo is not None and lo >= PAYS_LOW:
        return "pays", why
    if m is None or m < PAYS_LOW:
        return "does not pay", why
    return "inconclusive", why


def spearman(a: list[float], b: list[float]) -> float:
    """Rank correlation (average ranks for ties: polars' Spearman)."""
    return pl.DataFrame({"a": a, "b": b}).select(pl.corr("a", "b", method="spearman")).item()


def _f(v: float | None) -> str:
    return "—" if v is None else f"{v:.2f}"


def _half(x: dict, before: str, after: str) -> tuple[bool, str] | None:
    """One half of a two-half block (PC's x from cell `before` to `after`, with the floor), or
    None while either cell has not landed."""
    if before not in x or after not in x:
        return None
    return rises(x[before]["pc"], x[after]["pc"], RISE_FLOOR)


def _both(halves: dict[str, tuple[bool, str] | None]) -> tuple[str, str]:
    """Two halves of a block: confirmed if both confirm, refuted if neither, mixed otherwise;
    while a half waits, the other is read on its own."""
    read = {n: h for n, h in halves.items() if h is not None}
    said = "; ".join(f"{n}: {'confirmed' if h[0] else 'refuted'} ({h[1]})" for n, h in read.items())
    if len(read) < len(halves):
        return "waits", said
    return {2: "confirmed", 0: "refuted"}.get(sum(h[0] for h in read.values()), "mixed"), said


# ---- one function per block: x[cell][variant] = PerSeed; A[cell] = the plan's advantage -------


def group_size(x: dict, A: dict) -> tuple[str, str]:
    return _both({"shipped": _half(x, "n16-shipped", "n64-shipped"),
                  "filtered": _half(x, "n16-mixed", "n64-mixed")})  # fmt: skip


def difficulty_mix(x: dict, A: dict) -> tuple[str, str]:
    return _both({"n 16": _half(x, "n16-shipped", "n16-mixed"),
                  "n 64": _half(x, "n64-shipped", "n64-mixed")})  # fmt: skip


def optimizer_steps(x: dict, A: dict) -> tuple[str, str]:
    ok, why = rises(x["n16-shipped"]["pc"], x["mb-n16-shipped"]["pc"])
    return ("confirmed" if ok else "refuted"), why


def epochs_and_eviction(x: dict, A: dict) -> tuple[str, str]:
    pc, keep = x["epochs-n16"]["pc"], x["epochs-n16"]["pc-noevict"]
    every = all(v is not None for v in pc.values())
    ok, why = rises(keep, pc)  # pc above pc-noevict, paired, and in the mean
    return ("confirmed" if every and ok else "refuted"), (
        f"pc reached in every seed: {'yes' if every else 'no'}; pc-noevict -> pc: {why}"
    )


def where_it_pays(x: dict, A: dict) -> tuple[str, str]:
    per = {cell: pays(v["pc"]) for cell, v in x.items()}
    paying = [c for c, (v, _) in per.items() if v == "pays"]
    verdict = f"pays in {', '.join(paying)}" if paying else "pays in no cell"
    return verdict, "; ".join(f"{c}: {v} ({why})" for c, (v, why) in per.items())


def plan_predicts(x: dict, A: dict) -> tuple[str, str]:
    cells = list(A)
    means = [mean_x(x[c]["pc"]) for c in cells]
    rho = spearman([A[c] for c in cells], means)
    close = [
        abs(math.log(m / A[c])) <= math.log(LEVEL_RATIO) for c, m in zip(cells, means, strict=True)
    ]
    order, level = rho >= ORDER_RHO, sum(close) >= 3
    verdict = (f"ordering {'confirmed' if order else 'refuted'}, "
               f"level {'confirmed' if level else 'refuted'}")  # fmt: skip
    return verdict, f"Spearman {rho:.2f} over {len(cells)} cells; within 25%: " + ", ".join(
        f"{c} (x {m:.2f} / A {A[c]:.3f})"
        for c, m, ok in zip(cells, means, close, strict=True)
        if ok
    )


RULES: dict[str, Callable[[dict, dict], tuple[str, str]]] = {
    "group size": group_size,
    "difficulty mix": difficulty_mix,
    "optimizer steps": optimizer_steps,
    "epochs and eviction": epochs_and_eviction,
    "where it pays": where_it_pays,
    "does the plan predict it": plan_predicts,
}
PARTIAL = {"where it pays", "group size", "difficulty mix"}  # read per cell or half as they land


def too_short(peak_steps: list[int], steps: int) -> bool:
    """The study's length rule: a cell whose GRPO peaks in the first 25% of its steps in 2 of 3
    seeds is too short, and is not read against the rules."""
    return sum(p <= 0.25 * steps for p in peak_steps) >= 2


def per_seed_x(study: ex.Study, root: str | Path) -> tuple[dict, dict[str, list[int]]]:
    """(x_vs_grpo per cell, variant and seed, for the cells whose every-seed variants (GRPO, PC,
    pc-noevict: those the rules read) have finished every seed; the cells too short by the
    length rule, with GRPO's peak steps)."""
    out, short = {}, {}
    for cell in study.cells:
        runs = ex.per_run(cell, root, seeds=study.seeds)
        if runs.height == 0:
            continue
        by = {}
        for (variant,), rows in runs.group_by("variant"):
            by[variant] = dict(
                zip(rows["seed"].to_list(), rows["x_vs_grpo"].to_list(), strict=True)
            )
        name = cell.name.removeprefix(f"{study.name}-")
        every_seed = [v.name for v in cell.variants if v.seeds is None]  # the rules' variants
        if not all(set(by.get(v, {})) >= set(study.seeds) for v in every_seed):
            continue
        grpo = runs.filter(pl.col("variant") == ex.GRPO_NAME)
        if too_short(grpo["target_step"].to_list(), int(grpo["steps"].max())):
            short[name] = grpo["target_step"].to_list()
        else:
            out[name] = by
    return out, short


def verdicts(study: ex.Study, x: dict, A: dict, short: dict | None = None) -> pl.DataFrame:
    """One row per block: its verdict by its rule, the numbers it read, or the cells it waits
    for (a cell too short by the length rule is never read: its blocks say so)."""
    named = {b["name"] for b in study.blocks}
    if named != set(RULES):
        raise ValueError(f"blocks and rules differ: {sorted(named ^ set(RULES))}")
    short = short or {}
    rows = []
    for b in study.blocks:
        waiting = [c for c in b["cells"] if c not in x and c not in short]
        landed = {c: x[c] for c in b["cells"] if c in x}
        notes = [f"waits for {', '.join(waiting)}"] if waiting else []
        notes += [f"{c} too short (GRPO peaks at {short[c]})" for c in b["cells"] if c in short]
        missing = "; ".join(notes)
        if b["name"] in PARTIAL and landed:
            verdict, read = RULES[b["name"]](landed, A)
            if missing:
                verdict = "waits" if verdict == "waits" else f"{verdict} so far"
                read = "; ".join(filter(None, (read, missing)))
        elif missing:
            verdict, read = ("waits" if waiting else "not read"), missing
        else:
            verdict, read = RULES[b["name"]](landed, {c: A[c] for c in b["cells"] if c in A})
        rows.append({"block": b["name"], "verdict": verdict, "read": read})
    return pl.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", default="runs/results", help="where the study's runs are")
    args = parser.parse_args()
    study = ex.STUDIES["regime"]
    A = dict(advantage(predictions(study)).select("cell", "A").iter_rows())
    x, short = per_seed_x(study, args.runs)
    table = verdicts(study, x, A, short)
    print("| block | verdict | what the rule read |\n|---|---|---|")
    for r in table.iter_rows(named=True):
        print(f"| {r['block']} | {r['verdict']} | {r['read']} |")


if __name__ == "__main__":
    main()
