"""The verifier's worker processes: math-verify behind a pipe, killable from the parent.

Workers start from a forkserver that has already imported math-verify, so replacing a killed
worker costs milliseconds, not the seconds of a fresh interpreter importing sympy.
"""

from __future__ import annotations

import multiprocessing as mp
import multiprocessing.forkserver
import multiprocessing.resource_tracker
import sys
import time
from collections import deque
from contextlib import contextmanager
from multiprocessing.connection import wait

_CONTEXT = mp.get_context("forkserver")
_CONTEXT.set_forkserver_preload(["pcbench.verify.workers", "math_verify"])
_open_pools = 0  # the forkserver is stopped when the last pool closes: no process left behind


def judge(answer: str, gold: str, extraction: str = "boxed") -> tuple[str, str | None, bool]:
    """(status, extracted, correct) for one answer; runs math-verify in this process.

    `answer` is the content of the final \\boxed{} (extraction="boxed") or the whole completion
    (extraction="latex", where math-verify's LaTeX extraction finds the answer).
    """
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify
    from math_verify.errors import TimeoutException

    try:
        target = parse(
            f"${gold}$", [LatexExtractionConfig(), ExprExtractionConfig()], raise_on_error=True
        )  # gold answers are trusted data
        if not target:
            return "error", None, False
        # LaTeX extraction only for model output: expression extraction would eval() it.
        text = f"\\boxed{{{answer}}}" if extraction == "boxed" else answer
        predicted = parse(text, [LatexExtractionConfig()], raise_on_error=True)
        if not predicted:
            return ("ok", answer, False) if extraction == "boxed" else ("no_answer", None, False)
        extracted = answer if extraction == "boxed" else str(predicted[-1])
        return "ok", extracted, bool(verify(target, predicted, raise_on_error=True))
    except TimeoutException:  # math-verify's own alarm (a BaseException): a timeout, not a crash
        return "timeout", None, False
    except Exception:  # noqa: BLE001 — any failure inside math-verify is an `error` status
        return "error", None, False


def _limit_memory(limit_bytes: int) -> None:
    import resource

    if limit_bytes > 0:
        resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))


def _worker_loop(conn, memory_limit: int) -> None:
    _limit_memory(memory_limit)
    while True:
        try:
            chunk = conn.recv()
        except (EOFError, OSError):
            return
        if chunk is None:
            return
        for key, answer, gold, extraction in chunk:
            try:
                result = judge(answer, gold, extraction)
            except MemoryError:
                result = ("error", None, False)
            conn.send((key, *result))


@contextmanager
def _main_module_hidden():
    """Start workers without re-running the caller's main script in them.

    multiprocessing re-imports `__main__` in a new process (to find pickled functions); the
    workers need nothing from it, and re-running a user's unguarded script, or a script read
    from stdin that does not exist as a file, would break them.
    """
    main = sys.modules["__main__"]
    saved = {k: main.__dict__[k] for k in ("__file__", "__spec__") if k in main.__dict__}
    main.__dict__.pop("__file__", None)
    main.__spec__ = None
    try:
        yield
    finally:
        main.__dict__.update(saved)
        if "__spec__" not in saved:
            del main.__spec__


def spawn_worker(memory_limit: int):
    parent, child = _CONTEXT.Pipe()
    process = _CONTEXT.Process(target=_worker_loop, args=(child, memory_limit), daemon=True)
    with _main_module_hidden():
        process.start()
    child.close()
    return process, parent


class WorkerPool:
    """N workers; `run` judges jobs with a per-item timeout, replacing workers that overrun."""

    def __init__(self, size: int, timeout_s: float, memory_limit: int):
        self.size, self.timeout_s, self.memory_limit = size, timeout_s, memory_limit
        global _open_pools
        _open_pools += 1
        self.workers = [spawn_worker(memory_limit) for _ in range(size)]
        self.replaced = 0

    def run(self, jobs: list[tuple]) -> dict:
        """jobs: (key, answer, gold, extraction) -> {key: (status, extracted, correct)}.

        A worker that dies mid-chunk (killed from outside, crashed) is replaced and its item
        judged again once on the new worker: a death says nothing about the answer. An item
        that kills a second worker is an `error`. An exception here (a kernel interrupt)
        replaces the busy workers, whose late results would otherwise reach the next call.
        """
        queue, results = deque(jobs), {}
        busy: dict[int, list] = {}  # worker slot -> [chunk, position, started]
        self.retried: set = set()  # keys judged again after their worker died
        chunk_size = max(1, min(32, len(jobs) // (4 * self.size)))
        try:
            while queue or busy:
                for slot in range(self.size):
                    if slot not in busy and queue:
                        chunk = [queue.popleft() for _ in range(min(chunk_size, len(queue)))]
                        self._send(slot, chunk, busy, queue)
                if not busy:
                    continue
                deadline = min(started for _, _, started in busy.values()) + self.timeout_s
                conns = [self.workers[s][1] for s in busy]
                ready = wait(conns, max(0.0, deadline - time.monotonic()))
                for slot in list(busy):
                    if self.workers[slot][1] in ready:
                        self._receive(slot, busy, results, queue)
                now = time.monotonic()
                for slot in [s for s, (_, _, t) in busy.items() if now - t > self.timeout_s]:
                    self._replace(slot, busy, results, queue, "timeout")
        except BaseException:
            for slot in list(busy):
                self._respawn(slot)
            raise
        return results

    def _send(self, slot, chunk, busy, queue) -> None:
        try:
            self.workers[slot][1].send(chunk)
        except (BrokenPipeError, OSError):  # died while idle: a new worker takes the chunk
            self._respawn(slot)
            self.workers[slot][1].send(chunk)
        busy[slot] = [chunk, 0, time.monotonic()]

    def _receive(self, slot, busy, results, queue) -> None:
        conn = self.workers[slot][1]
        try:
            key, *result = conn.recv()
        except (EOFError, OSError):  # the worker died (killed, crashed, OOM)
            self._replace(slot, busy, results, queue, "died")
            return
        results[key] = tuple(result)
        entry = busy[slot]
        entry[1] += 1
        entry[2] = time.monotonic()
        if entry[1] == len(entry[0]):
            del busy[slot]

    def _replace(self, slot, busy, results, queue, why: str) -> None:
        """The worker in `slot` overran (`timeout`) or `died`: a new one takes its place and the
        rest of its chunk; the item it held is a timeout, is judged again (the first death),
        or is an error (a second death: the item itself kills workers)."""
        chunk, position, _ = busy.pop(slot)
        item, rest = chunk[position], chunk[position + 1 :]
        if why == "died" and item[0] not in self.retried:
            self.retried.add(item[0])
            rest = [item, *rest]
        else:
            results[item[0]] = ("timeout" if why == "timeout" else "error", None, False)
        queue.extendleft(reversed(rest))
        self._respawn(slot)

    def _respawn(self, slot) -> None:
        process, conn = self.workers[slot]
        process.kill()
        process.join(timeout=5)
        conn.close()
        self.workers[slot] = spawn_worker(self.memory_limit)
        self.replaced += 1

    def close(self) -> None:
        for _, conn in self.workers:
            try:
                conn.send(None)
            except (OSError, BrokenPipeError):
                pass
        for process, conn in self.workers:
            process.join(timeout=2)
            if process.is_alive():
                process.kill()
                process.join(timeout=2)
            conn.close()
        self.workers = []
        _release_forkserver()


def _release_forkserver() -> None:
    """When the last pool closes, stop the forkserver and the resource tracker it started.

    Both are multiprocessing's private helpers (`_stop`, guarded); the next pool restarts them.
    """
    global _open_pools
    _open_pools -= 1
    if _open_pools > 0:
        return
    for helper in (mp.forkserver._forkserver, mp.resource_tracker._resource_tracker):
        if hasattr(helper, "_stop"):
            helper._stop()
