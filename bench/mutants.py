"""Mutation check: would the tests notice if the method's sharpest edges were flipped?

Each mutant changes one comparison or constant that decides what Pilot-Commit trains on (the
buffer's tie-break, the staleness bound, the keep band's edges, the group std's ddof). For each,
the repository is copied to a temporary directory, the one line is changed there, and the pure
and golden-vector tests are run against the copy. A mutant that no test kills is a hole in the
suite: the script lists the tests each mutant fails and exits 1 if any survives.

    python bench/mutants.py            # ~1 min on 2 cores; `make mutants`
    python bench/mutants.py --write docs/RESULTS.md
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The fast tests of the method's logic (no engine, no model): where these mutants must die.
TESTS = ("tests/test_algos.py", "tests/test_buffer.py", "tests/test_golden.py",
         "tests/test_steps.py", "tests/test_peer_golden.py", "-m", "not slow")  # fmt: skip


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str  # file under the repository root
    old: str  # must occur exactly once
    new: str


MUTANTS = (
    Mutant(
        "buffer tie-break: equal std -> oldest first (official: most recent)",
        "pcbench/algos/sampling.py",
        "np.lexsort((np.arange(n), -np.asarray(added_step), -np.asarray(std)))",
        "np.lexsort((np.arange(n), np.asarray(added_step), -np.asarray(std)))",
    ),
    Mutant(
        "staleness: drop at age >= max_staleness (official: >)",
        "pcbench/buffer.py",
        "self.entries = [e for e in self.entries if e.age(step) <= self.max_staleness]",
        "self.entries = [e for e in self.entries if e.age(step) < self.max_staleness]",
    ),
    Mutant(
        "keep band: a == keep_max is too_easy (official: kept)",
        "pcbench/algos/groups.py",
        "mean > keep_max + EPS",
        "mean > keep_max - EPS",
    ),
    Mutant(
        "keep band: a == keep_min is too_hard (official: kept)",
        "pcbench/algos/groups.py",
        "mean < keep_min - EPS",
        "mean < keep_min + EPS",
    ),
    Mutant(
        "group std: ddof 0 (official: ddof 1, torch.std)",
        "pcbench/algos/advantages.py",
        "np.sqrt(sq / np.maximum(n - 1, 1))",
        "np.sqrt(sq / np.maximum(n, 1))",
    ),
    Mutant(
        "Knapsack-RL: left-over budget to the p = 0 prompts only (public: unknown ones too)",
        "pcbench/algos/knapsack.py",
        "zeros = [i for i, p in enumerate(p_hat) if p is None or p <= 0]",
        "zeros = [i for i, p in enumerate(p_hat) if p is not None and p <= 0]",
    ),
    Mutant(
        "GRESO: all-correct is a mean reward of 1 (public: >= 0.98)",
        "pcbench/algos/greso.py",
        "EASY_AT, HARD_AT = 0.98, 0.11",
        "EASY_AT, HARD_AT = 1.0, 0.11",
    ),
    Mutant(
        "MoPPS: keep the Thompson draws farthest from 0.5 (public: nearest)",
        "pcbench/algos/mopps.py",
        'np.argsort((draws - TARGET) ** 2, kind="stable")[:keep]',
        'np.argsort(-((draws - TARGET) ** 2), kind="stable")[:keep]',
    ),
)


def tracked_copy(dest: Path) -> None:
    """The repository's tracked files (and data/, which the tests read) copied to dest."""
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()  # fmt: skip
    for name in files:
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)


def apply(mutant: Mutant, tree: Path) -> None:
    path = tree / mutant.path
    text = path.read_text()
    if text.count(mutant.old) != 1:
        raise SystemExit(f"mutant {mutant.name!r}: the line to change is not in {mutant.path} "
                         "exactly once; update bench/mutants.py to the code")  # fmt: skip
    path.write_text(text.replace(mutant.old, mutant.new))


def failing_tests(tree: Path) -> tuple[list[str], str]:
    """Test ids that fail in `tree` (its own pcbench first on sys.path), and pytest's tail."""
    env = os.environ | {"PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}
    env.setdefault("PCBENCH_SHARED_DATA", str(ROOT.parent / "shared" / "data"))
    check = "import pcbench, sys; sys.exit(not pcbench.__file__.startswith(sys.argv[1]))"
    if subprocess.run([sys.executable, "-c", check, str(tree)], cwd=tree, env=env).returncode:
        raise SystemExit("the copy's pcbench is not the one imported; cannot run mutants")
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--tb=no", "-rf",
         "-o", "addopts=", *TESTS],
        cwd=tree, env=env, capture_output=True, text=True,
    )  # fmt: skip
    failed = re.findall(r"^FAILED (\S+)", out.stdout, re.M)
    return failed, out.stdout[-600:]


def _tests(ids: list[str]) -> str:
    """Failing test ids, parametrised cases folded: `test_x` (3 cases), `test_y`."""
    cases: dict[str, int] = {}
    for test_id in ids:
        name = test_id.split("::")[-1].split("[")[0]
        cases[name] = cases.get(name, 0) + 1
    return ", ".join(f"`{n}`" + (f" ({c} cases)" if c > 1 else "") for n, c in cases.items())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", metavar="MD", help="write the table into this Markdown file")
    args = parser.parse_args(argv)
    rows, start = [], time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pcbench-mutants-") as tmp:
        clean = Path(tmp) / "clean"
        tracked_copy(clean)
        failed, tail = failing_tests(clean)
        if failed:  # a mutant is only meaningful against a suite that passes
            print(tail)
            raise SystemExit(f"the unmutated tests fail: {failed}")
        for i, mutant in enumerate(MUTANTS):
            tree = Path(tmp) / f"m{i}"
            shutil.copytree(clean, tree)
            apply(mutant, tree)
            killed_by, _ = failing_tests(tree)
            rows.append((mutant, killed_by))
            print(f"{'killed' if killed_by else 'SURVIVED'}: {mutant.name}")
            for test in killed_by:
                print(f"    {test}")
    survivors = [m.name for m, k in rows if not k]
    table = "\n".join(
        ["| mutant | file | killed by |", "|---|---|---|"]
        + [f"| {m.name} | `{m.path}` | {_tests(k) if k else '**survived**'} |" for m, k in rows]
    )
    print(f"\n{table}\n\n{len(rows) - len(survivors)} of {len(rows)} mutants killed "
          f"({time.perf_counter() - start:.0f} s)")  # fmt: skip
    if args.write:
        sys.path.insert(0, str(ROOT))
        from pcbench.experiments import write_block

        write_block(args.write, "mutants", table + "\n\nReproduce: `python bench/mutants.py`.")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
