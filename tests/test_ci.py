"""CI's own guards: missing shared data fails the run instead of skipping the tests that need it."""

import os
import subprocess
import sys

from conftest import ROOT


def test_required_shared_data_missing_fails_pytest(tmp_path):
    env = os.environ | {"PCBENCH_REQUIRE_SHARED": "1", "PCBENCH_SHARED_DATA": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_boxed.py"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode != 0
    assert "PCBENCH_REQUIRE_SHARED is set but the shared data is missing" in out.stderr + out.stdout
    # Without the switch the same run skips what needs the data and passes.
    env.pop("PCBENCH_REQUIRE_SHARED")
    assert subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "tests/test_boxed.py"], cwd=ROOT, env=env,
                          capture_output=True, timeout=120).returncode == 0  # fmt: skip


def test_ci_script_fails_on_a_clone_without_shared_data(tmp_path):
    env = os.environ | {"PCBENCH_SHARED_DATA": str(tmp_path / "nowhere")}
    out = subprocess.run(["bash", ROOT / ".ci" / "run"], env=env, capture_output=True, text=True,
                         timeout=60)  # fmt: skip
    assert out.returncode == 1
    assert "CI needs the shared data" in out.stderr
