"""Rewards: judge each completion's final answer against its gold answer with math-verify.

Model output is untrusted input. math-verify's own timeouts use SIGALRM (main thread only) and
some inputs hang it or eat memory, and a wrapper that swallows those failures returns reward 0
for everything -- which Pilot-Commit would read as "every prompt is too hard". So:

- judging runs in worker processes (forkserver, math-verify preloaded); a worker that overruns
  the per-item timeout is killed and replaced, its item gets `timeout`, the batch goes on; a
  worker that dies (killed from outside, crashed) is replaced and its item judged again once,
  and each replacement is counted (`verifier/worker_restarts`);
- every rollout gets a verify_status (ok / no_answer / timeout / error), and a batch whose
  error+timeout rate exceeds `max_error_rate` raises VerifierError (carrying the results); a
  timeout rate above `warn_timeout_rate` warns and is counted (`verifier/timeout_alarm`);
- predictions are parsed with math-verify's LaTeX extraction only: its expression extraction
  goes through sympy's parse_expr, which evaluates Python, and model output must never be run;
- plain integers on both sides are compared in-process (the embedded task's common case), and
  repeated (answer, gold) pairs come from a bounded LRU cache; only verdicts are cached, never
  a timeout or an error (they say how loaded the machine was, not what the answer is).
"""

from __future__ import annotations

import re
import threading
import time
import warnings
import weakref
from collections import OrderedDict
from dataclasses import asdict, dataclass

import polars as pl

from pcbench.config import EXTRACTIONS  # one list: the config validates it too
from pcbench.tasks.boxed import last_boxed
from pcbench.verify.workers import WorkerPool

INTEGER = re.compile(r"[+-]?\d{1,60}")


@dataclass(frozen=True)
class Judgement:
    status: str  # ok / no_answer / timeout / error
    extracted: str | None  # the final answer the completion gave
    correct: bool


@dataclass(frozen=True)
class VerifyHealth:
    """What one verify() call saw; `metrics()` feeds the ledger."""

    items: int
    ok: int
    no_answer: int
    timeout: int
    error: int
    cache_hits: int
    fast_path: int  # integer answers compared without math-verify
    seconds: float
    timeout_alarm: int = 0  # 1 when the timeout rate passed the verifier's warn_timeout_rate
    worker_restarts: int = 0  # workers replaced (overran, died); a died worker's item is redone

    @property
    def error_rate(self) -> float:
        return (self.timeout + self.error) / self.items if self.items else 0.0

    @property
    def timeout_rate(self) -> float:
        return self.timeout / self.items if self.items else 0.0

    @property
    def cache_hit_rate(self) -> float:
        return self.cache_hits / self.items if self.items else 0.0

    def metrics(self) -> dict[str, float]:
        out = {f"verifier/{k}": float(v) for k, v in asdict(self).items()}
        out["verifier/error_rate"] = self.error_rate
        out["verifier/timeout_rate"] = self.timeout_rate
        out["verifier/cache_hit_rate"] = self.cache_hit_rate
        return out


class VerifierTimeoutWarning(RuntimeWarning):
    """More timeouts in a batch than warn_timeout_rate: rewards may be depressed by load."""


class VerifierError(RuntimeError):
    """Too many timeouts/errors in a batch: the verifier, not the policy, is broken."""

    def __init__(self, message: str, health: VerifyHealth, results: pl.DataFrame):
        super().__init__(message)
        self.health, self.results = health, results


FORMATTING = re.compile(r"\\(?:textbf|mathbf|text|mathrm)\{([^{}]*)\}")
PARENTHESISED_NUMBER = re.compile(r"\(\s*([+-]?\d+(?:\.\d+)?)\s*\)")


def normalise(text: str) -> str:
    """Whitespace collapsed, $ and trailing punctuation dropped, \textbf{(073)} -> 073."""
    text = " ".join(text.strip().strip("$").split())
    for _ in range(3):  # nested wrappers such as \text{\textbf{7}}; bounded, never loops
        text = FORMATTING.sub(r"\1", text)
    text = text.strip().rstrip(".,;").strip()
    number = PARENTHESISED_NUMBER.fullmatch(text)
    return number.group(1) if number else text


class _LRU:
    def __init__(self, size: int):
        self.size, self.data, self.hits, self.misses = size, OrderedDict(), 0, 0

    def get(self, key):
        if key in self.data:
            self.hits += 1
            self.data.move_to_end(key)
            return self.data[key]
        self.misses += 1
        return None

    def put(self, key, value) -> None:
        self.data[key] = value
        self.data.move_to_end(key)
        if len(self.data) > self.size:
            self.data.popitem(last=False)


class Verifier:
    """Rewards for (completion, gold answer) pairs, judged in killable worker processes."""

    def __init__(
        self,
        timeout_s: float = 5.0,
        workers: int = 2,
        reward_correct: float = 1.0,
        reward_wrong: float = 0.0,
        extraction: str = "boxed",
        cache_size: int = 100_000,
        max_error_rate: float = 0.5,
        warn_timeout_rate: float = 0.02,
        min_items_for_check: int = 10,
        max_answer_chars: int = 2_000,
        memory_limit_gb: float = 4.0,
        pool=None,
    ):
        """`pool`: where items are judged (default: a WorkerPool of `workers` processes here;
        `pcbench.cluster.verifier.RayWorkerPool` spreads them over Ray actors)."""
        if extraction not in EXTRACTIONS:
            raise ValueError(f"extraction = {extraction!r}: use one of {EXTRACTIONS}")
        if timeout_s <= 0 or workers < 1 or cache_size < 0:
            raise ValueError("timeout_s must be > 0, workers >= 1 and cache_size >= 0")
        if not 0 < max_error_rate <= 1:
            raise ValueError(f"max_error_rate = {max_error_rate}: must be in (0, 1]")
        self.timeout_s, self.extraction = timeout_s, extraction
        self.reward_correct, self.reward_wrong = reward_correct, reward_wrong
        if not 0 <= warn_timeout_rate <= 1:
            raise ValueError(f"warn_timeout_rate = {warn_timeout_rate}: must be in [0, 1]")
        self.max_error_rate, self.min_items_for_check = max_error_rate, min_items_for_check
        self.warn_timeout_rate = warn_timeout_rate
        self.max_answer_chars = max_answer_chars
        self.cache = _LRU(cache_size)
        self.last_health: VerifyHealth | None = None
        self._lock = threading.Lock()  # one batch at a time; callable from any thread
        self._pool = pool or WorkerPool(workers, timeout_s, int(memory_limit_gb * 2**30))
        self._finalizer = weakref.finalize(self, self._pool.close)

    @classmethod
    def from_config(cls, vc, *, pool=None) -> Verifier:
        """A Verifier with a run config's `[verify]` settings (`config.VerifyConfig`), judging in
        worker processes of its own, or in the `pool` it is handed (the run's setup hands it
        `pcbench.cluster.verifier.RayWorkerPool` for `[cluster] verifier_actors`: the verifier
        knows no cluster)."""
        return cls(**asdict(vc), pool=pool)

    def verify(self, completions: list[str], answers: list[str]) -> pl.DataFrame:
        """One row per completion: reward, correct, verify_status, extracted."""
        if len(completions) != len(answers):
            raise ValueError(f"{len(completions)} completions but {len(answers)} answers")
        with self._lock:
            if not self._finalizer.alive:
                raise RuntimeError("this Verifier is closed; create a new one")
            start = time.perf_counter()
            judged, todo, hits, fast = self._prejudge(completions, answers)
            jobs = [(key, key[0], key[1], self.extraction) for key in todo]
            replaced = self._pool.replaced
            for key, (status, extracted, correct) in self._pool.run(jobs).items():
                # A crash or a timeout says how busy the machine was, not what the answer is:
                # only verdicts are cached, so a retry of the same pair is judged afresh.
                if status not in ("error", "timeout"):
                    self.cache.put(key, (status, extracted, correct))
                for i in todo[key]:
                    # In boxed mode the completion's own box content is the extracted answer.
                    shown = judged[i].extracted if self.extraction == "boxed" else extracted
                    judged[i] = Judgement(status, shown, correct)
            frame = self._frame(judged)
            counts = frame["verify_status"].value_counts()
            count = dict(zip(counts["verify_status"], counts["count"], strict=True))
            timeouts = count.get("timeout", 0)
            self.last_health = VerifyHealth(
                items=len(judged),
                ok=count.get("ok", 0),
                no_answer=count.get("no_answer", 0),
                timeout=timeouts,
                error=count.get("error", 0),
                cache_hits=hits,
                fast_path=fast,
                seconds=time.perf_counter() - start,
                worker_restarts=self._pool.replaced - replaced,
                timeout_alarm=int(
                    len(judged) >= self.min_items_for_check
                    and timeouts > self.warn_timeout_rate * len(judged)
                ),
            )
        self._check(frame)
        return frame

    def _prejudge(self, completions, answers):
        """Decide in-process what needs no worker; return the rest grouped by cache key."""
        judged: list[Judgement] = []
        todo: dict[tuple[str, str], list[int]] = {}
        hits = fast = 0
        for i, (completion, gold) in enumerate(zip(completions, answers, strict=True)):
            if not isinstance(completion, str) or not isinstance(gold, str) or not gold.strip():
                judged.append(Judgement("error", None, False))
                continue
            # Lone surrogates cannot be stored (polars, parquet) and NULs confuse parsers.
            completion = completion.encode("utf-8", "replace").decode().replace("\x00", "")
            answer = (
                last_boxed(completion)
                if self.extraction == "boxed"
                else completion[-self.max_answer_chars :]
            )
            if answer is None or not answer.strip():
                judged.append(Judgement("no_answer", answer, False))
                continue
            if len(answer) > self.max_answer_chars:
                judged.append(Judgement("ok", answer[: self.max_answer_chars], False))
                continue
            key = (normalise(answer), normalise(gold))
            if INTEGER.fullmatch(key[0]) and INTEGER.fullmatch(key[1]):
                fast += 1
                judged.append(Judgement("ok", answer, int(key[0]) == int(key[1])))
            elif (cached := self.cache.get(key)) is not None:
                hits += 1
                judged.append(
                    Judgement(
                        cached[0], answer if self.extraction == "boxed" else cached[1], cached[2]
                    )
                )
            else:
                judged.append(
                    Judgement("error", answer if self.extraction == "boxed" else None, False)
                )
                todo.setdefault(key, []).append(i)
        return judged, todo, hits, fast

    def _frame(self, judged: list[Judgement]) -> pl.DataFrame:
        return pl.DataFrame(
            {
                "reward": [self.reward_correct if j.correct else self.reward_wrong for j in judged],
                "correct": [j.correct for j in judged],
                "verify_status": [j.status for j in judged],
                "extracted": [j.extracted for j in judged],
            },
            schema={
                "reward": pl.Float64,
                "correct": pl.Boolean,
                "verify_status": pl.String,
                "extracted": pl.String,
            },
        )

    def _check(self, frame: pl.DataFrame) -> None:
        h = self.last_health
        if h.timeout_alarm:  # rewards still usable, but a busy machine or a slow input class
            warnings.warn(
                f"verifier: {h.timeout} of {h.items} completions timed out ({h.timeout_rate:.1%} "
                f"> warn_timeout_rate {self.warn_timeout_rate:.1%}); they count as wrong this "
                "time and are judged again if seen again. Raise timeout_s or add workers.",
                VerifierTimeoutWarning,
                stacklevel=3,
            )
        if h.items >= self.min_items_for_check and h.error_rate > self.max_error_rate:
            raise VerifierError(
                f"verifier failed on {h.timeout + h.error} of {h.items} completions "
                f"({h.timeout} timeouts, {h.error} errors; limit {self.max_error_rate:.0%}). "
                "Rewards from a broken verifier would look like 'every prompt is too hard'; "
                "check the answers' format, raise timeout_s, or raise max_error_rate.",
                h,
                frame,
            )

    def cache_info(self) -> dict[str, float]:
        total = self.cache.hits + self.cache.misses
        return {
            "size": len(self.cache.data),
            "hits": self.cache.hits,
            "misses": self.cache.misses,
            "hit_rate": self.cache.hits / total if total else 0.0,
        }

    def close(self) -> None:
        """Stop the worker processes (also done when the Verifier is garbage-collected)."""
        self._finalizer()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        state = "open" if self._finalizer.alive else "closed"
        return (
            f"Verifier({state}, workers={self._pool.size}, timeout_s={self.timeout_s}, "
            f"extraction={self.extraction!r}, cache={self.cache_info()['size']})"
        )
