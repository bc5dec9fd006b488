"""The five steps the notebooks call one at a time: pilot, score, plan/commit, update, evaluate.

Each takes state objects (engine, verifier, policy, buffer entries) and frames, and returns a
frame validated against its schema (DESIGN §2-3). State changes happen in the caller.
The update (`pcbench.steps.update`: update, advantages) imports torch and is imported from its
module where a step trains, so the other steps, and everything that reads runs, stay light.
"""

from pcbench.steps.commit import commit, plan, reused_pilot, training_group
from pcbench.steps.evaluate import eval_prompts, eval_summary, evaluate
from pcbench.steps.pilot import pilot, score
from pcbench.steps.rollouts import call_seed, generate, generate_round, requests

__all__ = [
    "call_seed",
    "commit",
    "eval_prompts",
    "eval_summary",
    "evaluate",
    "generate",
    "generate_round",
    "pilot",
    "plan",
    "requests",
    "reused_pilot",
    "score",
    "training_group",
]
