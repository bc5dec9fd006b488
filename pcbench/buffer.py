"""PilotBuffer: prompts that survived their pilot, waiting to be committed.

Each entry keeps the prompt's pilot rollouts (reused in its training group), the step it was
added and its pilot stats. `take` removes entries in the commit order of `pcbench.algos`;
`drop_stale` runs after the take of a completed step (official order) and removes entries with
step - added_step > max_staleness, so pilot data up to max_staleness + 1 updates old is used.
Evictions are marked during the epoch and applied by `end_epoch`, which also empties the buffer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from pcbench.algos import commit_order
from pcbench.schema import ROLLOUTS


@dataclass(frozen=True)
class BufferEntry:
    prompt_id: str
    added_step: int
    mean: float  # pilot mean correctness
    std: float  # pilot population std, the max_std order key
    seq: int  # insertion counter: the final tie-break and the "all of it" order
    rollouts: pl.DataFrame  # its pilot ROLLOUTS

    def age(self, step: int) -> int:
        return step - self.added_step


class PilotBuffer:
    def __init__(self, max_staleness: int = 4, seed: int = 0):
        self.max_staleness = max_staleness
        self.rng = np.random.default_rng(seed)
        self.entries: list[BufferEntry] = []  # insertion order
        self.evicted: set[str] = set()  # applied: never offered again
        self.pending_evictions: set[str] = set()  # marked this epoch
        self._seq = 0

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, prompt_id: str) -> bool:
        return any(e.prompt_id == prompt_id for e in self.entries)

    def add(self, scores: pl.DataFrame, rollouts: pl.DataFrame, step: int) -> list[str]:
        """Buffer the kept prompts of SCORES with their pilot rollouts; mark the evicted ones."""
        self.pending_evictions.update(scores.filter(pl.col("evict"))["prompt_id"])
        kept = scores.filter(pl.col("verdict") == "keep")
        by_prompt = rollouts.partition_by("prompt_id", as_dict=True, maintain_order=True)
        for row in kept.iter_rows(named=True):
            pid = row["prompt_id"]
            if pid in self:
                raise ValueError(f"prompt {pid!r} is already in the buffer")
            self.entries.append(
                BufferEntry(pid, step, row["mean"], row["std"], self._seq, by_prompt[(pid,)])
            )
            self._seq += 1
        return kept["prompt_id"].to_list()

    def take(self, k: int, order: str = "max_std") -> list[BufferEntry]:
        """Remove and return up to k entries in commit order (all of them when len <= k)."""
        if k <= 0 or not self.entries:
            return []
        std = np.array([e.std for e in self.entries])
        added = np.array([e.added_step for e in self.entries])
        picked = commit_order(std, added, k, order, self.rng)
        taken = [self.entries[i] for i in picked]
        gone = set(int(i) for i in picked)
        self.entries = [e for i, e in enumerate(self.entries) if i not in gone]
        return taken

    def drop_stale(self, step: int) -> list[str]:
        """Remove entries older than max_staleness at `step`; returns their prompt ids."""
        stale = [e.prompt_id for e in self.entries if e.age(step) > self.max_staleness]
        self.entries = [e for e in self.entries if e.age(step) <= self.max_staleness]
        return stale

    def clear(self) -> int:
        n, self.entries = len(self.entries), []
        return n

    def end_epoch(self) -> list[str]:
        """Empty the buffer and apply this epoch's evictions; returns the newly evicted ids."""
        self.clear()
        new = sorted(self.pending_evictions - self.evicted)
        self.evicted |= self.pending_evictions
        self.pending_evictions = set()
        return new

    # ---- the state protocol (state_dict / load_state_dict, as torch): plain values and one
    # frame of every entry's pilot rollouts (`pcbench.run` writes it as JSON + parquet)
    def state_dict(self) -> dict:
        rows = [e.rollouts for e in self.entries]
        return {
            "max_staleness": self.max_staleness,
            "entries": [
                {k: getattr(e, k) for k in ("prompt_id", "added_step", "mean", "std", "seq")}
                for e in self.entries
            ],
            "evicted": sorted(self.evicted),
            "pending_evictions": sorted(self.pending_evictions),
            "seq": self._seq,
            "rng": self.rng.bit_generator.state,
            "rollouts": pl.concat(rows) if rows else ROLLOUTS.empty(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.max_staleness = state["max_staleness"]
        self.rng.bit_generator.state = state["rng"]
        self.evicted, self.pending_evictions = (
            set(state["evicted"]),
            set(state["pending_evictions"]),
        )
        self._seq, rollouts = state["seq"], state["rollouts"]
        self.entries = [
            BufferEntry(**m, rollouts=rollouts.filter(pl.col("prompt_id") == m["prompt_id"]))
            for m in state["entries"]
        ]

    def stats(self, step: int) -> dict[str, float]:
        ages = [e.age(step) for e in self.entries]
        return {
            "size": len(ages),
            "age_max": max(ages, default=0),
            "evicted": len(self.evicted),
        }

    def __repr__(self):
        return (
            f"PilotBuffer({len(self)} entries, max_staleness={self.max_staleness}, "
            f"evicted={len(self.evicted)}, pending_evictions={len(self.pending_evictions)})"
        )

    def _repr_html_(self):
        rows = "".join(
            f"<tr><td>{e.prompt_id}</td><td>{e.added_step}</td><td>{e.mean:.3f}</td>"
            f"<td>{e.std:.3f}</td><td>{e.rollouts.height}</td></tr>"
            for e in self.entries[:20]
        )
        more = f"<p>... {len(self) - 20} more</p>" if len(self) > 20 else ""
        return (
            f"<b>{self!r}</b><table><tr><th>prompt</th><th>added</th><th>mean</th><th>std</th>"
            f"<th>pilot rollouts</th></tr>{rows}</table>{more}"
        )
