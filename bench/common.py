"""What every benchmark prints beside its table: the machine, the versions, the command."""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
from datetime import date
from pathlib import Path

from pcbench.experiments import write_block

ROOT = Path(__file__).resolve().parents[1]


def machine() -> str:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor() or "unknown CPU",
    ) if Path("/proc/cpuinfo").exists() else platform.processor()  # fmt: skip
    try:
        import torch
        import vllm

        versions = f"torch {torch.__version__}, vllm {vllm.__version__}"
    except ImportError:  # pragma: no cover - the bench needs both
        versions = ""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{cpu}, {os.cpu_count()} cores, {memory:.0f} GiB, no GPU; Python "
        f"{platform.python_version()}, {versions}; measured {date.today().isoformat()}"
    )


def publish(text: str, key: str, doc: str | None) -> None:
    """Print the table; with --write, put it (with machine and command) into the doc's block."""
    print(text)
    if doc:
        args = [a for a in sys.argv[1:] if not a.startswith("--write") and a != doc]
        command = " ".join(["python", f"bench/{Path(sys.argv[0]).name}", *map(shlex.quote, args)])
        write_block(doc, key, f"{text}\n\nMachine: {machine()}. Reproduce: `{command}`.")
        print(f"\nwrote block {key!r} of {doc}", file=sys.stderr)


def experiment_args(doc: str, block: str) -> argparse.Namespace:
    """The arguments of a script that reads one experiment's runs: the experiment, its runs
    folder, the seeds, and --write MD (into MD's `{block}-EXPERIMENT` block)."""
    from pcbench.experiments import DEFAULT_SEEDS

    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("experiment", help="a name under configs/experiments/ (e.g. ablations)")
    parser.add_argument("--runs", default="runs/results", help="the experiment's runs folder")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(DEFAULT_SEEDS))
    parser.add_argument("--write", metavar="MD", help=f"also write it into MD's {block}-* block")
    return parser.parse_args()


def publish_reading(text: str, exp, args: argparse.Namespace, block: str) -> None:
    """`publish` the reading of experiment `exp`, naming its runs not finished yet (a partial
    table is still worth reading, as long as it says what it leaves out)."""
    from pcbench.experiments import left_out

    missing = left_out(exp, args.runs, args.seeds)
    if missing:
        text += f"\nNot finished: {', '.join(missing)}."
    publish(text, f"{block}-{args.experiment}", args.write)
