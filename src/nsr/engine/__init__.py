"""Training engine: loop, checkpoints, schedules."""

from nsr.engine.trainer import StepMetrics, Trainer, TrainingError, render_view, resolve_device, split_views

__all__ = ["StepMetrics", "Trainer", "TrainingError", "render_view", "resolve_device", "split_views"]
