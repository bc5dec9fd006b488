"""What every benchmark prints beside its table: the machine, the versions, the command."""

from __future__ import annotations

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
