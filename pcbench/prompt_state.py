"""What the peer strategies remember about each training prompt between its visits (state).

    GresoTraces       GRESO: each prompt's trace of group mean rewards (GRESO's 1 / 0.1 / 0),
                      one entry per rollout;
                      p_easy and p_hard; the counts of the step in flight that move them
    MoppsPosteriors   MoPPS: each prompt's Beta(alpha, beta) over its success rate (also
                      Pilot-Commit's history gate, `pilot.gate = "history"`: algos.gate)
    KnapsackRewards   Knapsack-RL: each prompt's recent rewards and how many it has seen

The rules that read and move them are the pure functions of pcbench.algos.{greso,mopps,
knapsack}; these objects only keep their inputs. `State.prompt_state` holds the run's one, made
by its strategy (`Strategy.new_prompt_state`; None for GRPO, DAPO and Pilot-Commit without the
gate): saved in each checkpoint and restored on resume as plain
JSON values (floats round-trip exactly, so the resume is exact), and snapshotted by
`atomic.all_or_nothing`, so a step that is undone leaves it as it was. Prompts are keyed by
prompt_id; one never rolled out has no entry (the rules' "unseen").
"""

from __future__ import annotations

import numpy as np

from pcbench.algos import greso, knapsack, mopps


class GresoTraces:
    def __init__(self, p_easy: float = 0.5, p_hard: float = 0.5):
        self.p_easy, self.p_hard = p_easy, p_hard
        self.traces: dict[str, list[float]] = {}
        self.counts = {"groups": 0, "easy": 0, "hard": 0}  # the step in flight's groups so far

    def skip_probability(self, prompt_id: str) -> float:
        return greso.skip_probability(self.traces.get(prompt_id, ()), self.p_easy, self.p_hard)

    def streak(self, prompt_id: str) -> str:
        """easy or hard: which streak a prompt with a skip probability is on."""
        return "easy" if self.traces[prompt_id][-1] >= greso.EASY_AT else "hard"

    def record(self, prompt_ids, rewards) -> None:
        """Groups rolled out with these GRESO rewards, one list a group (also groups that are
        filtered out later)."""
        for prompt_id, group in zip(prompt_ids, rewards, strict=True):
            self.traces.setdefault(prompt_id, []).append(float(np.mean(group)))
        for key, count in greso.group_counts(rewards).items():
            self.counts[key] += count

    def end_step(self, target_zero_variance: float, adapting: bool) -> None:
        """The step's batch is closed: move p_easy and p_hard by its shares of all-correct and
        all-wrong groups (when `adapting`: from the second epoch on), then count anew."""
        groups = self.counts["groups"]
        if adapting and groups:
            easy, hard = greso.targets(target_zero_variance)
            self.p_easy = greso.adapt(self.p_easy, self.counts["easy"] / groups, easy)
            self.p_hard = greso.adapt(self.p_hard, self.counts["hard"] / groups, hard)
        self.counts = dict.fromkeys(self.counts, 0)

    def state_dict(self) -> dict:
        return {
            "p_easy": self.p_easy,
            "p_hard": self.p_hard,
            "traces": {k: list(v) for k, v in self.traces.items()},
            "counts": dict(self.counts),
        }

    def load_state_dict(self, state: dict) -> None:
        self.p_easy, self.p_hard = state["p_easy"], state["p_hard"]
        self.traces = {k: list(v) for k, v in state["traces"].items()}
        self.counts = dict(state["counts"])

    def __repr__(self):
        return (
            f"GresoTraces({len(self.traces)} prompts, p_easy={self.p_easy:.2f}, "
            f"p_hard={self.p_hard:.2f})"
        )


class MoppsPosteriors:
    def __init__(self, prior: tuple[float, float] = mopps.PRIOR):
        self.prior = (float(prior[0]), float(prior[1]))
        self.alpha: dict[str, float] = {}
        self.beta: dict[str, float] = {}

    def get(self, prompt_ids) -> tuple[np.ndarray, np.ndarray]:
        """(alpha, beta) of each prompt; the prior for one never rolled out."""
        ids = list(prompt_ids)
        return (
            np.array([self.alpha.get(p, self.prior[0]) for p in ids]),
            np.array([self.beta.get(p, self.prior[1]) for p in ids]),
        )

    def seen(self, prompt_ids) -> np.ndarray:
        """Whether each prompt has been rolled out (has a posterior of its own)."""
        return np.array([p in self.alpha for p in prompt_ids], bool)

    def observe(self, prompt_ids, successes, n, decay: float) -> None:
        """Each prompt's posterior after `successes` of `n` rollouts (`mopps.update_posterior`)."""
        ids = list(prompt_ids)
        alpha, beta = mopps.update_posterior(*self.get(ids), successes, n, decay, self.prior)
        for prompt_id, a, b in zip(ids, alpha, beta, strict=True):
            self.alpha[prompt_id], self.beta[prompt_id] = float(a), float(b)

    def state_dict(self) -> dict:
        return {"prior": list(self.prior), "alpha": dict(self.alpha), "beta": dict(self.beta)}

    def load_state_dict(self, state: dict) -> None:
        self.prior = tuple(state["prior"])
        self.alpha, self.beta = dict(state["alpha"]), dict(state["beta"])

    def __repr__(self):
        return f"MoppsPosteriors({len(self.alpha)} prompts, prior={self.prior})"


class KnapsackRewards:
    def __init__(self, window: int = knapsack.WINDOW, known_after: int = knapsack.KNOWN_AFTER):
        self.window, self.known_after = window, known_after
        self.visits: dict[str, list[list[float]]] = {}  # only what an estimate can still read
        self.seen: dict[str, int] = {}  # rewards ever seen

    def estimates(self, prompt_ids) -> list[float | None]:
        """p of each prompt (None: not known yet)."""
        return [
            knapsack.estimate(self.visits.get(p, []), self.seen.get(p, 0), self.window,
                              self.known_after)
            for p in prompt_ids
        ]  # fmt: skip

    def observe(self, prompt_ids, rewards) -> None:
        """One visit of each prompt: its group's rewards (0/1)."""
        for prompt_id, visit in zip(prompt_ids, rewards, strict=True):
            visits = [*self.visits.get(prompt_id, []), [float(r) for r in visit]]
            self.visits[prompt_id] = knapsack.recent(visits, self.window)
            self.seen[prompt_id] = self.seen.get(prompt_id, 0) + len(visit)

    def state_dict(self) -> dict:
        return {
            "window": self.window,
            "known_after": self.known_after,
            "visits": {k: [list(v) for v in vs] for k, vs in self.visits.items()},
            "seen": dict(self.seen),
        }

    def load_state_dict(self, state: dict) -> None:
        self.window, self.known_after = state["window"], state["known_after"]
        self.visits = {k: [list(v) for v in vs] for k, vs in state["visits"].items()}
        self.seen = dict(state["seen"])

    def __repr__(self):
        return (
            f"KnapsackRewards({len(self.seen)} prompts, window={self.window}, "
            f"known_after={self.known_after})"
        )


PromptState = GresoTraces | MoppsPosteriors | KnapsackRewards
