"""Record the fingerprints of every shipped config's first 5 steps (pcbench.testing).

    python tests/fingerprints/record.py [CONFIG ...]   # default: every configs/*.toml

Run from the repository root. Configs that train identically for 5 steps (the GPU presets once
moved onto the embedded default: `testing.transplanted`) share one file,
tests/fingerprints/<first config>.json, which names them all. Recorded from main before the
strategy registry (issue 32; README.md here has the commit): re-record only for a change meant
to change behaviour, and say so in its commit.
"""

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")

from pcbench.testing import STEPS, fingerprint, groups  # noqa: E402
from pcbench.verify import Verifier  # noqa: E402

HERE = Path(__file__).parent


def main(paths: list[Path]) -> None:
    with Verifier(workers=1) as verifier:
        for cfg, names in groups(paths):
            start = time.perf_counter()
            out = {"configs": names, "steps": STEPS} | fingerprint(cfg, STEPS, verifier=verifier)
            (HERE / f"{names[0]}.json").write_text(json.dumps(out, indent=1) + "\n")
            print(f"{', '.join(names)}: {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main([Path(p) for p in sys.argv[1:]] or sorted(Path("configs").glob("*.toml")))
