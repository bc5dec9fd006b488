"""Rollout engines: generate ROLLOUTS frames from request frames; sync weights from a Policy."""

from pcbench.engines.vllm_engine import RequestError, VLLMEngine, WeightSyncError

__all__ = ["RequestError", "VLLMEngine", "WeightSyncError"]
