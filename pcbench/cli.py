"""The `pcbench` command: headless entry points over the same code the notebooks use."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

DEFAULT_POLICY = "data/tiny-policy"
DEFAULT_ARITH = "data/arith"


def cmd_check(args) -> None:
    """Check each config (no engine is loaded); exit 2 if any has an error."""
    from pcbench.check import check

    failed = []
    for path in args.configs:
        report = check(path, gpu_gib=args.gpu_gb, overrides=args.set or [])
        print(report.text())
        if not report.ok:
            failed.append(path)
    if failed:
        raise ValueError(
            f"{len(failed)} of {len(args.configs)} configs have errors: {', '.join(failed)}"
        )


def cmd_profile(args) -> None:
    """Profile a config's policy (or a run's own rollouts): counts, fit, curve, figure."""
    from pathlib import Path

    from pcbench import profile as pr

    if (args.config is None) == (args.run is None):
        raise ValueError("profile: give a CONFIG, or --run RUN_DIR (a run's own rollouts)")
    if args.run:
        from pcbench.run import Run

        prof = pr.profile_run(Run(args.run), tuple(args.steps) if args.steps else None)
        out = Path(args.out or Path(args.run) / "profile.json")
    else:
        from pcbench.config import load_config

        cfg = load_config(args.config, args.set or [])
        out = Path(args.out or f"runs/profiles/{cfg.name}-n{args.n}.json")
        prof = pr.profile_config(cfg, n=args.n, prompts=args.prompts)
    prof.save(out)
    figure = out.with_suffix(".html")
    prof.figure().write_html(figure, include_plotlyjs="cdn")
    print(json.dumps(prof.summary(), indent=1))
    curve = prof.all_equal_curve(max(int(prof.N.min()), 128))
    shown = curve.filter(curve["n"].is_in([1, 2, 4, 8, 16, 32, 64, 128]))
    print("share of groups with all-equal rewards by group size (measured: exact subsampling; "
          "fitted: the fitted distribution)")  # fmt: skip
    for row in shown.iter_rows(named=True):
        measured = "—" if row["measured"] is None else f"{row['measured']:.3f}"
        print(f"  n {row['n']:>4}: measured {measured:>6}  fitted {row['fitted']:.3f}")
    print(f"wrote {out} and {figure}; next: pcbench plan CONFIG --profile {out}")


def cmd_plan(args) -> None:
    """Predict each config's rollouts per step, rounds, shares and per-informative cost."""
    from pcbench import plan
    from pcbench.config import load_config
    from pcbench.profile import PassRateProfile

    prof = PassRateProfile.load(args.profile)
    configs = [load_config(c, args.set or []) for c in args.configs]
    table = plan.plan_table(configs, prof.mixture, split_prompts=args.split_prompts)
    print(f"profile: {prof.source}")
    shown = ["config", "rollouts_per_step", "rounds_per_step", "mixed_share", "per_informative",
             "keep_share", "too_easy_share", "too_hard_share"]  # fmt: skip
    print(table.select(shown).with_columns(
        [table[c].round(3) for c in shown[1:] if table[c].dtype.is_float()]))  # fmt: skip
    for row in table.iter_rows(named=True):
        if row["caveats"]:
            print(f"  {row['config']}: {row['caveats']}")
    if args.best:
        cfg = configs[0]
        print(f"\nbest pilot splits at n = {args.best} (B {cfg.batch_prompts}, G "
              f"{cfg.pool_prompts}; closed-form rounds):")  # fmt: skip
        print(plan.best_pilot(prof.mixture, args.best, cfg.batch_prompts, cfg.pool_prompts))
    if args.out:
        table.write_csv(args.out)
        print(f"wrote {args.out}")


def cmd_data_fetch(args) -> None:
    """Fetch each named dataset where the presets read it (stops at the first that fails)."""
    from pcbench.tasks.fetch import SOURCES, FetchError, fetch

    unknown = [n for n in args.names if n not in SOURCES]
    if unknown:
        raise FetchError(f"no dataset {', '.join(unknown)} to fetch; known: {', '.join(SOURCES)}")
    for name in args.names:
        print(f"{name}: {SOURCES[name].repo} ...", file=sys.stderr)
        print(f"{name}: {fetch(name, args.root)}")


def cmd_data_mixed(args) -> None:
    """Write the profiled training prompts that are neither always nor never solved."""
    import polars as pl

    from pcbench.profile import PassRateProfile, mixed_split

    prof = PassRateProfile.load(args.profile)
    train, test = pl.read_parquet(args.train), pl.read_parquet(args.test)
    kept = mixed_split(prof, train, test)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    kept.write_parquet(args.out)
    print(f"wrote {args.out}: {kept.height} of the {prof.counts.height} profiled prompts "
          f"({prof.source}) with 0 < k < N and no test twin")  # fmt: skip


def cmd_data_arith(args) -> None:
    from pcbench.tasks.arith import write_splits

    paths = write_splits(args.out, seed=args.seed, n_train=args.train, n_test=args.test)
    for name, path in paths.items():
        print(f"{name}: {path}")


def cmd_tiny_train(args) -> None:
    from pcbench.tiny.train import TinyConfig, train_tiny

    given = {"steps": args.steps, "lr": args.lr, "warmup_steps": args.warmup, "init": args.init}
    cfg = TinyConfig(seed=args.seed, **{k: v for k, v in given.items() if v is not None})
    with tempfile.TemporaryDirectory(prefix="pcbench-sft-") as tmp:
        split, data = args.train_split, {}
        if args.slip:  # a noisy teacher's SFT split, drawn apart from the RL train split
            from pcbench.tasks.arith import generate_problems

            slip = {level: p for level, p in enumerate(args.slip, start=1) if p > 0}
            split = Path(tmp) / "sft.parquet"
            generate_problems(args.sft_prompts, args.sft_seed, split="sft", slip=slip,
                     slip_final_only=args.slip_final_only).write_parquet(split)  # fmt: skip
            data = {"prompts": args.sft_prompts, "seed": args.sft_seed, "slip": args.slip,
                    "slip_final_only": args.slip_final_only}  # fmt: skip
        stats = train_tiny(split, args.out, cfg, data)
    print(json.dumps({k: v for k, v in stats.items() if k != "config"}, indent=2))
    print(f"saved to {args.out}; next: pcbench tiny profile --model {args.out} --card")


def cmd_tiny_profile(args) -> None:
    from pcbench.tiny.profile import profile_policy

    profile = profile_policy(
        args.model,
        args.split,
        prompts=args.prompts,
        samples=args.samples,
        temperature=args.temperature,
        seed=args.seed,
    )
    print(json.dumps(profile.summary(), indent=2))
    print(profile.by_difficulty())
    print(profile.histogram())
    if args.card:
        from pcbench.tiny.card import write_card

        command = "pcbench tiny profile " + " ".join(sys.argv[3:])
        print(f"wrote {write_card(args.model, profile, command.strip())}")


def cmd_tiny_learncheck(args) -> None:
    from pcbench.tiny.learncheck import learning_check

    rows = learning_check(args.model, args.config, args.seeds, args.runs, args.set or [],
                          progress=not args.quiet)  # fmt: skip
    for r in rows:
        fails = "; ".join(r["fails"]) or "qualifies"
        print(f"seed {r['seed']}: {r['start']:.3f} -> {r['end']:.3f} (last evals {r['evaluated']})"
              f", gain {r['gain']:+.4f} ± {r['se']:.4f} over {r['prompts']} prompts, peak at step "
              f"{r['peak_step']} of {r['steps']}: {fails}")  # fmt: skip
    print("model organism: " + ("yes" if not any(r["fails"] for r in rows) else "no"))
    if args.card:
        from pcbench.tiny.learncheck import write_card_section

        command = "pcbench tiny learncheck " + " ".join(sys.argv[3:])
        print(f"wrote {write_card_section(args.model, rows, command.strip())}")


def cmd_run(args) -> None:
    from pcbench.config import load_config
    from pcbench.loop import train
    from pcbench.run import open_run

    trackers = [f"tracking.backends={json.dumps(args.tracker)}"] if args.tracker else []
    cfg = load_config(args.config, [*(args.set or []), *trackers])
    state, run = open_run(cfg, args.runs, resume=args.resume)
    print(f"{run!r}: {cfg.strategy}, step {state.step} of {cfg.steps}", file=sys.stderr)
    try:
        train(state, cfg, run, progress=not args.quiet)
    finally:
        run.close_trackers()
    print(json.dumps(run.summary()))


def _crossing(args):
    """The crossing rule the command line names (--crossing, with --smooth overriding its
    smoothing)."""
    from dataclasses import replace

    from pcbench.analysis import CROSSINGS

    rule = CROSSINGS[args.crossing]
    return rule if args.smooth is None else replace(rule, smooth=args.smooth)


def _add_crossing(parser) -> None:
    parser.add_argument("--crossing", choices=["interpolated", "first-eval"],
                        default="interpolated",
                        help="how a run's crossing of the target is read: interpolated between "
                             "raw evaluations (default), or the pre-issue-31 rule, the first "
                             "evaluation of a 2-evaluation trailing mean (docs/method.md)")  # fmt: skip
    parser.add_argument(
        "--smooth",
        type=int,
        default=None,
        help="trailing moving average over N evals (default: the rule's own)",
    )


def cmd_compare(args) -> None:
    from pcbench.results import measure
    from pcbench.run import Run
    from pcbench.tables import format_table

    crossing = _crossing(args)
    table = measure([Run(p) for p in args.runs], target=args.target, crossing=crossing)
    print(format_table(table, crossing, args.format))


def cmd_export(args) -> None:
    from pcbench.run import Run

    run = Run(args.run)
    for path in run.export(args.out or f"{args.run.rstrip('/')}-export", args.to):
        print(path)


def cmd_report(args) -> None:
    from pcbench.report import write_report

    path = write_report(args.runs, args.out, target=args.target, crossing=_crossing(args),
                        offline=args.offline)  # fmt: skip
    print(f"wrote {path}")


DEMO_CONFIGS = ("configs/tiny-pc.toml", "configs/tiny-grpo.toml", "configs/tiny-dapo.toml")
# Half the default length: GRPO has risen ~+0.10 held-out by step 45 (the learning check's
# curves), so the first table a newcomer sees compares curves that move, in ~10 minutes.
DEMO_SETS = ("steps=45",)


def cmd_demo(args) -> None:
    """Pilot-Commit, GRPO and DAPO on the embedded default, then the compare table and report."""
    import time
    from pathlib import Path

    from pcbench.config import load_config
    from pcbench.loop import train
    from pcbench.report import write_report
    from pcbench.results import measure
    from pcbench.run import Run, open_run
    from pcbench.tables import format_table

    start, runs = time.perf_counter(), []
    sets = [*DEMO_SETS, *(args.set or [])]  # the user's --set come last and win
    cfgs = [load_config(c, sets) for c in DEMO_CONFIGS]  # all checked before any run
    for cfg in cfgs:
        state, run = open_run(cfg, args.runs, resume=True)  # a finished run is reused as is
        print(f"== {cfg.name}: {cfg.strategy}, step {state.step} of {cfg.steps}", file=sys.stderr)
        train(state, cfg, run, progress=not args.quiet)
        runs.append(run.path)
    crossing = _crossing(args)
    table = measure([Run(p) for p in runs], crossing=crossing)
    report = write_report(runs, Path(args.runs) / "demo-report.html", crossing=crossing)
    print(format_table(table, crossing))
    print(_demo_plan_line(cfgs, runs))
    minutes = (time.perf_counter() - start) / 60
    print(f"\nreport: {report}   ({minutes:.1f} min; runs in {args.runs}/)")


def _demo_plan_line(cfgs, paths) -> str:
    """What the plan predicts for the demo's Pilot-Commit, from the GRPO run's own groups."""
    import textwrap

    from pcbench.plan import predict
    from pcbench.profile import profile_run
    from pcbench.run import Run

    by = dict(zip([c.strategy for c in cfgs], zip(cfgs, paths, strict=True), strict=True))
    if not {"grpo", "pilot_commit"} <= set(by):
        return ""
    mixture = profile_run(Run(by["grpo"][1])).mixture
    pc, grpo = (predict(by[s][0], mixture) for s in ("pilot_commit", "grpo"))
    return "\n" + textwrap.fill(
        f"plan (pcbench plan, from the GRPO run's own groups): Pilot-Commit {pc.setting} "
            f"spends {pc.per_informative:.2f} rollouts per informative rollout, GRPO "
            f"{grpo.per_informative:.2f}: at most {grpo.per_informative / pc.per_informative:.2f}x "
            "fewer rollouts to target from allocation alone. Where it pays: the regime map, "
            "docs/RESULTS.md §10.", width=100, break_on_hyphens=False)  # fmt: skip


def cmd_experiment(args) -> None:
    """Run a named multi-seed experiment (missing runs only), then print and write its table."""
    import time
    from pathlib import Path

    from pcbench import experiments as ex

    if args.name in ex.STUDIES:  # every cell of a pre-registered grid, one after another
        for cell in ex.STUDIES[args.name].cells:
            print(f"== cell {cell.name}", file=sys.stderr)
            cmd_experiment(argparse.Namespace(**{**vars(args), "name": cell.name}))
        return
    if args.name not in ex.EXPERIMENTS:
        known = ", ".join([*ex.EXPERIMENTS, *ex.STUDIES])
        raise ValueError(f"unknown experiment {args.name!r}; known: {known}")
    exp, start = ex.EXPERIMENTS[args.name], time.perf_counter()
    seeds = tuple(args.seeds)
    ex.select_variants(exp, args.variants)  # an unknown name is refused before anything runs
    if not args.table_only:
        ex.run_experiment(exp, args.runs, seeds, args.set or [], progress=not args.quiet,
                          log=lambda m: print(m, file=sys.stderr), only=args.variants)  # fmt: skip
    for line in ex.left_out(exp, args.runs, seeds):
        print(f"!! left out of the comparison: {line}", file=sys.stderr)
    runs, _, text = ex.table(exp, args.runs, seeds, _crossing(args))
    if runs.height == 0:
        raise FileNotFoundError(
            f"no finished runs of {args.name!r} with a target under {exp.root(args.runs)}/"
        )
    print(text)
    if args.write:
        # --block: a second table of the same runs (e.g. one seed's side variants) beside the
        # experiment's own, with its own figure, instead of overwriting them
        block = args.block or exp.name
        figure = Path(args.write).parent / "results" / f"{block}.html"
        ex.write_figure(exp, args.runs, figure, seeds)
        command = f"pcbench experiment {exp.name} --seeds {' '.join(map(str, seeds))}"
        if args.crossing != "interpolated" or args.smooth is not None:  # say how it was read
            command += f" --crossing {args.crossing}"
            command += "" if args.smooth is None else f" --smooth {args.smooth}"
        command += f" --block {block}" if args.block else ""
        text += (
            f"\n\nFigure: [results/{figure.name}](results/{figure.name}). Reproduce: `{command}`."
        )
        ex.write_block(args.write, block, text)
        print(f"\nwrote {args.write} and {figure}", file=sys.stderr)
    minutes = (time.perf_counter() - start) / 60
    print(f"({minutes:.1f} min; runs in {exp.root(args.runs)}/)", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    from importlib.metadata import version

    from pcbench.config import EXPERIMENTS_DIR

    experiments = sorted(p.stem for p in EXPERIMENTS_DIR.glob("*.toml"))  # no torch import here

    parser = _Parser(prog="pcbench", description=__doc__)
    parser.add_argument("--version", action="version", version=f"pcbench {version('pcbench')}")
    parser.add_argument("--verbose", action="store_true",
                        help="show vLLM / transformers logs, warnings and load bars")  # fmt: skip
    top = parser.add_subparsers(dest="command", required=True)

    run = top.add_parser("run", help="train one strategy from a TOML config into runs/<name>/")
    run.add_argument("config", help="TOML run config, e.g. configs/tiny-pc.toml")
    run.add_argument("--set", action="append", metavar="KEY=VALUE", help="override, repeatable")
    run.add_argument(
        "--resume", action="store_true", help="continue runs/<name> from its checkpoint"
    )
    run.add_argument("--runs", default="runs", help="directory holding run directories")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument("--tracker", action="append", choices=["tensorboard", "wandb"],
                     help="also log to TensorBoard / W&B (offline); repeatable; sets "
                          "tracking.backends")  # fmt: skip
    run.set_defaults(func=cmd_run)

    for name, helptext in (("compare", "table of runs: cost and accuracy to the GRPO target"),
                           ("report", "self-contained HTML report of runs")):  # fmt: skip
        sub = top.add_parser(name, help=helptext)
        sub.add_argument(
            "runs", nargs="+", help="run directories, e.g. runs/tiny-pc runs/tiny-grpo"
        )
        sub.add_argument("--target", type=float, help="target accuracy (default: peak GRPO)")
        _add_crossing(sub)
        if name == "compare":
            sub.add_argument("--format", choices=["table", "markdown", "csv", "json"],
                             default="table", help="how to print the table")  # fmt: skip
        if name == "report":
            sub.add_argument("-o", "--out", default="report.html", help="the HTML file to write")
            sub.add_argument("--offline", action="store_true",
                             help="inline plotly.js (4.8 MB) instead of loading it from its CDN")  # fmt: skip
        sub.set_defaults(func=cmd_compare if name == "compare" else cmd_report)

    exp_ = top.add_parser("export", help="one file per table of a run (parquet or csv)")
    exp_.add_argument("run", help="run directory, e.g. runs/tiny-pc")
    exp_.add_argument("--to", choices=["parquet", "csv"], default="parquet", help="file format")
    exp_.add_argument("--out", help="folder for the files (default: <run>-export)")
    exp_.set_defaults(func=cmd_export)

    chk = top.add_parser("check", help="validate configs, data, model and memory plan (no engine)")
    chk.add_argument("configs", nargs="+", help="TOML run configs, e.g. configs/*.toml")
    chk.add_argument("--gpu-gb", type=float, default=80.0, help="GPU memory the plan must fit")
    chk.add_argument("--set", action="append", metavar="KEY=VALUE",
                     help="override, repeatable (as for `pcbench run`)")  # fmt: skip
    chk.set_defaults(func=cmd_check)

    prof = top.add_parser("profile", help="pass rates of a config's policy on its training "
                          "prompts, or of a run's own rollouts; for `pcbench plan`")  # fmt: skip
    prof.add_argument("config", nargs="?", help="TOML run config whose model and split to profile")
    prof.add_argument("--n", type=int, default=64, help="rollouts per prompt (default 64)")
    prof.add_argument("--prompts", type=int, default=500,
                      help="first this many training prompts (default 500)")  # fmt: skip
    prof.add_argument("--set", action="append", metavar="KEY=VALUE", help="override, repeatable")
    prof.add_argument("--run", help="profile this run directory's own pilot / unfiltered groups")
    prof.add_argument("--steps", type=int, nargs=2, metavar=("FIRST", "LAST"),
                      help="with --run: only these steps (inclusive)")  # fmt: skip
    prof.add_argument("-o", "--out", help="profile JSON (default runs/profiles/<name>-n<N>.json, "
                      "or <run>/profile.json); the figure goes beside it as .html")  # fmt: skip
    prof.set_defaults(func=cmd_profile)

    plan = top.add_parser("plan", help="predict rollouts per step, rounds and per-informative "
                          "cost of configs from a profile (no engine)")  # fmt: skip
    plan.add_argument("configs", nargs="+", help="TOML run configs to predict")
    plan.add_argument("--profile", required=True, help="a `pcbench profile` JSON file")
    plan.add_argument("--set", action="append", metavar="KEY=VALUE",
                      help="override, repeatable, applied to every config")  # fmt: skip
    plan.add_argument("--split-prompts", type=int,
                      help="the training split's size, to flag runs that pass over it again")  # fmt: skip
    plan.add_argument("--best", type=int, metavar="N",
                      help="also rank pilot sizes and bands at group size N")  # fmt: skip
    plan.add_argument("-o", "--out", help="also write the table as csv")
    plan.set_defaults(func=cmd_plan)

    demo = top.add_parser("demo", help="PC, GRPO and DAPO on the tiny policy, then the report")
    demo.add_argument(
        "--runs", default="runs", help="directory of the three runs (reused when done)"
    )
    demo.add_argument("--set", action="append", metavar="KEY=VALUE",
                      help=f"override for all three (after the demo's own: {', '.join(DEMO_SETS)})")  # fmt: skip
    _add_crossing(demo)
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.set_defaults(func=cmd_demo)

    exp = top.add_parser("experiment", help="a named multi-seed experiment and its table")
    exp.add_argument("name", metavar="NAME",
                     help="an experiment of configs/experiments/ (" + ", ".join(experiments)
                          + "), a study (all its cells) or one study cell (<study>-<cell>)")  # fmt: skip
    exp.add_argument(
        "--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds to run and tabulate"
    )
    exp.add_argument("--variants", nargs="+", metavar="NAME",
                     help="train only these variants (the table covers every finished run)")  # fmt: skip
    exp.add_argument("--runs", default="runs/results", help="shared directory of its runs")
    exp.add_argument("--set", action="append", metavar="KEY=VALUE", help="override for all runs")
    _add_crossing(exp)
    exp.add_argument("--write", metavar="MD", help="write the table into this Markdown file")
    exp.add_argument("--table-only", action="store_true", help="do not train; tabulate runs")
    exp.add_argument("--block", metavar="KEY",
                     help="with --write: the Markdown block (and figure) name, default NAME")  # fmt: skip
    exp.add_argument("--quiet", action="store_true", help="no progress bars")
    exp.set_defaults(func=cmd_experiment)

    data = top.add_parser(
        "data", help="make the embedded task's data; fetch the presets' data"
    ).add_subparsers(dest="what", required=True)
    arith = data.add_parser("arith", help="write data/arith/{train,test}.parquet")
    arith.add_argument("--out", default=DEFAULT_ARITH, help="folder for the splits")
    arith.add_argument("--seed", type=int, default=0, help="generator seed")
    arith.add_argument("--train", type=int, default=20_000, help="train prompts")
    arith.add_argument("--test", type=int, default=1_000, help="test prompts")
    arith.set_defaults(func=cmd_data_arith)
    mixed = data.add_parser("mixed", help="the training prompts a profile found neither always "
                            "nor never solved (the paper's binary filter), none in the test split")  # fmt: skip
    mixed.add_argument(
        "--profile", required=True, help="a `pcbench profile` JSON of the train split"
    )
    mixed.add_argument("--train", default=f"{DEFAULT_ARITH}/train.parquet", help="PROMPTS parquet")
    mixed.add_argument("--test", default=f"{DEFAULT_ARITH}/test.parquet",
                       help="PROMPTS parquet whose prompts are left out")  # fmt: skip
    mixed.add_argument("--out", default=f"{DEFAULT_ARITH}/train-mixed.parquet")
    mixed.set_defaults(func=cmd_data_mixed)
    fetch = data.add_parser("fetch", help="download the presets' public datasets (needs network)")
    fetch.add_argument("names", nargs="+", metavar="NAME",
                       help="deepmath | polaris | math500 | aime24 | aime25 | amc23")  # fmt: skip
    fetch.add_argument(
        "--root", default="data", help="data/<name>/ or data/benchmarks/<name>.jsonl"
    )
    fetch.set_defaults(func=cmd_data_fetch)

    tiny = top.add_parser("tiny", help="the embedded tiny policy").add_subparsers(
        dest="what", required=True
    )
    train = tiny.add_parser("train", help="SFT a tiny Llama on the arithmetic train split")
    train.add_argument("--out", default=DEFAULT_POLICY, help="folder for the trained policy")
    train.add_argument(
        "--train-split",
        default=f"{DEFAULT_ARITH}/train.parquet",
        help="RL train split (SFT prompts are drawn apart from it)",
    )
    train.add_argument("--steps", type=int, help="optimizer steps (default: TinyConfig.steps)")
    train.add_argument("--lr", type=float, help="peak learning rate (default: TinyConfig.lr)")
    train.add_argument("--warmup", type=int, help="warm-up steps (default: TinyConfig)")
    train.add_argument("--init", help="fine-tune this saved policy instead of a fresh model")
    train.add_argument("--slip", type=float, nargs=5, metavar="P",
                       help="noisy teacher: per-level (1-5) probability that a solution step "
                            "writes a value one off; trains on a fresh SFT split instead of "
                            "--train-split")  # fmt: skip
    train.add_argument("--slip-final-only", action="store_true",
                       help="slip only at the boxed (last) step")  # fmt: skip
    train.add_argument("--sft-seed", type=int, default=2, help="seed of the noisy SFT split")
    train.add_argument("--sft-prompts", type=int, default=20_000, help="prompts in the SFT split")
    train.add_argument("--seed", type=int, default=0, help="training seed")
    train.set_defaults(func=cmd_tiny_train)
    prof = tiny.add_parser("profile", help="per-prompt pass rates at temperature 1 (vLLM)")
    prof.add_argument("--model", default=DEFAULT_POLICY, help="policy to profile")
    prof.add_argument("--split", "--test-split", default=f"{DEFAULT_ARITH}/train.parquet",
                      help="the prompts to profile (default: the RL train split, what the keep "
                           "band sees)")  # fmt: skip
    prof.add_argument("--prompts", type=int, default=500, help="prompts sampled from the split")
    prof.add_argument("--samples", type=int, default=16, help="rollouts per prompt")
    prof.add_argument("--temperature", type=float, default=1.0, help="sampling temperature")
    prof.add_argument("--seed", type=int, default=0, help="prompt sample and sampling seed")
    prof.add_argument("--card", action="store_true", help="write the result into CARD.md")
    prof.set_defaults(func=cmd_tiny_profile)
    check = tiny.add_parser("learncheck", help="does GRPO measurably improve the policy? (seeds)")
    check.add_argument("--model", default=DEFAULT_POLICY, help="policy GRPO trains")
    check.add_argument("--config", default="configs/tiny-grpo.toml", help="the GRPO run config")
    check.add_argument(
        "--seeds", type=int, nargs="+", default=[0, 1, 2], help="one GRPO run per seed"
    )
    check.add_argument("--runs", default="runs/learncheck", help="where its runs go (reused)")
    check.add_argument("--set", action="append", metavar="KEY=VALUE", help="override, repeatable")
    check.add_argument("--quiet", action="store_true", help="no progress bars")
    check.add_argument("--card", action="store_true", help="write the result into CARD.md")
    check.set_defaults(func=cmd_tiny_learncheck)
    return parser


class _Parser(argparse.ArgumentParser):
    """Every (sub)command's --help shows each flag's default."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", argparse.ArgumentDefaultsHelpFormatter)
        super().__init__(*args, **kwargs)


def quiet_libraries() -> None:
    """Hide third-party chatter a researcher cannot act on (vLLM's per-process INFO and
    thread-binding warnings, transformers' weight-loading bars, torch FutureWarnings); `pcbench
    --verbose` leaves it all on. Must run before vLLM is imported."""
    import logging
    import os
    import warnings

    os.environ.setdefault("PCBENCH_QUIET", "1")  # VLLMEngine: no weight-loading bar
    os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")  # c10 warnings (NUMA binding)
    # Set, not defaulted: a level inherited from a parent that made an engine (make_engine
    # defaults it to WARNING) would let vLLM's start-up warnings through.
    os.environ["VLLM_LOGGING_LEVEL"] = "ERROR"
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module=r"(torch|transformers|vllm)")
    for name in ("vllm", "transformers", "torch"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _notes(error: BaseException) -> str:
    """Where pcbench added context to an error (which step and round, what was undone)."""
    return "".join(f"\n  {note}" for note in getattr(error, "__notes__", []))


def main(argv: list[str] | None = None) -> int:
    """Exit codes: 0 done, 2 usage or config errors (argparse's own too), 1 runtime failures."""
    from pcbench import provenance

    words = sys.argv[1:] if argv is None else argv
    provenance.COMMAND = ["pcbench", *words]  # for config.json
    if "--verbose" not in words:  # before any command imports torch or vLLM
        quiet_libraries()
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, FileNotFoundError, FileExistsError) as e:  # ConfigError is a ValueError
        print(f"pcbench: error: {e}{_notes(e)}", file=sys.stderr)  # what to change is in it
        return 2
    except (RuntimeError, OSError) as e:
        print(f"pcbench: failed: {type(e).__name__}: {e}{_notes(e)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
