"""Read runs evaluated every 5 steps as if evaluated every E: the old tables' evaluation points.

    python bench/retabulate.py RUNS_DIR OUT_DIR [--every 15]

Evaluations are seeded by (run seed, step) alone (steps.evaluate) and never touch training, so a
run evaluated every 5 steps holds, at steps 0, 15, 30, ..., exactly the evaluations of the same
run evaluated every 15: copying each run directory with only those evaluation files (the rest
linked) re-creates the runs an every-15 table was read from, without training them again.
`pcbench compare OUT_DIR/*` then reads them under either crossing rule. (That the copies are
the old runs is checked, not assumed: docs/RESULTS.md compares them with the published table.)
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path


def thin(run: Path, out: Path, every: int) -> Path:
    target = out / run.name
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for part in run.iterdir():
        if part.name == "evals":
            (target / "evals").mkdir()
            for f in sorted(part.glob("step-*.parquet")):
                if int(f.stem.split("-")[1]) % every == 0:
                    shutil.copy2(f, target / "evals" / f.name)
        elif part.name == "config.json":
            config = json.loads(part.read_text())
            config.setdefault("eval", {})["every"] = every
            (target / "config.json").write_text(json.dumps(config, indent=1))
        elif part.name != "checkpoints":
            (target / part.name).symlink_to(part.resolve())
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", help="a folder of run directories (e.g. one study cell's)")
    parser.add_argument("out", help="where the thinned copies go")
    parser.add_argument("--every", type=int, default=15, help="keep evaluations at multiples")
    args = parser.parse_args()
    for run in sorted(p for p in Path(args.runs).iterdir() if (p / "config.json").exists()):
        print(thin(run, Path(args.out), args.every))


if __name__ == "__main__":
    main()
