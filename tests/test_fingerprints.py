"""No behaviour change: every shipped config's first 5 steps make the same rollouts, scores,
ledger counts and weights as the fingerprints recorded from main before the strategy registry
(tests/fingerprints/, pcbench.testing; issue 32). A change meant to change behaviour records
them again (tests/fingerprints/record.py) and says so in its commit."""

import json
from pathlib import Path

import pytest

from pcbench.testing import STEPS, fingerprint, groups

from conftest import ROOT

HERE = Path(__file__).parent / "fingerprints"
RECORDED = sorted(HERE.glob("*.json"))


def test_every_shipped_config_has_a_recorded_fingerprint():
    covered = {name for path in RECORDED for name in json.loads(path.read_text())["configs"]}
    shipped = {p.stem for p in (ROOT / "configs").glob("*.toml")}
    assert shipped <= covered, (
        f"record them: python tests/fingerprints/record.py ({shipped - covered})"
    )


@pytest.mark.slow
@pytest.mark.parametrize("recorded", RECORDED, ids=[p.stem for p in RECORDED])
def test_the_first_steps_are_those_recorded_before_the_registry(
    recorded, tiny_engine, verifier, monkeypatch
):
    monkeypatch.chdir(ROOT)
    want = json.loads(recorded.read_text())
    [(cfg, names)] = groups([ROOT / "configs" / f"{want['configs'][0]}.toml"])
    got = fingerprint(cfg, STEPS, verifier=verifier)
    for a, b in zip(want["steps"], got["steps"], strict=True):
        assert a == b, f"{names[0]}: step {a['step']} differs"
    assert want["weights"] == got["weights"]
