"""PromptStream: the training prompts as seeded epochs of fixed-size pools.

Each epoch shuffles the prompts that are not evicted (order fixed by (seed, epoch), so a resumed
run replays it) and hands them out G at a time; a final pool smaller than G is dropped, as the
official data loader does (drop_last). `next_pool` returns None when the epoch is exhausted.
"""

from __future__ import annotations

import numpy as np
import polars as pl


class PromptStream:
    def __init__(self, prompts: pl.DataFrame, seed: int = 0):
        if prompts["prompt_id"].n_unique() != prompts.height:
            raise ValueError("training prompts have duplicate prompt_ids")
        self.prompts, self.seed = prompts, seed
        self.epoch, self.position = -1, 0
        self.order: list[str] = []

    def start_epoch(self, evicted: set[str] | frozenset[str] = frozenset()) -> int:
        """Shuffle the non-evicted prompts for the next epoch; returns how many there are."""
        self.epoch += 1
        ids = [p for p in self.prompts["prompt_id"] if p not in evicted]
        rng = np.random.default_rng([self.seed, self.epoch])
        self.order = [ids[i] for i in rng.permutation(len(ids))]
        self.position = 0
        return len(self.order)

    def next_pool(self, size: int) -> pl.DataFrame | None:
        """The next `size` prompts of this epoch (PROMPTS rows), or None when fewer remain."""
        if self.epoch < 0:
            self.start_epoch()
        if self.position + size > len(self.order):
            return None
        ids = self.order[self.position : self.position + size]
        self.position += size
        pool = pl.DataFrame({"prompt_id": ids})
        return pool.join(self.prompts, on="prompt_id", how="left", maintain_order="left")

    # ---- the state protocol (state_dict / load_state_dict, as torch): a resumed run continues
    # the same epoch order at the same position
    def state_dict(self) -> dict:
        return {
            "seed": self.seed,
            "epoch": self.epoch,
            "position": self.position,
            "order": self.order,
        }

    def load_state_dict(self, state: dict) -> None:
        self.seed, self.epoch, self.position = state["seed"], state["epoch"], state["position"]
        self.order = list(state["order"])

    def __repr__(self):
        return (
            f"PromptStream({self.prompts.height} prompts, epoch {self.epoch}, "
            f"{self.position}/{len(self.order)} used)"
        )
