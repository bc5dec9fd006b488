"""The verifier on real benchmark solutions, hostile model output and random LaTeX."""

import json
import math
import os
import signal
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pcbench.schema import VERIFY_STATUS
from pcbench.verify import Verifier, VerifierError, VerifierTimeoutWarning, judge

TIMEOUT_S = 2.0
WORKERS = 2


@pytest.fixture(scope="module")
def verifier():
    with Verifier(timeout_s=TIMEOUT_S, workers=WORKERS, max_error_rate=1.0) as v:
        yield v


def rows(benchmarks, name):
    return [json.loads(line) for line in (benchmarks / f"{name}.jsonl").open()]


def bound_s(n_items: int) -> float:
    """Worst case: every item times out, the workers share them; plus start-up slack."""
    return math.ceil(n_items / WORKERS) * (TIMEOUT_S + 0.5) + 10


def test_math500_reference_solutions_are_judged_correct(verifier, benchmarks):
    data = rows(benchmarks, "math500")
    result = verifier.verify([r["solution"] for r in data], [r["answer"] for r in data])
    assert result["correct"].sum() >= 499
    assert set(result["verify_status"]) <= VERIFY_STATUS
    assert result["reward"].sum() == result["correct"].sum()


def test_aime24_reference_solutions_are_judged_correct(verifier, benchmarks):
    data = rows(benchmarks, "aime24")
    result = verifier.verify([r["solution"] for r in data], [str(r["answer"]) for r in data])
    assert result["correct"].sum() >= 29


def test_negative_control_other_problems_answers_are_wrong(verifier, benchmarks):
    data = rows(benchmarks, "math500")
    shifted = [data[(i + 1) % len(data)]["answer"] for i in range(len(data))]
    result = verifier.verify([r["solution"] for r in data], shifted)
    # A few neighbouring problems share an answer; allow up to 1%.
    same = sum(r["answer"] == s for r, s in zip(data, shifted, strict=True))
    assert (~result["correct"]).mean() >= 0.99
    assert result["correct"].sum() <= max(5, same + 2)


def test_statuses_rewards_and_cache(verifier):
    completions = [
        "so \\boxed{\\frac{1}{2}}",
        "so \\boxed{0.5}",
        "no box here",
        "\\boxed{3}",
        "\\boxed{ 007 }",
    ]
    golds = ["0.5", "\\frac12", "1", "4", "7"]
    result = verifier.verify(completions, golds)
    assert result["correct"].to_list() == [True, True, False, False, True]
    assert result["verify_status"].to_list() == ["ok", "ok", "no_answer", "ok", "ok"]
    assert result["extracted"].to_list() == ["\\frac{1}{2}", "0.5", None, "3", " 007 "]
    assert verifier.last_health.fast_path == 2  # "3" vs "4" and "007" vs "7" are integers
    again = verifier.verify(completions[:2], golds[:2])
    assert again["correct"].to_list() == [True, True]
    assert verifier.last_health.cache_hits == 2 and verifier.last_health.cache_hit_rate == 1.0
    assert verifier.cache_info()["hits"] >= 2


def test_custom_rewards_and_latex_extraction():
    with Verifier(
        timeout_s=TIMEOUT_S, workers=1, reward_correct=2.0, reward_wrong=-1.0, extraction="latex"
    ) as v:
        result = v.verify(
            ["The answer is $\\frac{3}{4}$.", "It is $5$.", "nothing"], ["0.75", "6", "1"]
        )
    assert result["reward"].to_list() == [2.0, -1.0, -1.0]
    assert result["verify_status"].to_list() == ["ok", "ok", "no_answer"]


CANARY = "pcbench_canary_file"


def hostile_corpus(canary: str) -> list[str]:
    touch = f"__import__('os').system('touch {canary}')"
    python_like = [
        f"\\boxed{{{touch}}}",
        f"\\boxed{{open('{canary}', 'w').write('x')}}",
        f"\\boxed{{exec(\"open('{canary}','w')\")}}",
        f'\\boxed{{eval("{touch}")}}',
        f"\\boxed{{lambda: open('{canary}', 'w')}}",
        "\\boxed{().__class__.__base__.__subclasses__()}",
        f"The answer is ${touch}$",
        f"{touch}",
    ]
    return python_like + [
        "\\boxed{9^{9^{9^{9^{9^{9}}}}}}",
        "\\boxed{2^{2^{2^{2^{2^{2^{2^{2^{2}}}}}}}}}",
        "\\boxed{(10^{100})!}",
        "\\boxed{9!!!!!!!!!!!!!!!!!!!!}",
        "\\boxed{10^{10^{10^{10}}} - 10^{10^{10^{10}}}}",
        "\\boxed{\\binom{10^{9}}{10^{8}}}",
        "\\boxed{\\prod_{k=1}^{10^{12}} k}",
        "\\boxed{\\sum_{n=1}^{10^{12}} n^{n}}",
        "\\boxed{1e999999999}",
        "x" * 100_000 + "\\boxed{1}",
        "\\boxed{" + "1" * 100_000 + "}",
        "\\boxed{" + "{" * 10_000 + "1" + "}" * 10_000 + "}",
        "\\boxed{" + "\\frac{1}{" * 300 + "2" + "}" * 300 + "}",
        "\\boxed{" + "\\sqrt{" * 1000 + "2" + "}" * 1000 + "}",
        "\\boxed{" + "\\left(" * 3000 + "}",
        "\\boxed{1",
        "\\boxed{" * 5000,
        "\\boxed{1\x002}\x00\x00",
        "\\boxed{\u0663\u0664}",
        "\\boxed{\u2460\u202e\u200b7\ufeff}",
        "\\boxed{\U0001d7d9\U0001d7da}",
        "\\boxed{\ud800}",
        "\\boxed{" + "\\\\" * 20_000 + "}",
        "\\boxed{\\begin{pmatrix}" + " & ".join(["x^{99}"] * 100) + "\\end{pmatrix}}",
        "\\boxed{1}" * 10_000,
        "\\boxed{}",
        "\\boxed{ }",
        "\\boxed{x^{x^{x^{x^{x}}}} = y}",
        "\\boxed{\\int_0^{\\infty} e^{-x^2} dx}",
    ]


@pytest.mark.filterwarnings("ignore::pcbench.verify.VerifierTimeoutWarning")  # hangs on purpose
def test_hostile_outputs_get_a_status_within_the_bound(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a relative canary path: anything executed would create it here
    corpus = hostile_corpus(CANARY)
    assert len(corpus) >= 30
    with Verifier(timeout_s=TIMEOUT_S, workers=WORKERS, max_error_rate=1.0) as v:
        start = time.monotonic()
        result = v.verify(corpus, ["1"] * len(corpus))
        elapsed = time.monotonic() - start
        assert elapsed <= bound_s(len(corpus))
        assert len(result) == len(corpus)
        assert set(result["verify_status"]) <= VERIFY_STATUS
        # Still healthy afterwards: every worker alive and answering.
        assert all(p.is_alive() for p, _ in v._pool.workers)
        assert v.verify(["\\boxed{\\frac{2}{4}}"], ["1/2"])["correct"].to_list() == [True]
    assert not (tmp_path / CANARY).exists()
    assert not any(p.name == CANARY for p in tmp_path.iterdir())
    # The one well-formed correct answer in the corpus ("\boxed{1}" repeated) is judged so.
    assert result["correct"][corpus.index("\\boxed{1}" * 10_000)]


HANG = "\\boxed{9^{9^{9^{9^{9^{9}}}}}}"  # sympy computes the tower: math-verify's 5 s alarm


def test_a_hanging_item_is_killed_replaced_and_the_rest_of_its_chunk_requeued():
    # One worker and 12 distinct non-integer answers: chunks of 3 (len // (4 * workers)), the
    # hanging item in the middle of the second one, so the item after it must be requeued.
    completions = [f"\\boxed{{\\frac{{{k}}}{{2}}}}" for k in range(1, 13)]
    golds = [str(k / 2) for k in range(1, 13)]
    completions[4], golds[4] = HANG, "3"
    with Verifier(timeout_s=1.0, workers=1, max_error_rate=1.0) as v:
        with pytest.warns(VerifierTimeoutWarning):  # 1 of 12 > warn_timeout_rate 2%
            result = v.verify(completions, golds)
        assert v._pool.replaced == 1  # the kill-and-replace path ran, once
        statuses = result["verify_status"].to_list()
        assert statuses[4] == "timeout" and not result["correct"][4]
        # Every other item was answered (none left at its initial "error"), chunk-mates of the
        # hanging item included, and judged right.
        assert statuses[:4] + statuses[5:] == ["ok"] * 11
        assert result["correct"].to_list() == [True] * 4 + [False] + [True] * 7
        assert v.last_health.timeout == 1 and v.last_health.timeout_rate == 1 / 12


def _halves(n):
    return [f"\\boxed{{\\frac{{{k}}}{{2}}}}" for k in range(1, n + 1)], [
        str(k / 2) for k in range(1, n + 1)
    ]


def test_a_worker_killed_mid_batch_is_replaced_its_item_judged_again_and_counted():
    """Killed from outside (the OOM killer, a stray `kill`), a worker's item is not a silent
    zero: a new worker judges it again, the batch completes, and the health counts the restart."""
    completions, golds = _halves(12)
    completions[4], golds[4] = HANG, "3"  # keeps its worker busy long enough to be killed
    with Verifier(timeout_s=3.0, workers=1, max_error_rate=1.0) as v:
        victim = v._pool.workers[0][0]
        killer = threading.Timer(0.5, lambda: os.kill(victim.pid, signal.SIGKILL))
        killer.start()
        with pytest.warns(VerifierTimeoutWarning):
            result = v.verify(completions, golds)
        killer.join()
        assert not victim.is_alive()
        statuses = result["verify_status"].to_list()
        # The killed worker's item (the hanging one) was judged again on the new worker, where
        # it timed out as it would have: a timeout, not an error from the death.
        assert statuses[4] == "timeout" and statuses.count("ok") == 11
        assert result["correct"].to_list() == [True] * 4 + [False] + [True] * 7
        health = v.last_health
        assert health.error == 0 and health.timeout == 1
        assert health.worker_restarts == 2  # one death, one timeout
        assert health.metrics()["verifier/worker_restarts"] == 2.0


def test_an_item_that_kills_every_worker_is_an_error_after_one_retry(monkeypatch):
    completions, golds = _halves(4)
    with Verifier(timeout_s=TIMEOUT_S, workers=1, max_error_rate=1.0) as v:
        pool, real = v._pool, v._pool._send

        def send_then_kill(slot, chunk, busy, queue):  # the worker dies on this item, twice
            real(slot, chunk, busy, queue)
            if any(job[1] == "\\frac{3}{2}" for job in chunk):
                os.kill(pool.workers[slot][0].pid, signal.SIGKILL)
                pool.workers[slot][0].join()

        monkeypatch.setattr(pool, "_send", send_then_kill)
        result = v.verify(completions, golds)
    assert result["verify_status"].to_list()[2] == "error"
    assert v.last_health.error == 1 and v.last_health.worker_restarts == 2


def test_an_interrupt_mid_batch_leaves_no_late_result_for_the_next_call():
    """A kernel interrupt inside verify(): busy workers are replaced, so the next call gets its
    own results only (a late reply from the interrupted chunk would be read as its own)."""
    completions, golds = _halves(8)
    completions[0], golds[0] = HANG, "3"

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    with Verifier(timeout_s=3.0, workers=1, max_error_rate=1.0) as v:
        previous = signal.signal(signal.SIGALRM, interrupt)
        try:
            signal.setitimer(signal.ITIMER_REAL, 0.5)
            with pytest.raises(KeyboardInterrupt):
                v.verify(completions, golds)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        assert v._pool.replaced == 1
        fresh = [f"\\boxed{{\\frac{{{k}}}{{3}}}}" for k in range(1, 6)]
        result = v.verify(fresh, [str(k / 3) for k in range(1, 6)])
        assert result["correct"].to_list() == [True] * 5
        assert result["verify_status"].to_list() == ["ok"] * 5


def test_a_timeout_is_never_cached_and_a_high_timeout_rate_warns():
    """A timeout says the machine was busy, not that the answer is wrong: judged afresh."""
    with Verifier(timeout_s=1.0, workers=1, max_error_rate=1.0, min_items_for_check=1) as v:
        with pytest.warns(VerifierTimeoutWarning, match="1 of 2 completions timed out"):
            first = v.verify([HANG, "\\boxed{\\frac{1}{2}}"], ["3", "0.5"])
        assert first["verify_status"].to_list() == ["timeout", "ok"]
        assert v.last_health.timeout_alarm == 1
        assert v.last_health.metrics()["verifier/timeout_rate"] == 0.5
        with pytest.warns(VerifierTimeoutWarning):  # not answered from the cache: judged again
            again = v.verify([HANG], ["3"])
        assert again["verify_status"].to_list() == ["timeout"] and v._pool.replaced == 2
        assert v.last_health.cache_hits == 0
        v.verify(["\\boxed{\\frac{1}{2}}"], ["0.5"])  # a verdict is cached
        assert v.last_health.cache_hits == 1 and v.last_health.timeout_alarm == 0


def test_math_verify_own_timeout_is_a_timeout_status_not_a_crash():
    # In-process (no pool deadline): math-verify's alarm raises a BaseException; judge must
    # report it as a timeout instead of killing the worker that called it.
    assert judge("9^{9^{9^{9^{9^{9}}}}}", "3") == ("timeout", None, False)


def test_broken_batch_raises_loudly_with_results_kept():
    with Verifier(timeout_s=TIMEOUT_S, workers=1, max_error_rate=0.5) as v:
        with pytest.raises(VerifierError, match="verifier failed on 12 of 12") as info:
            v.verify([None] * 12, ["1"] * 12)  # type: ignore[list-item]
    assert info.value.health.error == 12 and len(info.value.results) == 12


def test_usable_from_threads_and_close_leaves_no_processes():
    v = Verifier(timeout_s=TIMEOUT_S, workers=WORKERS)
    outputs = {}

    def worker(k):
        outputs[k] = v.verify([f"\\boxed{{\\frac{{{k}}}{{2}}}}"] * 20, [str(k / 2)] * 20)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(outputs[k]["correct"].all() for k in range(4))
    processes = [p for p, _ in v._pool.workers]
    v.close()
    assert not any(p.is_alive() for p in processes)
    with pytest.raises(RuntimeError, match="closed"):
        v.verify(["\\boxed{1}"], ["1"])


CLOSE_SCRIPT = """
import psutil
from pcbench.verify import Verifier
v = Verifier(workers=2, timeout_s=1.0, max_error_rate=1.0)
v.verify(["\\\\boxed{9^{9^{9^{9^{9^{9}}}}}}", "\\\\boxed{\\\\frac{1}{2}}"], ["1", "0.5"])
assert len(psutil.Process().children(recursive=True)) >= 2
v.close()
alive = [c for c in psutil.Process().children(recursive=True)
         if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
print("LEFT", len(alive))
"""


def test_close_leaves_no_process_behind():
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", CLOSE_SCRIPT], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "LEFT 0" in out.stdout


def test_mismatched_lengths_and_bad_settings():
    with pytest.raises(ValueError, match="2 completions but 1 answers"):
        Verifier(workers=1).verify(["a", "b"], ["1"])
    with pytest.raises(ValueError, match="extraction"):
        Verifier(extraction="regex")


LATEXISH = st.lists(
    st.sampled_from(
        list("0123456789+-*/^_{}()[]=.,\\ xy")
        + ["\\frac", "\\sqrt", "\\boxed{", "\\left(", "\\right)", "\\pi", "\\infty", "^{", "!", "$"]
    ),
    max_size=40,
).map("".join)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(LATEXISH, min_size=1, max_size=8), st.sampled_from(["1", "\\frac{1}{2}", "x+1"]))
def test_fuzz_never_raises_and_stays_within_the_bound(verifier, completions, gold):
    start = time.monotonic()
    result = verifier.verify(completions, [gold] * len(completions))
    assert time.monotonic() - start <= bound_s(len(completions))
    assert len(result) == len(completions)
    assert set(result["verify_status"]) <= VERIFY_STATUS


def test_usable_from_a_notebook_kernel(tmp_path):
    """A real Jupyter kernel (papermill): the kernel's __main__ has no script to re-run."""
    import nbformat
    import papermill

    cells = [
        "from pcbench.verify import Verifier\n"
        "v = Verifier(workers=2, timeout_s=2.0)\n"
        "r = v.verify(['\\\\boxed{\\\\frac{1}{2}}', '\\\\boxed{3}', 'none'], ['0.5', '4', '1'])\n"
        "assert r['verify_status'].to_list() == ['ok', 'ok', 'no_answer'], r\n"
        "assert r['correct'].to_list() == [True, False, False], r\n"
        "v.close()",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    source, out = tmp_path / "verify.ipynb", tmp_path / "verify.out.ipynb"
    nbformat.write(nb, source)
    papermill.execute_notebook(
        str(source), str(out), kernel_name="python3", progress_bar=False, cwd=str(tmp_path)
    )
    executed = nbformat.read(out, as_version=4)
    assert not [o for c in executed.cells for o in c.get("outputs", []) if o.output_type == "error"]


def test_the_verifier_is_configured_from_the_run_config():
    """`[verify]` in TOML (or --set verify.*) reaches the Verifier a run builds; a bad value is
    refused by the config, before any worker starts."""
    from pcbench.config import ConfigError, from_dict

    cfg = from_dict({}, ["verify.timeout_s=25", "verify.workers=1", "verify.extraction=latex",
                         "verify.reward_wrong=-1"])  # fmt: skip
    with Verifier.from_config(cfg.verify) as v:
        assert (v.timeout_s, v._pool.size, v.extraction) == (25, 1, "latex")
        out = v.verify(["The answer is $\\frac{3}{4}$.", "It is $5$."], ["0.75", "6"])
        assert out["reward"].to_list() == [1.0, -1.0]
    for bad, message in (("verify.extraction=xml", "use one of"), ("verify.workers=0", "> 0"),
                         ("verify.max_error_rate=0", "(0, 1]")):  # fmt: skip
        with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("]", r"\]")):
            from_dict({}, [bad])
