"""The verifier: rewards for model output, judged by math-verify in killable worker processes.

    verifier.py   Verifier: fast paths, LRU cache of verdicts, per-batch health, error and
                  timeout alarms; VerifyHealth, VerifierError, VerifierTimeoutWarning
    workers.py    the forkserver worker pool (math-verify preloaded), per-item timeout and
                  memory limit, `judge` (one completion against one gold answer)

A run builds its Verifier from the config's `[verify]` table (`config.VerifyConfig`):
`Verifier.from_config(cfg.verify)`.
"""

from pcbench.verify.verifier import (
    Judgement,
    Verifier,
    VerifierError,
    VerifierTimeoutWarning,
    VerifyHealth,
)
from pcbench.verify.workers import judge

__all__ = [
    "Judgement",
    "VerifierError",
    "VerifierTimeoutWarning",
    "VerifyHealth",
    "Verifier",
    "judge",
]
