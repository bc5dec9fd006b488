"""Multi-seed experiments: named sets of run variants, their runs, and their results tables.

An experiment is a list of variants (a config file plus `--set` overrides) run for each seed
into one shared directory, `<root>/<variant>-s<seed>/`. Variants with the same name are the
same runs, so the GRPO and paper-PC runs of the headline are reused by the ablations (a
finished run is read back, a partial one resumed from its checkpoint).

Rollouts to target are paired by seed (DESIGN §4 per seed): the target of seed s is the peak
of the GRPO run of seed s, after a trailing moving average over `smooth` evaluations; every
variant of seed s is measured against it. The tables give mean and range over seeds of the
seeds that reached the target, and how many did. Ratios are per-seed ratios, averaged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from pcbench.analysis import accuracy_curve, bootstrap_interval, target_signal, to_target
from pcbench.config import RunConfig, load_config
from pcbench.run import Run

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
DEFAULT_SEEDS = (0, 1, 2)
DEFAULT_SMOOTH = 2


@dataclass(frozen=True)
class Variant:
    name: str  # run directory prefix, unique across experiments for a given config
    config: str  # file under configs/
    overrides: tuple[str, ...] = ()
    label: str = ""  # what changed, for tables

    def run_name(self, seed: int) -> str:
        return f"{self.name}-s{seed}"


@dataclass(frozen=True)
class Experiment:
    name: str
    title: str
    variants: tuple[Variant, ...]


GRPO = Variant("grpo", "tiny-grpo.toml", label="GRPO, B 8 x n 16")
DAPO = Variant("dapo", "tiny-dapo.toml", label="DAPO, rounds of G 24 x n 16")
PC = Variant("pc", "tiny-pc.toml", label="paper preset: p4c12, band [0.125, 0.75], staleness 4")
BEYOND = Variant("pc-beyond", "tiny-pc-beyond.toml", label="both, commit budget in tokens")


def _pc(name: str, label: str, *overrides: str) -> Variant:
    return Variant(name, "tiny-pc.toml", tuple(overrides), label)


EXPERIMENTS = {
    e.name: e
    for e in (
        Experiment(
            "headline", "Rollouts to target: Pilot-Commit vs GRPO vs DAPO", (PC, GRPO, DAPO)
        ),
        Experiment(
            "ablations",
            "Ablations of paper-PC (one change each; group size 16 throughout)",
            (
                PC,
                GRPO,
                _pc(
                    "pc-f1_8",
                    "pilot fraction 1/8 (p2c14); a step trains on what 10 rounds kept",
                    "pilot.n_pilot=2",
                    "commit.n_commit=14",
                    "on_max_rounds=train_partial",
                ),
                _pc("pc-f1_2", "pilot fraction 1/2 (p8c8)", "pilot.n_pilot=8", "commit.n_commit=8"),
                _pc("pc-stale1", "max_staleness 1", "commit.max_staleness=1"),
                _pc("pc-random", "buffer order random", "commit.order=random"),
                _pc("pc-reuse2", "pilot reuse 2 of 4", "commit.n_reuse=2"),
                _pc(
                    "pc-band-mid",
                    "band [0.375, 0.625]; a step trains on what 10 rounds kept",
                    "score.keep_min=0.375",
                    "score.keep_max=0.625",
                    "on_max_rounds=train_partial",
                ),
                _pc(
                    "pc-f3_8", "pilot fraction 3/8 (p6c10)", "pilot.n_pilot=6", "commit.n_commit=10"
                ),
                _pc("pc-band-hard", "band [0.125, 0.5]", "score.keep_max=0.5"),
            ),
        ),  # fmt: skip
        Experiment(
            "beyond",
            "Beyond the paper: sequential pilot and value-per-cost commit vs paper-PC and GRPO",
            (
                PC,
                GRPO,
                Variant(
                    "pc-seq",
                    "tiny-pc-seq.toml",
                    label="sequential pilot 0 -> 2 -> 4, delta 0.1, online prior by difficulty",
                ),
                Variant(
                    "pc-vpc",
                    "tiny-pc-vpc.toml",
                    label="value-per-cost commit, rollout budget, 4-36 per prompt",
                ),
                BEYOND,
            ),
        ),  # fmt: skip
        Experiment(
            "explore",
            "Exploring the prompts the online prior skips (pilot.explore) on top of pc-beyond",
            (
                PC,
                GRPO,
                BEYOND,
                Variant(
                    "pc-beyond-explore",
                    "tiny-pc-beyond.toml",
                    ("pilot.explore=0.1",),
                    "pc-beyond, 10% of the prior-only stops piloted anyway",
                ),
            ),
        ),  # fmt: skip
    )
}


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
            overrides = [*v.overrides, *sets, f"seed={seed}", f"name={v.run_name(seed)}"]
            out.append((v, seed, load_config(CONFIGS / v.config, overrides)))
    return out


def run_experiment(
    exp: Experiment, root: str | Path, seeds=DEFAULT_SEEDS, sets: list[str] = (),
    progress: bool = True, log=print, only: list[str] | None = None,
) -> list[Path]:  # fmt: skip
    """Train every missing or partial run of the experiment (or of its `only` variants), seed by
    seed, in this process. Running a subset lets seed counts differ per variant (e.g. 3 seeds for
    a sweep, 1 for a side ablation); the table then says how many seeds each row has.

    A run that stops on MaxRoundsError (a narrow band that cannot fill its batch: a property of
    the variant) is logged and the others go on; any other failure (verifier, weight sync, a
    config that cannot fill an epoch, ...) stops the experiment, since the remaining runs would
    be measured on a broken setup. Both leave the run resumable from its last checkpoint."""
    from pcbench.loop import MaxRoundsError, train
    from pcbench.run import open_run

    paths, failed = [], []
    for _variant, _seed, cfg in variant_configs(exp, seeds, sets, only):
        state, run = open_run(cfg, root, resume=True)  # finished runs are read back as they are
        log(f"== {run.name}: {cfg.strategy}, step {state.step} of {cfg.steps}")
        try:
            train(state, cfg, run, progress=progress)
        except MaxRoundsError as e:
            log(f"!! {run.name} stopped at step {state.step}: {e}")
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
    return done >= steps, f"step {done} of {steps}"


def left_out(exp: Experiment, root: str | Path, seeds=DEFAULT_SEEDS) -> list[str]:
    """The runs a comparison leaves out, and why: unfinished runs, and every run of a seed
    whose GRPO run (the target) is unfinished or missing."""
    out = []
    for seed in seeds:
        grpo_done, grpo_note = run_status(Path(root) / GRPO.run_name(seed))
        for v in exp.variants:
            done, note = run_status(Path(root) / v.run_name(seed))
            if note == "not run":
                continue
            if not done:
                out.append(f"{v.run_name(seed)} (unfinished: {note})")
            elif not grpo_done:
                out.append(f"{v.run_name(seed)} (no target: {GRPO.run_name(seed)} {grpo_note})")
    return out


def per_run(
    exp: Experiment, root: str | Path, seeds=DEFAULT_SEEDS, smooth: int = DEFAULT_SMOOTH
) -> pl.DataFrame:
    """One row per finished (variant, seed) run on disk, measured against its seed's target.

    Only finished runs of seeds whose GRPO run is finished are compared: a target taken from a
    partial GRPO curve would be a different target (`left_out` names what this skips)."""
    root, rows = Path(root), []
    for seed in seeds:
        grpo_dir = root / GRPO.run_name(seed)
        if not run_status(grpo_dir)[0]:
            continue
        signal = target_signal(Run(grpo_dir), smooth=smooth)  # the target and its paired SE
        target = signal["target"]
        for v in exp.variants:
            path = root / v.run_name(seed)
            if not run_status(path)[0]:
                continue
            run = Run(path)
            summary = run.summary()
            curve = accuracy_curve(run, smooth=smooth)
            informative = informative_rollouts(run)
            hit = to_target(curve, target)
            rows.append(
                {
                    "variant": v.name, "label": v.label, "seed": seed, "target": target,
                    "target_gain": signal["gain"], "target_se": signal["paired_se"],
                    "eval_prompts": signal["prompts"],
                    "steps": summary["steps"], "rollouts": summary["rollouts"],
                    "tokens": summary["tokens"], "initial_acc": curve["accuracy"][0],
                    "best_acc": curve["accuracy"].max(), "final_acc": curve["accuracy"][-1],
                    "rollouts_to_target": hit.get("rollouts"),
                    "tokens_to_target": hit.get("tokens"),
                    "seconds_to_target": hit.get("seconds"),
                    "informative": informative,
                    "per_informative": summary["rollouts"] / informative if informative else None,
                    **mechanism(run),
                }
            )  # fmt: skip
    table = pl.DataFrame(rows, infer_schema_length=None)
    return _with_seed_ratios(table) if table.height else table


def informative_rollouts(run: Run) -> float:
    """Trained rollouts with a non-zero advantage (their group's rewards differ), summed over
    steps: what a rollout budget buys that can move the policy."""
    m = run.read("metrics")
    if m.height == 0:
        return 0.0
    names = ("update/rollouts", "update/zero_advantage_frac")
    wide = m.filter(pl.col("name").is_in(names)).pivot(on="name", index="step", values="value")
    if not set(names) <= set(wide.columns):
        return 0.0
    return float((wide[names[0]] * (1 - wide[names[1]])).sum())


MECHANISM = {  # per_run column: (ledger numerator, denominator), summed over the run's steps
    "too_easy_share": ("filtering_stats/too_easy", "filtering_stats/seen"),
    "too_hard_share": ("filtering_stats/too_hard", "filtering_stats/seen"),
    "kept_share": ("filtering_stats/kept", "filtering_stats/seen"),
    "evicted_share": ("filtering_stats/evict_marked", "filtering_stats/seen"),
    "buffer_age": ("buffer_stats/age_sum", "buffer_stats/take"),
    "stale_share": ("buffer_stats/stale_drop", "buffer_stats/add"),
}


def mechanism(run: Run) -> dict[str, float | None]:
    """Where a Pilot-Commit run's pilots went: shares of piloted prompts skipped as too easy,
    deferred as too hard, kept and marked for eviction; the mean age (updates) of a buffered
    pilot when committed, and the share of buffered pilots dropped as stale. None where the
    run has no pilots (GRPO, DAPO)."""
    totals = run.ledger().sum()
    value = lambda c: float(totals[c][0]) if c in totals.columns else 0.0  # noqa: E731
    return {
        name: (value(num) / value(den)) if value(den) else None
        for name, (num, den) in MECHANISM.items()
    }


def _with_seed_ratios(table: pl.DataFrame) -> pl.DataFrame:
    """Per-seed rollouts-to-target ratio of GRPO / DAPO / paper-PC to this run (>1: this run is
    cheaper), where both reached the target."""
    for base in ("grpo", "dapo", "pc"):
        ref = table.filter(pl.col("variant") == base).select(
            "seed", pl.col("rollouts_to_target").alias(f"_{base}")
        )
        table = (
            table.join(ref, on="seed", how="left")
            .with_columns((pl.col(f"_{base}") / pl.col("rollouts_to_target")).alias(f"x_vs_{base}"))
            .drop(f"_{base}")
        )
    return table


def summarize(runs: pl.DataFrame, exp: Experiment) -> pl.DataFrame:
    """One row per variant: seeds run and reaching the target, mean [min, max] costs, ratios."""
    order = {v.name: i for i, v in enumerate(exp.variants)}
    return (
        runs.group_by("variant", "label")
        .agg(
            pl.len().alias("seeds"),
            pl.col("rollouts_to_target").is_not_null().sum().alias("reached"),
            *[
                e
                for c in ("rollouts_to_target", "tokens_to_target", "seconds_to_target")
                for e in (
                    pl.col(c).mean().alias(c),
                    pl.col(c).min().alias(c + "_min"),
                    pl.col(c).max().alias(c + "_max"),
                )  # fmt: skip
            ],
            pl.col("rollouts").mean(),
            pl.col("tokens").mean(),
            pl.col("best_acc").mean(),
            pl.col("final_acc").mean(),
            pl.col("final_acc").std().alias("final_acc_sd"),
            *[e for c in RATIOS for e in (pl.col(c).mean(), pl.col(c).alias(c + "_seeds"))],
            pl.col("per_informative").mean(),
            *[pl.col(c).mean() for c in MECHANISM],
        )
        .with_columns(
            pl.col(c + "_seeds")
            .map_elements(_interval, return_dtype=pl.List(pl.Float64))
            .alias(c + "_ci")
            for c in RATIOS
        )
        .drop([c + "_seeds" for c in RATIOS])
        .sort(pl.col("variant").replace_strict(order, default=len(order)))
    )


RATIOS = ("x_vs_grpo", "x_vs_dapo", "x_vs_pc")


def _interval(values: pl.Series) -> list[float] | None:
    """Bootstrap 95% interval over seeds of the mean per-seed ratio (None below 2 seeds)."""
    ci = bootstrap_interval(values.drop_nulls().to_list())
    return list(ci) if ci else None


def _num(x, fmt: str = ",.0f") -> str:
    return "—" if x is None else format(x, fmt)


def _range(row: dict, col: str, fmt: str = ",.0f") -> str:
    if row[col] is None:
        return "not reached"
    lo, hi = row[col + "_min"], row[col + "_max"]
    return f"{_num(row[col], fmt)} [{_num(lo, fmt)}–{_num(hi, fmt)}]"


def _ratio(row: dict, col: str) -> str:
    ci = row[col + "_ci"]
    interval = f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else ""
    return _num(row[col], ".2f") + interval


def markdown(
    summary: pl.DataFrame, runs: pl.DataFrame, smooth: int, skipped: list[str] = ()
) -> str:
    """The summary as a Markdown table, with the per-seed targets stated above it and the runs
    it leaves out (`left_out`) below it."""
    targets = (
        runs.select("seed", "target", "target_gain", "target_se").unique().sort("seed").drop_nulls()
    )
    prompts = ", ".join(str(n) for n in runs["eval_prompts"].unique().sort())
    lines = [
        f"Target per seed = that seed's GRPO peak of eval mean@4 ({prompts} test prompts), after "
        f"a trailing moving average over {smooth} evaluations, with its gain over step 0 ± the "
        "paired standard error (per prompt, peak window minus step 0): "
        + ", ".join(
            f"seed {s}: {t:.3f} ({g:+.3f} ± {se:.3f})" for s, t, g, se in targets.iter_rows()
        )
        + ". Costs count training rollouts only; mean [min–max] over the seeds that reached "
        "the target; seconds are training wall time on this machine (evaluations left out). "
        "Ratios are per-seed (GRPO, DAPO or paper-PC rollouts ÷ this variant's, seeds where "
        "both reached the target), averaged, with a bootstrap 95% interval over those seeds "
        "(coarse with 3 seeds: never wider than their range). "
        "Rollouts per informative rollout: all rollouts generated ÷ trained rollouts whose "
        "group's rewards differ (non-zero advantage), mean over seeds.",
        "",
        "| variant | what | reached | rollouts to target | tokens to target | seconds to target "
        "| rollouts (all steps) | best acc | final acc (± sd) | × fewer than GRPO "
        "| × fewer than DAPO | × fewer than paper-PC | rollouts per informative rollout |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in summary.iter_rows(named=True):
        sd = "" if r["final_acc_sd"] is None else f" ± {r['final_acc_sd']:.3f}"
        lines.append(
            f"| `{r['variant']}` | {r['label']} | {r['reached']}/{r['seeds']} "
            f"| {_range(r, 'rollouts_to_target')} | {_range(r, 'tokens_to_target')} "
            f"| {_range(r, 'seconds_to_target', ',.1f')} "
            f"| {_num(r['rollouts'])} | {r['best_acc']:.3f} | {r['final_acc']:.3f}{sd} "
            f"| {_ratio(r, 'x_vs_grpo')} | {_ratio(r, 'x_vs_dapo')} "
            f"| {_ratio(r, 'x_vs_pc')} | {_num(r['per_informative'], '.2f')} |"
        )
    piloted = [r for r in summary.iter_rows(named=True) if r["kept_share"] is not None]
    if piloted:
        lines += [
            "",
            "Where the pilots went (Pilot-Commit variants, mean over seeds): shares of piloted "
            "prompts skipped as too easy, deferred as too hard, kept, and marked for eviction "
            "(solved by every pilot rollout); a buffered pilot's mean age in updates when "
            "committed, and the share of buffered pilots dropped as stale.",
            "",
            "| variant | too easy | too hard | kept | evict-marked | buffer age at commit "
            "| stale-dropped |",
            "|---|---|---|---|---|---|---|",
            *(f"| `{r['variant']}` | {_num(r['too_easy_share'], '.1%')} "
              f"| {_num(r['too_hard_share'], '.1%')} | {_num(r['kept_share'], '.1%')} "
              f"| {_num(r['evicted_share'], '.1%')} | {_num(r['buffer_age'], '.2f')} "
              f"| {_num(r['stale_share'], '.1%')} |" for r in piloted),
        ]  # fmt: skip
    if skipped:
        lines += ["", "**Not in this table** (finish them with `pcbench experiment` without "
                  "`--table-only`): " + "; ".join(skipped) + "."]  # fmt: skip
    return "\n".join(lines)


def mean_curves(
    exp: Experiment, root: str | Path, seeds=DEFAULT_SEEDS, smooth: int = 1
) -> dict[str, pl.DataFrame]:
    """Per variant: accuracy and cumulative cost averaged over seeds at each eval step."""
    out = {}
    for v in exp.variants:
        curves = [
            accuracy_curve(Run(p), smooth=smooth).with_columns(pl.lit(s).alias("seed"))
            for s in seeds
            if ((p := Path(root) / v.run_name(s)) / "config.json").exists()
        ]
        if curves:
            out[v.name] = (
                pl.concat(curves)
                .group_by("step")
                .agg(
                    pl.col("accuracy", "cumulative/rollouts", "cumulative/tokens").mean(),
                    pl.len().alias("seeds"),
                )  # fmt: skip
                .sort("step")
            )
    return out


def write_figure(exp: Experiment, root: str | Path, path: str | Path, seeds=DEFAULT_SEEDS) -> Path:
    """Seed-averaged accuracy vs cumulative rollouts and tokens, one small HTML (plotly.js CDN)."""
    from plotly.subplots import make_subplots

    curves = mean_curves(exp, root, seeds)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("vs cumulative training rollouts",
                                                        "vs cumulative training tokens"))  # fmt: skip
    for i, (name, c) in enumerate(curves.items()):
        for col, x in ((1, "cumulative/rollouts"), (2, "cumulative/tokens")):
            fig.add_scatter(
                x=c[x].to_list(), y=c["accuracy"].round(4).to_list(), mode="lines+markers",
                name=name, legendgroup=name, showlegend=col == 1, row=1, col=col,
                line={"color": _COLORS[i % len(_COLORS)]},
            )  # fmt: skip
    fig.update_layout(
        title=f"{exp.title} — eval mean@4, mean over seeds {list(seeds)}",
        template="plotly_white", height=460, yaxis_title="mean@4",
    )  # fmt: skip
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.write_html(path, include_plotlyjs="cdn", full_html=True)
    return path


_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")  # fmt: skip


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
