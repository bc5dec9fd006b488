"""`setup()`: the first cell of every notebook, one call instead of a copied bootstrap.

It finds the repository root (the folder with pyproject.toml above the working directory),
changes into it (configs name their files relative to it), and points vLLM at this kernel
(no engine subprocess, so a weight sync reaches the engine in-process; a small KV cache on CPU)
unless the environment already says otherwise. It imports no engine: call it before anything
that loads vLLM.
"""

from __future__ import annotations

import os
from pathlib import Path

VLLM_DEFAULTS = {
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",  # the engine lives in this kernel
    "VLLM_CPU_KVCACHE_SPACE": "1",  # GiB of KV cache on CPU; ignored on a GPU
}


def setup(start: str | Path | None = None) -> Path:
    """chdir to the repository root above `start` (default: the working directory), set the
    vLLM defaults the environment leaves unset, and return the root."""
    here = Path(start or Path.cwd()).resolve()
    root = next((p for p in [here, *here.parents] if (p / "pyproject.toml").exists()), None)
    if root is None:
        raise FileNotFoundError(
            f"no pyproject.toml in {here} or above: start the notebook inside the pcbench "
            "checkout (configs and data paths are relative to its root)"
        )
    os.chdir(root)
    for name, value in VLLM_DEFAULTS.items():
        os.environ.setdefault(name, value)
    return root
