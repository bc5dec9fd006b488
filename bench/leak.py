"""Long-run health: resident memory and open file descriptors over a 200-step run.

    .venv/bin/python bench/leak.py [--steps 200] [--write docs/RESULTS.md]

Trains the embedded default (configs/tiny-pc.toml, its own settings but a 100-prompt
evaluation, so that 200 steps take ~15 min on 2 cores rather than an hour of evaluations) step
by step into a temporary run directory, logging and checkpointing as `pcbench run` does, and
samples after every step: this process's RSS, the verifier workers' RSS, and open file
descriptors. Growth is measured after warm-up (the first 10% of steps: allocator pools,
vLLM's caches and the optimizer state fill then): the mean of the last 10% of steps against
the mean of the 10% after warm-up. The target is < 5%.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")

import psutil  # noqa: E402
from common import publish  # noqa: E402

from pcbench.config import load_config  # noqa: E402
from pcbench.loop import initial_eval, train_step  # noqa: E402
from pcbench.run import open_run  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def sample(me: psutil.Process) -> dict[str, float]:
    children = me.children(recursive=True)
    child_rss = 0
    for child in children:
        try:
            child_rss += child.memory_info().rss
        except psutil.NoSuchProcess:  # a worker replaced between listing and reading
            pass
    return {
        "rss_mb": me.memory_info().rss / 2**20,
        "children_rss_mb": child_rss / 2**20,
        "children": len(children),
        "fds": me.num_fds(),
    }


def growth(values: list[float], warm: int, window: int) -> float:
    early = values[warm : warm + window]
    late = values[-window:]
    base = sum(early) / len(early)
    return (sum(late) / len(late) - base) / base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--write", metavar="DOC", help="put the table into DOC's 'leak' block")
    args = parser.parse_args()
    cfg = load_config(
        ROOT / "configs" / "tiny-pc.toml",
        [f"steps={args.steps}", "eval.max_prompts=100", "name=leak", "keep_checkpoints=1"],
    )
    me, samples = psutil.Process(), []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as root:
        s, run = open_run(cfg, root)
        initial_eval(s, cfg, run)
        for _ in range(args.steps):
            train_step(s, cfg, run)
            samples.append(sample(me) | {"step": s.step})
        s.verifier.close()
    minutes = (time.perf_counter() - start) / 60
    warm = window = max(1, args.steps // 10)
    rows = [samples[i] for i in sorted({0, warm - 1, args.steps // 2 - 1, args.steps - 1})]
    lines = [
        "| step | RSS (MiB) | verifier workers' RSS (MiB) | workers | open fds |",
        "|---:|---:|---:|---:|---:|",
        *(f"| {r['step']} | {r['rss_mb']:.0f} | {r['children_rss_mb']:.0f} | {r['children']} | "
          f"{r['fds']} |" for r in rows),
    ]  # fmt: skip
    verdicts = {
        name: growth([x[key] for x in samples], warm, window)
        for name, key in [("RSS", "rss_mb"), ("workers' RSS", "children_rss_mb"), ("fds", "fds")]
    }
    summary = "; ".join(f"{k} {v:+.1%}" for k, v in verdicts.items())
    ok = all(v < 0.05 for v in verdicts.values())
    text = "\n".join(lines) + (
        f"\n\nGrowth after warm-up (mean of steps {args.steps - window + 1}-{args.steps} vs "
        f"{warm + 1}-{warm + window}): {summary} -> {'under' if ok else 'NOT under'} the 5% "
        f"target. {args.steps} steps in {minutes:.1f} min."
    )
    publish(text, "leak", args.write)


if __name__ == "__main__":
    main()
