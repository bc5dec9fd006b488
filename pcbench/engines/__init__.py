"""Rollout engines: generate ROLLOUTS frames from request frames; sync weights from a Policy.

The engines import torch (and vLLM), so they load on first use: the protocol and the request
checks, which the state and the steps need, stay light."""

from pcbench.engines.protocol import Engine
from pcbench.engines.requests import RequestError, validate_requests

__all__ = [
    "Engine",
    "HFEngine",
    "RequestError",
    "VLLMEngine",
    "WeightSyncError",
    "validate_requests",
]
LAZY = {
    "HFEngine": "pcbench.engines.hf_engine",
    "VLLMEngine": "pcbench.engines.vllm_engine",
    "WeightSyncError": "pcbench.engines.vllm_engine",
}


def __getattr__(name: str):
    if name in LAZY:
        import importlib

        return getattr(importlib.import_module(LAZY[name]), name)
    raise AttributeError(f"module 'pcbench.engines' has no attribute {name!r}")
