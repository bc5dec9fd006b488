"""Golden vectors of the peers' rules, computed by their public code on seeded states.

    python tests/golden/make_peer_vectors.py --knapsack SNAP --greso SNAP --mopps SNAP

Each SNAP is a git snapshot of the public repository (a bare git directory such as the one
`fetch` brings, or a checkout): liziniu/KnapsackRL, Infini-AI-Lab/GRESO, thu-rllab/MoPPS. The
script reads the files below at the snapshot's HEAD and runs them; nothing of theirs is kept
but what their functions return, written to tests/golden/{knapsack,greso,mopps}.json with the
commit each came from. tests/test_peer_golden.py feeds the same inputs to pcbench's rules.

How each rule is run, from where:
- Knapsack-RL `sampling_budget_by_knapsack` and `solve_by_dp` (verl/trainer/ppo/
  exploration_utils.py): the module imported whole, numba's path off (numba is optional
  there and not installed here; its path runs the same DP in another loop order), prints
  silenced. Its per-prompt success-rate estimate, `RLHFDataset.update_sample_state` and
  `get_sample_state` (verl/utils/dataset/rl_dataset.py): the two methods' source, compiled alone
  (the module imports datasets, transformers and verl).
- GRESO `DataProfiler.easy_probabilistic_skip` / `hard_probabilistic_skip` (verl/trainer/ttis/
  presampling_selector.py), imported whole: the skip probability is read off the function by
  bisecting the uniform draw its `torch.rand(1)` returns (skip iff u < p). Its step shares
  `compute_reward_metrics` (verl/trainer/ppo/metric_utils.py): the function's source alone.
  The p_easy/p_hard move and the next round's size are inline in `RayPPOTrainer.fit`
  (verl/trainer/ppo/ray_trainer.py): those lines, found by their first and last statements,
  dedented and executed as they stand in a namespace holding the variables they read.
- MoPPS `PosteriorSampler.sample_batch` and `train` (recipe/ours/mopps.py), imported whole,
  with numpy's global RandomState seeded before each call.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import io
import json
import subprocess
import sys
import textwrap
import types
import typing
from pathlib import Path

import numpy as np
import torch

OUT = Path(__file__).resolve().parent


# ---- reading a snapshot ------------------------------------------------------------------------


class Snapshot:
    def __init__(self, path: str):
        path = Path(path)
        self.git_dir = path / ".git" if (path / ".git").exists() else path
        self.commit = self._git("rev-parse", "HEAD").strip()

    def _git(self, *args: str) -> str:
        return subprocess.run(
            ["git", f"--git-dir={self.git_dir}", *args], check=True, capture_output=True, text=True
        ).stdout

    def read(self, path: str) -> str:
        return self._git("show", f"{self.commit}:{path}")

    def module(self, path: str) -> dict:
        """The file executed as a module (its own imports must be installed)."""
        namespace = {"__name__": Path(path).stem}
        exec(compile(self.read(path), path, "exec"), namespace)
        return namespace

    def functions(self, path: str, names: set[str], namespace: dict) -> dict:
        """Only the named function definitions of the file (at top level or in a class),
        compiled into `namespace`; returns it, with where each came from under `__lines__`."""
        tree = ast.parse(self.read(path))
        found = [
            node for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef) and node.name in names
        ]  # fmt: skip
        if {f.name for f in found} != names:
            raise SystemExit(f"{path}: not found: {names - {f.name for f in found}}")
        module = ast.Module(body=found, type_ignores=[])
        exec(compile(module, path, "exec"), namespace)
        namespace["__lines__"] = {f.name: f"{path}:{f.lineno}-{f.end_lineno}" for f in found}
        return namespace

    def block(self, path: str, first: str, last: str) -> tuple[str, str]:
        """(source, where) of the lines from the one containing `first` to the next one
        containing `last`, dedented so they run as they stand."""
        lines = self.read(path).splitlines()
        start = next(i for i, line in enumerate(lines) if first in line)
        end = next(i for i in range(start, len(lines)) if last in lines[i])
        return textwrap.dedent("\n".join(lines[start : end + 1])), f"{path}:{start + 1}-{end + 1}"


def ns(**fields) -> types.SimpleNamespace:
    return types.SimpleNamespace(**fields)


class Config(types.SimpleNamespace):
    """An attribute tree that also answers verl's `config.get(key, default)`."""

    def get(self, key, default=None):
        return getattr(self, key, default)


# ---- Knapsack-RL -----------------------------------------------------------------------------

KNAPSACK_FILE = "verl/trainer/ppo/exploration_utils.py"
DATASET_FILE = "verl/utils/dataset/rl_dataset.py"


def knapsack_states(rng: np.random.Generator, size: int) -> list[list[float]]:
    """[validity, success rate, count] rows as the dataset hands them to the allocator: some
    unknown (count below 8: [0, 0.0, count]), some at 0, some at 1, the rest in between."""
    rows = []
    for _ in range(size):
        kind = rng.choice(["unknown", "zero", "one", "between"], p=[0.25, 0.2, 0.2, 0.35])
        if kind == "unknown":
            rows.append([0, 0.0, int(rng.integers(0, 8))])
            continue
        seen = int(rng.choice([8, 16, 24, 32, 64]))
        window = min(seen, 16)
        k = {"zero": 0, "one": window}.get(kind, int(rng.integers(1, window)))
        rows.append([1, k / window, seen])
    return rows


def knapsack_cases(snapshot: Snapshot) -> dict:
    module = snapshot.module(KNAPSACK_FILE)
    module["NUMBA_AVAILABLE"] = False
    allocate = module["sampling_budget_by_knapsack"]
    cases = []
    settings = [
        (size, n, max_n) for size in (8, 16, 32, 64) for n in (8, 16) for max_n in (64, 128)
    ]
    for seed in range(6):
        for size, n, max_n in settings:
            rng = np.random.default_rng([seed, size, n, max_n])
            states = knapsack_states(rng, size)
            # budgets: B x n (the default), and others, some below the base allocation
            budget = None if seed < 4 else int(size * n * rng.choice([0.75, 1.5]))
            cases.append(knapsack_case(allocate, states, n, max_n, budget, f"s{seed}-B{size}"))
    for size, n, max_n in [(8, 16, 64), (16, 8, 128), (32, 16, 128)]:  # the DP falls short
        # every cost estimate is capped at max_n, so the cap leaves the DP a budget above what
        # min_n + (max_n - min_n) per prompt can hold
        states = [[1, 0.99, 32]] * (size - 1) + [[1, 0.01, 32]]
        budget = size * (max_n + 1)
        cases.append(knapsack_case(allocate, states, n, max_n, budget, f"short-B{size}"))
    for size, n, max_n in [(8, 16, 128), (16, 8, 64)]:  # no informative prompt
        for states in (
            [[1, 0.0, 16]] * (size // 2) + [[1, 1.0, 16]] * (size // 2),
            [[1, 1.0, 16]] * size,
            [[0, 0.0, 3]] * 2 + [[1, 1.0, 16]] * (size - 2),
        ):
            cases.append(knapsack_case(allocate, states, n, max_n, None, f"none-B{size}"))
    refused = [[0, 0.0, 2]] * 4 + [[1, 0.5, 16]] * 4  # below the base allocation (4 x 16 + 4 x 2)
    cases.append(knapsack_case(allocate, refused, 16, 128, 4 * 16 + 4 * 2 - 1, "refused-B8"))
    return {"file": KNAPSACK_FILE, "cases": cases, "estimates": knapsack_estimates(snapshot)}


def knapsack_case(allocate, states, n, max_n, budget, name) -> dict:
    kwargs = dict(min_n=2, max_n=max_n, alpha=0.9, negative_n=2, positive_n=2)  # the 7B script
    case = {"name": name, "states": states, "n": n, "total_budget": budget, **kwargs}
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            counts, info = allocate(
                np.array(states, dtype=object), n, total_budget=budget, **kwargs
            )
    except AssertionError as error:  # a budget below the base allocation: it refuses
        return case | {"counts": None, "error": str(error).split(":")[0]}
    return case | {"counts": [int(c) for c in counts], "fallback": bool(info["fallback"])}


def knapsack_estimates(snapshot: Snapshot) -> dict:
    """Seeded reward histories (one list of 0/1 per visit) and the [validity, success rate,
    count] the dataset reports after each visit."""
    namespace = {"np": np, **vars(typing)}
    snapshot.functions(DATASET_FILE, {"update_sample_state", "get_sample_state"}, namespace)
    histories = []
    for seed in range(40):
        rng = np.random.default_rng([7, seed])
        dataset = ns(
            sample_states={}, min_buffer_length=8, reward_buffer_length=16,
            epoch_estimation=True, robust_epoch_estimation=True,
        )  # fmt: skip
        visits, states = [], []
        for _ in range(int(rng.integers(1, 6))):
            size = int(rng.choice([2, 3, 4, 8, 12, 16, 24]))
            rewards = rng.integers(0, 2, size).tolist()
            namespace["update_sample_state"](dataset, "p", rewards)
            visits.append(rewards)
            state = namespace["get_sample_state"](dataset, "p")
            states.append([int(state[0]), float(state[1]), int(state[2])])
        histories.append({"visits": visits, "states": states})
    return {"file": DATASET_FILE, "functions": namespace["__lines__"], "histories": histories}


# ---- GRESO -----------------------------------------------------------------------------------

SELECTOR_FILE = "verl/trainer/ttis/presampling_selector.py"
METRICS_FILE = "verl/trainer/ppo/metric_utils.py"
TRAINER_FILE = "verl/trainer/ppo/ray_trainer.py"


class FixedDraw:
    """Stands in for the selector's `torch` so that `torch.rand(1).item()` returns u."""

    def __init__(self):
        self.u = 0.0

    def rand(self, *shape):
        return torch.full(shape, self.u, dtype=torch.float64)


def greso_trace(rng: np.random.Generator) -> list[float]:
    """A prompt's trace of group mean rewards on GRESO's scale (1 correct, 0.1 a wrong
    answer, 0 no answer), groups of 8, 16, 64 or 128, often ending in an all-equal streak."""
    trace = []
    for _ in range(int(rng.integers(1, 7))):
        n = int(rng.choice([8, 16, 64, 128]))
        kind = rng.choice(["all", "none", "near-all", "near-none", "mixed"])
        correct = {"all": n, "none": 0, "near-all": n - 1, "near-none": 1}.get(
            kind, int(rng.integers(0, n + 1))
        )
        no_answer = int(rng.integers(0, 3)) if rng.random() < 0.3 else 0
        no_answer = min(no_answer, n - correct)
        trace.append((correct + 0.1 * (n - correct - no_answer)) / n)
    return trace


def greso_skips(snapshot: Snapshot) -> list[dict]:
    module = snapshot.module(SELECTOR_FILE)
    draw = FixedDraw()
    module["torch"] = draw
    profiler = module["DataProfiler"]()

    def skipped(u: float, p_easy: float, p_hard: float) -> bool:
        draw.u = u  # in the order filter_examples_all_probabilistic asks them
        return profiler.easy_probabilistic_skip(0, "p", p=p_easy) or (
            profiler.hard_probabilistic_skip(0, "p", p=p_hard)
        )

    cases = []
    for seed in range(60):
        rng = np.random.default_rng([11, seed])
        trace = [] if seed == 0 else greso_trace(rng)
        p_easy, p_hard = (round(float(x), 2) for x in rng.uniform(0.05, 0.95, 2))
        profiler.data = {"p": [(0, r) for r in trace]} if trace else {}
        lo, hi = 0.0, 1.0  # skipped(u) is u < p: bisect for p
        for _ in range(60):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if skipped(mid, p_easy, p_hard) else (lo, mid)
        cases.append({"trace": trace, "p_easy": p_easy, "p_hard": p_hard, "skip": hi})
    return cases


def greso_shares(snapshot: Snapshot) -> dict:
    namespace = snapshot.functions(METRICS_FILE, {"compute_reward_metrics"}, {"torch": torch})
    cases = []
    for seed in range(20):
        rng = np.random.default_rng([13, seed])
        groups = []
        for _ in range(int(rng.integers(2, 12))):  # the function reads groups of 8
            kind = rng.choice(["all", "wrong", "none", "mixed"])
            choices = {"all": [1.0], "wrong": [0.1], "none": [0.0]}.get(kind, [1.0, 0.1, 0.0])
            groups.append([float(rng.choice(choices)) for _ in range(8)])
        batch = ns(batch={"token_level_scores": torch.tensor(groups).reshape(-1, 1)})
        with contextlib.redirect_stdout(io.StringIO()):
            metrics = namespace["compute_reward_metrics"](batch, None)
        cases.append({
            "groups": groups,
            "easy": metrics["examples/all_correct_example_ratio"],
            "hard": metrics["examples/format_example_ratio"],
            "zero_variance": metrics["examples/non_diverse_examples_ratio"],
        })  # fmt: skip
    return {"function": namespace["__lines__"]["compute_reward_metrics"], "cases": cases}


def greso_adapt(snapshot: Snapshot) -> dict:
    source, where = snapshot.block(
        TRAINER_FILE, "hard_data_ratio = hard_data_num / total_num",
        "self.p_easy = min(self.p_easy + 0.01, max_p)",
    )  # fmt: skip
    cases = []
    for seed in range(40):
        rng = np.random.default_rng([17, seed])
        total = int(rng.integers(8, 400))
        easy, hard = (int(x) for x in rng.integers(0, total // 2 + 1, 2))
        if seed % 10 == 0:  # a share exactly at its target (25/3 % and 50/3 % of 24 or 48)
            total, easy, hard = 24 * (1 + seed // 20), 2 * (1 + seed // 20), 4 * (1 + seed // 20)
        p_easy, p_hard = (round(float(x), 2) for x in rng.choice([0.05, 0.5, 0.7, 0.95], 2))
        epoch = int(rng.integers(0, 3))
        trainer = ns(
            config=ns(data=Config(dynamic_filtering_strategy="all_probabilistic")),
            targeted_easy=0.25 / 3, targeted_hard=0.25 * 2 / 3, p_easy=p_easy, p_hard=p_hard,
        )  # fmt: skip
        variables = dict(self=trainer, easy_data_num=easy, hard_data_num=hard,
                         total_num=total, epoch=epoch)  # fmt: skip
        with contextlib.redirect_stdout(io.StringIO()):
            exec(source, {}, variables)
        cases.append({
            "epoch": epoch, "groups": total, "easy": easy, "hard": hard,
            "p_easy": p_easy, "p_hard": p_hard,
            "p_easy_after": trainer.p_easy, "p_hard_after": trainer.p_hard,
        })  # fmt: skip
    return {"lines": where, "target_zero_variance": 0.25, "cases": cases}


def greso_next_round(snapshot: Snapshot) -> dict:
    source, where = snapshot.block(
        TRAINER_FILE, 'zero_variance_ratio = reward_metrics["examples/non_diverse_examples_ratio"]',
        "adaptive_sampling_bs = max(adaptive_sampling_bs, 64)",
    )  # fmt: skip
    cases = []
    for seed in range(40):
        rng = np.random.default_rng([19, seed])
        n, batch_prompts = int(rng.choice([8, 16])), int(rng.choice([128, 256, 512]))
        have = int(rng.integers(0, batch_prompts)) * n
        zero_variance = float(rng.choice([0.0, 0.125, 0.25, 0.5, 0.75, 0.9375]))
        round_prompts = int(batch_prompts * 1.5)
        variables = dict(
            self=ns(config=ns(actor_rollout_ref=ns(rollout=ns(n=n)))),
            reward_metrics={"examples/non_diverse_examples_ratio": zero_variance},
            real_train_batch_size=batch_prompts * n, dynamic_sampling_batch=[None] * have,
            default_sampling_batch_size=round_prompts, last_sampling=False,
        )  # fmt: skip
        exec(source, {}, variables)
        cases.append({
            "n": n, "missing_rollouts": batch_prompts * n - have, "zero_variance": zero_variance,
            "round_prompts": round_prompts, "min_prompts": 64,
            "prompts": variables["adaptive_sampling_bs"], "last": variables["last_sampling"],
        })  # fmt: skip
    return {"lines": where, "cases": cases}


def greso_cases(snapshot: Snapshot) -> dict:
    return {
        "files": [SELECTOR_FILE, METRICS_FILE, TRAINER_FILE],
        "skips": greso_skips(snapshot), "shares": greso_shares(snapshot),
        "adapt": greso_adapt(snapshot), "next_round": greso_next_round(snapshot),
    }  # fmt: skip


# ---- MoPPS -----------------------------------------------------------------------------------

MOPPS_FILE = "recipe/ours/mopps.py"


def mopps_cases(snapshot: Snapshot) -> dict:
    sampler_class = snapshot.module(MOPPS_FILE)["PosteriorSampler"]
    cases = []
    for seed in range(40):
        rng = np.random.default_rng([23, seed])
        candidates, keep = int(rng.choice([16, 32, 64, 128])), int(rng.choice([4, 8, 16]))
        n = int(rng.choice([4, 8, 16]))
        strategy = "topk" if seed % 2 == 0 else "threshold"
        args = ns(
            data=ns(train_batch_size=keep),
            actor_rollout_ref=ns(rollout=ns(n=n)),
            tasksampler=ns(
                bandit_decay_ratio=1.0 if seed % 4 < 2 else 0.5, bandit_target_mean=0.5,
                bandit_lower_bound=0.3, bandit_upper_bound=0.7,
                bandit_sample_strategy=strategy, bandit_no_update=False,
            ),
        )  # fmt: skip
        sampler = sampler_class(args, total_num_samples=candidates)
        seen = rng.random(candidates) < 0.6  # the rest are first-time candidates: the prior
        alpha = np.where(seen, 1 + rng.integers(0, 40, candidates), 1.0).tolist()
        beta = np.where(seen, 1 + rng.integers(0, 40, candidates), 1.0).tolist()
        for i in np.flatnonzero(seen):
            sampler.alpha[str(i)], sampler.beta[str(i)] = alpha[i], beta[i]
        np.random.seed(seed)
        chosen, _ = sampler.sample_batch({"index": np.arange(candidates)})
        successes = rng.integers(0, n + 1, keep)
        sampler.train(chosen, torch.tensor(successes / n, dtype=torch.float32))
        picked = [int(i) for i in chosen["index"]]
        cases.append({
            "seed": seed, "strategy": strategy, "keep": keep, "n": n,
            "decay": args.tasksampler.bandit_decay_ratio, "alpha": alpha, "beta": beta,
            "chosen": picked, "successes": successes.tolist(),
            "alpha_after": [float(sampler.alpha[str(i)]) for i in picked],
            "beta_after": [float(sampler.beta[str(i)]) for i in picked],
        })  # fmt: skip
    return {"file": MOPPS_FILE, "random_state": "np.random.seed(seed) before sample_batch",
            "cases": cases}  # fmt: skip


# ---- main ------------------------------------------------------------------------------------


def write(name: str, repo: str, snapshot: Snapshot, vectors: dict) -> None:
    about = (f"Outputs of github.com/{repo} at {snapshot.commit} on seeded states, written by "
             "tests/golden/make_peer_vectors.py; read by tests/test_peer_golden.py.")  # fmt: skip
    payload = {"about": about, "repo": repo, "commit": snapshot.commit, **vectors}
    (OUT / f"{name}.json").write_text(json.dumps(payload, indent=1) + "\n")
    print(f"wrote {OUT / name}.json from {repo}@{snapshot.commit[:7]}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--knapsack", help="snapshot of liziniu/KnapsackRL")
    parser.add_argument("--greso", help="snapshot of Infini-AI-Lab/GRESO")
    parser.add_argument("--mopps", help="snapshot of thu-rllab/MoPPS")
    args = parser.parse_args()
    if args.knapsack:
        snap = Snapshot(args.knapsack)
        write("knapsack", "liziniu/KnapsackRL", snap, knapsack_cases(snap))
    if args.greso:
        snap = Snapshot(args.greso)
        write("greso", "Infini-AI-Lab/GRESO", snap, greso_cases(snap))
    if args.mopps:
        snap = Snapshot(args.mopps)
        write("mopps", "thu-rllab/MoPPS", snap, mopps_cases(snap))


if __name__ == "__main__":
    main()
