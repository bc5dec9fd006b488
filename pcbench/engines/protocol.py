"""Engine: what the loop, the rounds and the widgets need from a rollout engine.

`VLLMEngine` (the real path, CPU or CUDA) and `HFEngine` (transformers `generate`, for
architectures vLLM lacks) both satisfy it; a new backend (e.g. one served by Ray actors) only
has to. Structural typing: nothing inherits from it.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import polars as pl

from pcbench.config import SamplingConfig


@runtime_checkable
class Engine(Protocol):
    max_model_len: int
    sync_check_every: int  # check the synced weights on the first sync, then every n-th
    sync_tolerance: float  # largest allowed log-prob difference of that check
    policy_version: int  # the policy version whose weights the engine holds
    # Completions (and their tokens) returned so far: a step interrupted after generating
    # still counts what it paid for (pcbench.atomic).
    rollouts_generated: int
    tokens_generated: int
    rollouts_lost: int  # died with a replica before returning (0 for an engine in one process)

    def validate(self, requests: pl.DataFrame) -> list[list[int]]:
        """Token ids of each request's prompt; RequestError for prompts that cannot run."""
        ...

    def generate(
        self, requests: pl.DataFrame, sampling: SamplingConfig, *, step: int = 0, round: int = 0,
        seed: int | None = None,
    ) -> pl.DataFrame:  # fmt: skip
        """ROLLOUTS without rewards: `n` completions per request row, in one call; `seed`
        fixes the call's samples."""
        ...

    def load_weights(self, policy, check: bool | None = None) -> float:
        """Sync the policy's weights in; returns the check's difference (0 when unchecked)."""
        ...

    def sleep(self) -> None:
        """Free generation memory through an update (a no-op where not supported)."""
        ...

    def abort_unfinished(self) -> int:
        """Drop requests a failed or interrupted call left behind; returns how many."""
        ...

    def wake(self) -> None: ...
