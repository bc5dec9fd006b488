"""pcbench: budget-aware rollout allocation (Pilot-Commit) for group-based RL post-training."""

__version__ = "0.1.0"
