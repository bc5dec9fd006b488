"""Rollout engines: generate ROLLOUTS frames from request frames; sync weights from a Policy."""

from pcbench.engines.hf_engine import HFEngine
from pcbench.engines.protocol import Engine
from pcbench.engines.requests import RequestError, validate_requests
from pcbench.engines.vllm_engine import VLLMEngine, WeightSyncError

__all__ = [
    "Engine",
    "HFEngine",
    "RequestError",
    "VLLMEngine",
    "WeightSyncError",
    "validate_requests",
]
