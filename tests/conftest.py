import os
from pathlib import Path

import pytest

from pcbench import strategies

ROOT = Path(__file__).resolve().parents[1]
# The shared public benchmarks live beside the checkout; PCBENCH_SHARED_DATA points elsewhere.
SHARED = Path(os.environ.get("PCBENCH_SHARED_DATA", ROOT.parent / "shared" / "data"))
BENCHMARKS = SHARED / "benchmarks"
TINY_POLICY = ROOT / "data" / "tiny-policy"
ARITH = ROOT / "data" / "arith"

# The built-in strategies register their ledger columns on first use of the registry (a config
# does that); a test that builds ledgers by hand may come before any config.
strategies.names()

# vLLM in the test process, with a small explicit CPU KV cache (DESIGN §5).
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")


def pytest_configure(config):
    # CI sets PCBENCH_REQUIRE_SHARED=1: without the shared data the golden vectors and every
    # benchmark test would be skipped, and a green run would hide it.
    if os.environ.get("PCBENCH_REQUIRE_SHARED") and not (
        (SHARED / "golden").exists() and BENCHMARKS.exists()
    ):
        raise pytest.UsageError(
            f"PCBENCH_REQUIRE_SHARED is set but the shared data is missing at {SHARED} (golden "
            "vectors, benchmarks): put shared/ beside the checkout or set PCBENCH_SHARED_DATA"
        )


def pytest_collection_modifyitems(config, items):
    if not BENCHMARKS.exists():
        skip = pytest.mark.skip(reason=f"shared benchmarks not found at {BENCHMARKS}")
        for item in items:
            if "benchmarks" in item.fixturenames:
                item.add_marker(skip)


# The tests' run size: B 4 prompts from pools of G 12, a 16-prompt evaluation at k 2 (each test
# file adds its cadence: eval.every, checkpoints).
SMALL = ["batch_prompts=4", "pool_prompts=12", "eval.max_prompts=16", "eval.k=2"]


def small_config(config, name: str, steps: int, *more: str):
    """`config` (a path, or a name under configs/) at the tests' size, named and sized."""
    from pcbench.config import load_config

    path = config if Path(config).is_absolute() else ROOT / "configs" / config
    return load_config(path, [*SMALL, f"name={name}", f"steps={steps}", *more])


@pytest.fixture
def fresh(tiny_engine, verifier, tmp_path):
    """open_run(cfg) on the session engine, under tmp_path; the engine gets the shipped weights
    back afterwards (a test's training synced its own into it)."""
    from pcbench.policy import Policy
    from pcbench.run import open_run

    yield lambda cfg: open_run(cfg, tmp_path, verifier=verifier)
    tiny_engine.load_weights(Policy(TINY_POLICY))


@pytest.fixture(scope="session")
def benchmarks() -> Path:
    return BENCHMARKS


@pytest.fixture(scope="module")
def verifier():
    """A real math-verify worker pool for one test module (files may define their own)."""
    from pcbench.verify import Verifier

    with Verifier(workers=1) as v:
        yield v


@pytest.fixture(scope="session")
def tiny_engine():
    """One in-process vLLM engine on the shipped tiny policy for the whole session.

    Made through `make_engine`, so `pcbench.state.setup_state` with the embedded default's engine
    settings reuses it (vLLM allows one engine per process).
    """
    from pcbench.state import make_engine

    return make_engine(str(TINY_POLICY), tiny_engine_config(), seed=0)


def tiny_engine_config():
    """The embedded default's [engine] (configs/tiny-pc.toml): a test config that runs on the
    session engine must carry it, since vLLM allows one engine per process."""
    from pcbench.config import load_config

    return load_config(ROOT / "configs" / "tiny-pc.toml").engine
