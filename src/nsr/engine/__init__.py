"""Training engine: loop, checkpoints, schedules, run folders, divergence checks."""

from nsr.engine.errors import CheckpointError, RunError, TrainingError, TrainingInterrupted
from nsr.engine.trainer import StepMetrics, Trainer, render_view, resolve_device, split_views

__all__ = [
    "CheckpointError",
    "RunError",
    "StepMetrics",
    "Trainer",
    "TrainingError",
    "TrainingInterrupted",
    "render_view",
    "resolve_device",
    "split_views",
]
