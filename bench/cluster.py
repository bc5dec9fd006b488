"""[cluster] on one machine: generation with 1 vs 2 replicas, Ray's overhead per round, and the
cost of the Ray-free default path (start-up and step time, with Ray installed or not).

    .venv/bin/python bench/cluster.py [--rounds 4] [--write docs/SCALING.md]

Generation: the embedded default's round (24 fresh prompts x 4 pilot rollouts + 8 x 12 commit
rollouts, max 64 tokens, T = 1) repeated `rounds` times with the same seeds through two
replicas of 1 CPU each, one replica of 2 CPUs, one of 1 CPU (Ray actors; on a Ray instance
started here each replica's threads are bound to its own cores), and the in-process
request-seeded VLLMEngine. One replica of 2 CPUs against the in-process engine is what Ray adds
per round (dispatch, the frames' serialisation, the merge). On 2 cores two replicas share what
one engine already used, so that row says what the machinery costs here, not what a second
node gives.

Default path: a fresh process's `open_run` (imports, vLLM, policy, verifier) and 3 training
steps of the embedded default, for this checkout with Ray installed (pcbench hides it from
vLLM) and for the commit before [cluster] existed (`--before`, a git worktree) with Ray made
unimportable. Run it with nothing else on the cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")

import polars as pl  # noqa: E402
from common import publish  # noqa: E402

from pcbench.config import ClusterConfig, load_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "tiny-pc.toml"

DEFAULT_PATH = """
import sys, time, json
{block}
t0 = time.perf_counter()
import pcbench
from pcbench.config import load_config
from pcbench.loop import initial_eval, train_step
from pcbench.run import open_run
cfg = load_config({config!r}, ["steps=3", "name=bench", "eval.every=100"])
s, run = open_run(cfg, {root!r})
start = time.perf_counter() - t0
t1 = time.perf_counter()
for _ in range(3):
    train_step(s, cfg, run)
print(json.dumps({{"start": start, "step": (time.perf_counter() - t1) / 3, "at": pcbench.__file__,
                  "ray": sys.modules.get("ray") is not None}}))
"""


def round_requests(cfg) -> pl.DataFrame:
    from pcbench.steps.rollouts import requests

    prompts = pl.read_parquet(ROOT / cfg.train).head(cfg.pool_prompts + cfg.batch_prompts)
    reqs = pl.concat([
        requests(prompts["prompt_id"][: cfg.pool_prompts], cfg.pilot.n_pilot, "pilot"),
        requests(prompts["prompt_id"][cfg.pool_prompts :], cfg.commit.n_commit, "commit"),
    ])  # fmt: skip
    return reqs.join(prompts.select("prompt_id", "prompt"), on="prompt_id", maintain_order="left")


def time_rounds(engine, reqs, cfg, rounds: int) -> tuple[float, int, pl.DataFrame]:
    engine.generate(reqs, cfg.sampling, step=0, round=0, seed=0)  # warm-up
    start, total, last = time.perf_counter(), 0, None
    for r in range(rounds):
        last = engine.generate(reqs, cfg.sampling, step=1, round=r, seed=r)
        total += last.height
    return (time.perf_counter() - start) / rounds, total, last


def generation(rounds: int) -> list[dict]:
    from pcbench.cluster.replicas import ReplicatedEngine
    from pcbench.engines import VLLMEngine

    cfg = load_config(CONFIG)
    reqs, ec, rows, frames = round_requests(cfg), cfg.engine, [], []
    # Replicas first, each layout shut down before the next: an in-process engine's threads,
    # bound to every core, slowed two replicas 5x while it merely existed.
    for n, cpus in ((2, 1), (1, 2), (1, 1)):
        layout = ClusterConfig(engines=n, engine_cpus=cpus)
        engine = ReplicatedEngine(str(ROOT / cfg.model), ec, layout, seed=0)
        seconds, total, last = time_rounds(engine, reqs, cfg, rounds)
        frames.append(last)
        rows.append({"engine": f"{n} replica{'s' * (n > 1)} x {cpus} CPU on Ray",
                     "s/round": seconds, "rollouts/s": total / rounds / seconds})  # fmt: skip
        engine.shutdown()
    local = VLLMEngine(
        str(ROOT / cfg.model), dtype=ec.dtype, max_model_len=ec.max_model_len,
        engine_args=ec.vllm_args, seeding="request",
    )  # fmt: skip
    seconds, total, reference = time_rounds(local, reqs, cfg, rounds)
    rows.append({"engine": "in process (request seeds)", "s/round": seconds,
                 "rollouts/s": total / rounds / seconds})  # fmt: skip
    for row, frame in zip(rows, frames, strict=False):
        row["same rollouts"] = str(frame.drop("logprobs").equals(reference.drop("logprobs")))
    rows[-1]["same rollouts"] = "—"
    return rows


def default_path(tmp: Path, before: str) -> list[dict]:
    """This checkout with Ray installed, and commit `before` (a worktree) with Ray unimportable."""
    worktree = tmp / "before"
    subprocess.run(["git", "worktree", "add", "--detach", str(worktree), before], cwd=ROOT,
                   check=True, capture_output=True)  # fmt: skip
    old = f"sys.path.insert(0, {str(worktree)!r}); sys.modules['ray'] = None"
    try:
        now = _default_path_row(tmp / "now", "this checkout, Ray installed", "")
        then = _default_path_row(tmp / "then", f"{before}, no Ray (before)", old)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=ROOT,
                       check=False, capture_output=True)  # fmt: skip
    if not then.pop("at").startswith(str(worktree)) or now.pop("at").startswith(str(worktree)):
        raise RuntimeError("the two rows did not import the pcbench they name")
    return [now, then]


def _default_path_row(root: Path, label: str, block: str) -> dict:
    code = DEFAULT_PATH.format(block=block, config=str(CONFIG), root=str(root))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=True)  # fmt: skip
    found = json.loads(out.stdout.strip().splitlines()[-1])
    return {"default path": label, "start-up s": found["start"], "s/step": found["step"],
            "ray imported": str(found["ray"]), "at": found["at"]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--write", default=None, help="Markdown file to put the tables in")
    parser.add_argument("--before", default="30544da", help="a commit before [cluster] existed")
    args = parser.parse_args()
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = pl.DataFrame(default_path(Path(tmp), args.before))
    gen = pl.DataFrame(generation(args.rounds))
    with pl.Config(tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True,
                   float_precision=2, tbl_width_chars=120):  # fmt: skip
        text = f"{gen}\n\n{path}"
    publish(text, "cluster-bench", args.write)


if __name__ == "__main__":
    main()
