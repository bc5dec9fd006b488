"""Multi-seed experiments: named sets of run variants, their runs, and their results tables.

An experiment is a TOML file under `configs/experiments/` (a title and a list of variants);
a variant is a config file under `configs/` plus `--set` overrides, run for each seed into one
shared directory, `<root>/<variant>-s<seed>/`. Variants with the same name are the same runs,
so the GRPO and paper-PC runs of the headline are reused by the ablations (a finished run is
read back, a partial one resumed from its checkpoint); the loader refuses a name defined two
ways. Adding an experiment is adding a file.

This module picks which runs a table compares (finished runs of seeds whose GRPO target is
finished, `left_out` naming the rest); `pcbench.results` compares them: rollouts to target paired
by seed (DESIGN §4 per seed), per-seed ratios, bootstrap intervals, the Markdown table.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from pcbench.analysis import INTERPOLATED, Crossing, accuracy_at, accuracy_curve
from pcbench.config import CONFIGS_DIR, EXPERIMENTS_DIR, RunConfig, load_config
from pcbench.results import first_of_seed, mean_curves, measure, summarize
from pcbench.run import Run
from pcbench.tables import markdown, stopped_markdown

DEFAULT_SEEDS = (0, 1, 2)
GRPO_NAME = "grpo"  # the variant whose runs hold every seed's target, in each runs folder
STOPPED = "stopped.txt"  # in a run directory: why run_experiment went on without finishing it
DEFAULT_CROSSING = INTERPOLATED  # issue 31's rule; FIRST_EVAL_SMOOTHED reads the old tables


@dataclass(frozen=True)
class Variant:
    name: str  # run directory prefix, unique across experiments for a given config
    config: str  # file under configs/
    overrides: tuple[str, ...] = ()
    label: str = ""  # what changed, for tables
    seeds: tuple[int, ...] | None = None  # the seeds it runs (None: every seed asked for)

    def run_name(self, seed: int) -> str:
        return f"{self.name}-s{seed}"


@dataclass(frozen=True)
class Experiment:
    name: str
    title: str
    variants: tuple[Variant, ...]
    # Runs live in <root>/<subdir>/ (e.g. the same variants on another training split), so the
    # same variant names mean other runs there; a subdir experiment holds its own `grpo` targets.
    subdir: str = ""
    sets: tuple[str, ...] = ()  # the overrides every variant starts with (already in theirs)

    def root(self, root: str | Path) -> Path:
        """Where this experiment's runs live under the runs root."""
        return Path(root) / self.subdir


def load_experiment(path: str | Path) -> Experiment:
    """An experiment file: `title`, optional `subdir` (its runs' folder under the runs root) and
    `set` (overrides every variant gets, before its own), and `[[variant]]` tables (name, config,
    set, label)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{path}: not valid TOML: {e}") from None
    if "cell" in data:
        raise ValueError(f"{path}: a study (it has cells): read it with load_study")
    unknown = set(data) - {"title", "subdir", "set", "variant"}
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)} (title, subdir, set, variant)")
    subdir, common = data.get("subdir", ""), tuple(data.get("set", ()))
    if subdir and not re.fullmatch(r"[A-Za-z0-9_.-]+", subdir) or subdir in (".", ".."):
        raise ValueError(f"{path}: subdir = {subdir!r}: use one folder name (letters, digits, -_.)")
    variants = _variants(path, data.get("variant", []), common)
    names = [v.name for v in variants]
    if not variants or len(set(names)) != len(names):
        raise ValueError(f"{path}: needs variants with distinct names; got {names}")
    if subdir and GRPO_NAME not in names:
        raise ValueError(f"{path}: subdir experiments hold their own targets: add a {GRPO_NAME!r}")
    return Experiment(path.stem, data.get("title", path.stem), tuple(variants), subdir, common)


def _variants(path: Path, tables: list[dict], common: tuple[str, ...], extra=None) -> list:
    """The `[[variant]]` tables of a file, each after the `common` overrides (and a study cell's
    `extra[name]` ones after its own)."""
    variants = []
    for i, v in enumerate(tables):
        unknown = set(v) - {"name", "config", "set", "label", "seeds"}
        if unknown or not {"name", "config"} <= set(v):
            raise ValueError(
                f"{path}: variant {i + 1} needs `name` and `config` (and may have `set`, "
                f"`label`, `seeds`); got {sorted(v)}"
            )
        if not (CONFIGS_DIR / v["config"]).exists():
            raise ValueError(
                f"{path}: variant {v['name']!r}: no config {CONFIGS_DIR / v['config']}"
            )
        overrides = (*common, *v.get("set", ()), *(extra or {}).get(v["name"], ()))
        seeds = tuple(v["seeds"]) if "seeds" in v else None
        variants.append(Variant(v["name"], v["config"], overrides, v.get("label", ""), seeds))
    return variants


@dataclass(frozen=True)
class Study:
    """A grid of experiments written down before any of its runs (a pre-registration): one
    `[[cell]]` each, every cell the same `[[variant]]`s under the cell's overrides, in its own
    runs folder `<study>-<cell>/` with its own GRPO targets; `[[block]]`s say which cells test
    which hypothesis, by which decision rule, with the plan's predicted direction."""

    name: str
    title: str
    cells: tuple[Experiment, ...]
    blocks: tuple[dict, ...] = ()
    seeds: tuple[int, ...] = DEFAULT_SEEDS


def load_study(path: str | Path) -> Study:
    """A study file: `title`, `seeds`, `set` (every run), `[[variant]]`s, `[[cell]]`s (name,
    label, set, optional `variants` subset and `variant_set` = {variant: [overrides]}) and
    `[[block]]`s (name, cells, hypothesis, rule, prediction: text the tables are read against)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{path}: not valid TOML: {e}") from None
    unknown = set(data) - {"title", "seeds", "set", "variant", "cell", "block", "protocol"}
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)} of a study")
    common = tuple(data.get("set", ()))
    cells = []
    for c in data.get("cell", []):
        bad = set(c) - {"name", "label", "set", "variants", "variant_set"}
        if bad or "name" not in c or not re.fullmatch(r"[A-Za-z0-9_.-]+", c["name"]):
            raise ValueError(f"{path}: a cell needs a `name` (letters, digits, -_.); got {c}")
        chosen = [v for v in data.get("variant", []) if v["name"] in c.get("variants", [v["name"]])]
        variants = _variants(path, chosen, (*common, *c.get("set", ())), c.get("variant_set"))
        if GRPO_NAME not in [v.name for v in variants]:
            raise ValueError(
                f"{path}: cell {c['name']!r} holds its own targets: needs {GRPO_NAME!r}"
            )
        name = f"{path.stem}-{c['name']}"
        title = f"{data.get('title', path.stem)}: {c.get('label', c['name'])}"
        cells.append(Experiment(name, title, tuple(variants), name, (*common, *c.get("set", ()))))
    if not cells:
        raise ValueError(f"{path}: a study needs at least one [[cell]]")
    names = {c.name.removeprefix(f"{path.stem}-") for c in cells}
    for b in data.get("block", []):
        if missing := set(b.get("cells", [])) - names:
            raise ValueError(
                f"{path}: block {b.get('name')!r} names unknown cells {sorted(missing)}"
            )
    seeds = tuple(data.get("seeds", DEFAULT_SEEDS))
    return Study(path.stem, data.get("title", path.stem), tuple(cells),
                 tuple(data.get("block", [])), seeds)  # fmt: skip


def _is_study(path: Path) -> bool:
    return "[[cell]]" in path.read_text()


def load_experiments(directory: str | Path = EXPERIMENTS_DIR) -> dict[str, Experiment]:
    """Every experiment file of `directory` (and every cell of its studies), by name; a variant
    name defined two different ways in two files is refused (its runs would be shared while
    meaning different things)."""
    files = sorted(Path(directory).glob("*.toml"))
    exps = {p.stem: load_experiment(p) for p in files if not _is_study(p)}
    for p in files:
        if _is_study(p):
            exps |= {c.name: c for c in load_study(p).cells}
    seen: dict[tuple[str, str], tuple[str, Variant]] = {}
    for exp in exps.values():
        for v in exp.variants:
            other = seen.setdefault((exp.subdir, v.name), (exp.name, v))
            if (other[1].config, other[1].overrides) != (v.config, v.overrides):
                raise ValueError(
                    f"variant {v.name!r} means different runs in {other[0]} and {exp.name}: "
                    f"{other[1].config} {list(other[1].overrides)} vs {v.config} {list(v.overrides)}"
                )
    return exps


EXPERIMENTS = load_experiments()
STUDIES = {p.stem: load_study(p) for p in sorted(EXPERIMENTS_DIR.glob("*.toml")) if _is_study(p)}
# The headline's three variants; GRPO's runs (`grpo-s<seed>`) hold every seed's target.
PC, GRPO, DAPO = ({v.name: v for v in EXPERIMENTS["headline"].variants}[n]
                  for n in ("pc", "grpo", "dapo"))  # fmt: skip


def select_variants(exp: Experiment, names: list[str] | None) -> tuple[Variant, ...]:
    """The experiment's variants named in `names` (all when None), in the experiment's order;
    an unknown name is refused with the known ones."""
    if not names:
        return exp.variants
    known = [v.name for v in exp.variants]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(
            f"{exp.name} has no variant {', '.join(map(repr, unknown))}; known: {', '.join(known)}"
        )
    return tuple(v for v in exp.variants if v.name in names)


def variant_configs(
    exp: Experiment, seeds=DEFAULT_SEEDS, sets: list[str] = (), only: list[str] | None = None
) -> list[tuple[Variant, int, RunConfig]]:
    """Every (variant, seed) config (of the `only` variants, if given), all validated before
    anything runs."""
    out, variants = [], select_variants(exp, only)
    for seed in seeds:
        for v in variants:
            if v.seeds is not None and seed not in v.seeds:
                continue  # a side variant run for fewer seeds (the file says which)
            overrides = [*v.overrides, *sets, f"seed={seed}", f"name={v.run_name(seed)}"]
            out.append((v, seed, load_config(CONFIGS_DIR / v.config, overrides)))
    return out


def run_experiment(
    exp: Experiment, root: str | Path, seeds=DEFAULT_SEEDS, sets: list[str] = (),
    progress: bool = True, log=print, only: list[str] | None = None,
) -> list[Path]:  # fmt: skip
    """Train every missing or partial run of the experiment (or of its `only` variants), seed by
    seed, in this process. Running a subset lets seed counts differ per variant (e.g. 3 seeds for
    a sweep, 1 for a side ablation); the table then says how many seeds each row has.

    A run that stops on MaxRoundsError (a narrow band that cannot fill its batch) or on
    EpochTooSmallError (evictions left too few prompts to fill an epoch, or a whole epoch filled
    no batch) is logged and the others go on: both are properties of the variant on its split.
    Any other failure (verifier, weight sync, a config refused before it starts, ...) stops the
    experiment, since the remaining runs would be measured on a broken setup. Both leave the run
    resumable from its last checkpoint."""
    from pcbench.loop import EpochTooSmallError, MaxRoundsError, train
    from pcbench.run import open_run

    paths, failed = [], []
    for _variant, _seed, cfg in variant_configs(exp, seeds, sets, only):
        # finished runs are read back as they are
        state, run = open_run(cfg, exp.root(root), resume=True)
        log(f"== {run.name}: {cfg.strategy}, step {state.step} of {cfg.steps}")
        stopped = run.path / STOPPED
        try:
            train(state, cfg, run, progress=progress)
            stopped.unlink(missing_ok=True)
        except (MaxRoundsError, EpochTooSmallError) as e:
            log(f"!! {run.name} stopped at step {state.step}: {e}")
            stopped.write_text(f"{type(e).__name__}: {e}\n")  # what its table row says
            failed.append(run.name)
        paths.append(run.path)
    if failed:
        log(f"!! runs that stopped early (their steps so far are kept): {', '.join(failed)}")
    return paths


def run_status(path: Path) -> tuple[bool, str]:
    """(finished, what to say about it) for a run directory that may be partial or missing."""
    if not (path / "config.json").exists():
        return False, "not run"
    run = Run(path)
    done, steps = run.summary()["steps"], run.config.steps
    if done < steps and (path / STOPPED).exists():  # the experiment went on without it
        reason = (path / STOPPED).read_text().split(":")[0]
        return False, f"stopped by {reason} at step {done} of {steps}"
    return done >= steps, f"step {done} of {steps}"


def left_out(exp: Experiment, root: str | Path, seeds=DEFAULT_SEEDS, only=None) -> list[str]:
    """The runs a comparison leaves out, and why: unfinished runs, and every run of a seed
    whose GRPO run (the target) is unfinished or missing."""
    out, root = [], exp.root(root)
    for seed in seeds:
        grpo_done, grpo_note = run_status(root / GRPO.run_name(seed))
        for v in select_variants(exp, only):
            done, note = run_status(root / v.run_name(seed))
            if note == "not run":
                continue
            if not done:
                what = note if note.startswith("stopped") else f"unfinished: {note}"
                out.append(f"{v.run_name(seed)} ({what})")
            elif not grpo_done:
                out.append(f"{v.run_name(seed)} (no target: {GRPO.run_name(seed)} {grpo_note})")
    return out


def finished_runs(exp: Experiment, root: str | Path, seeds=DEFAULT_SEEDS, only=None) -> list[Run]:
    """The experiment's finished runs of seeds whose GRPO run (the target) is finished, seed by
    seed in the experiment's variant order: what its tables compare (`left_out` names the rest;
    a target taken from a partial GRPO curve would be a different target)."""
    root, out = exp.root(root), []
    for seed in seeds:
        if not run_status(root / GRPO.run_name(seed))[0]:
            continue
        out += [Run(root / v.run_name(seed)) for v in select_variants(exp, only)
                if run_status(root / v.run_name(seed))[0]]  # fmt: skip
    return out


def per_run(
    exp: Experiment, root: str | Path, seeds=DEFAULT_SEEDS, crossing: Crossing = DEFAULT_CROSSING,
    only: list[str] | None = None,
) -> pl.DataFrame:  # fmt: skip
    """`results.measure` over the experiment's finished runs (of the `only` variants, if
    given), labelled by its variants."""
    labels = {v.name: v.label for v in exp.variants}
    return measure(finished_runs(exp, root, seeds, only), crossing=crossing, labels=labels)


def table(
    exp: Experiment, root: str | Path, seeds=DEFAULT_SEEDS, crossing: Crossing = DEFAULT_CROSSING,
    only: list[str] | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame, str]:  # fmt: skip
    """(per-run rows, per-variant summary, Markdown table) of an experiment's finished runs
    (of the `only` variants, if given; GRPO's runs are always read, they hold the targets)."""
    only = None if only is None else [GRPO.name, *(n for n in only if n != GRPO.name)]
    runs = per_run(exp, root, seeds, crossing, only)
    if runs.height == 0:
        return runs, runs, "No finished runs with a finished GRPO target yet."
    summary = summarize(runs, [v.name for v in exp.variants])
    text = markdown(summary, runs, crossing, left_out(exp, root, seeds, only))
    stops = stopped_runs(exp, root, seeds, only)
    if stops.height:
        text += "\n\n" + stopped_markdown(stops)
    return runs, summary, text


def stopped_runs(exp: Experiment, root: str | Path, seeds=DEFAULT_SEEDS, only=None) -> pl.DataFrame:
    """The runs the experiment gave up on (`STOPPED`) whose seed has a finished GRPO run: steps
    done, their last evaluation (step, rollouts, accuracy), and GRPO's accuracy after as many
    rollouts (`analysis.accuracy_at`, on the same smoothing-free curve)."""
    root, rows = exp.root(root), []
    for seed in seeds:
        if not run_status(root / GRPO.run_name(seed))[0]:
            continue
        grpo = accuracy_curve(Run(root / GRPO.run_name(seed)))
        for v in select_variants(exp, only):
            path = root / v.run_name(seed)
            if not (path / STOPPED).exists() or run_status(path)[0]:
                continue
            run = Run(path)
            last = accuracy_curve(run).row(-1, named=True)
            rows.append({
                "run": run.name, "steps": run.summary()["steps"], "eval_step": last["step"],
                "rollouts": last["cumulative/rollouts"], "accuracy": last["accuracy"],
                "grpo_accuracy": accuracy_at(grpo, last["cumulative/rollouts"]),
            })  # fmt: skip
    return pl.DataFrame(rows)


def write_figure(exp: Experiment, root: str | Path, path: str | Path, seeds=DEFAULT_SEEDS) -> Path:
    """Seed-averaged accuracy vs cumulative rollouts and tokens of the runs its table compares
    (`finished_runs`), one small HTML (plotly.js CDN)."""
    from pcbench.plots import cost_curves_figure

    runs = finished_runs(exp, root, seeds)
    k = "/".join(sorted({str(r.config.eval.k) for r in runs})) or "k"
    fig = cost_curves_figure(
        mean_curves(runs), f"{exp.title} — eval mean@{k}, mean over seeds {list(seeds)}"
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.write_html(path, include_plotlyjs="cdn", full_html=True)
    return path


def write_block(doc: str | Path, key: str, text: str) -> Path:
    """Replace the text between `<!-- begin KEY -->` and `<!-- end KEY -->` in a Markdown file
    (appending the block if it is not there yet), so generated tables sit beside prose."""
    doc = Path(doc)
    begin, end = f"<!-- begin {key} -->", f"<!-- end {key} -->"
    body = doc.read_text() if doc.exists() else ""
    block = f"{begin}\n{text.rstrip()}\n{end}"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    if pattern.search(body):
        body = pattern.sub(lambda _: block, body)
    else:
        body = body.rstrip() + ("\n\n" if body else "") + block + "\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    tmp = doc.with_suffix(doc.suffix + ".tmp")
    tmp.write_text(body)
    tmp.replace(doc)
    return doc


def measured_cells(study: Study, root: str | Path) -> pl.DataFrame:
    """Per cell with finished GRPO and PC runs: n, GRPO's measured all-equal share (1 − its
    informative rollouts ÷ generated, `per_informative`'s, mean over seeds), PC's mean x_vs_grpo
    with its bootstrap interval, seeds."""
    rows = []
    for cell in study.cells:
        runs = per_run(cell, root, seeds=study.seeds)
        if runs.height == 0 or "pc" not in runs["variant"].to_list():
            continue
        pc = summarize(runs).filter(pl.col("variant") == "pc").row(0, named=True)
        grpo = first_of_seed(runs, pl.col("variant") == GRPO_NAME)
        lo, hi = pc["x_vs_grpo_ci"] or [pc["x_vs_grpo"]] * 2
        rows.append({"label": cell.name.removeprefix(f"{study.name}-"),
                     "n": variant_configs(cell, seeds=(0,))[0][2].group_size,
                     "uninformative": (1 - 1 / grpo["per_informative"]).mean(),
                     "ratio": pc["x_vs_grpo"], "lo": lo, "hi": hi, "seeds": pc["seeds"],
                     "reached": pc["reached"]})  # fmt: skip
    return pl.DataFrame(rows, infer_schema_length=None)
