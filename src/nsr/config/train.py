"""The top-level training config: data, model, optimisation, run-time behaviour."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from nsr.cameras.refine import CameraRefineConfig
from nsr.models import IDRModelConfig


@dataclass
class DataConfig:
    """Where the scene is and how it is read."""

    path: Path | None = None
    """Scene folder (IDR/DTU/NeuS, NeRF-synthetic or COLMAP layout)."""
    downscale: float = 1.0
    """Divide the image size by this factor (intrinsics follow)."""
    camera_file: str | None = None
    """Camera file inside the scene folder (default: cameras.npz, then cameras_sphere.npz)."""
    holdout_every: int = 0
    """Hold out every k-th view for evaluation (0 = train on all views)."""
    format: Literal["auto", "idr", "nerf-synthetic", "colmap"] = "auto"
    """Scene format: `auto` detects it (transforms*.json -> nerf-synthetic, a sparse model -> colmap,
    image/ + cameras npz -> idr); see docs/data.md."""


@dataclass
class OptimConfig:
    """Adam with step-wise learning-rate decay."""

    lr: float = 1e-4
    """Learning rate of the networks' parameters."""
    encoding_lr: float = 0.0
    """Learning rate of grid tables (hash-grid entries, also inside filter banks); 0 = `lr`."""
    lr_milestones: tuple[int, ...] = (100000, 150000)
    """Steps at which the learning rate is multiplied by `lr_factor`."""
    lr_factor: float = 0.5
    """Decay factor at each milestone."""
    grad_clip: float = 0.0
    """Clip the global gradient norm to this value (0 = off)."""


@dataclass
class TrainConfig:
    """A whole training run."""

    data: DataConfig = field(default_factory=DataConfig)
    model: IDRModelConfig = field(default_factory=IDRModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    cameras: CameraRefineConfig = field(default_factory=CameraRefineConfig)
    """Initial poses (ground truth, a noisy camera file or synthetic noise) and their refinement."""
    steps: int = 200000
    """Number of optimisation steps."""
    rays_per_batch: int = 2048
    """Rays (pixels) per step, drawn uniformly from all training views."""
    seed: int = 0
    """Seed of every random number generator."""
    device: str = "auto"
    """`auto` (CUDA when present), `cpu`, `cuda`, `cuda:1`, ..."""
    checkpoint_every: int = 1000
    """Write a checkpoint every N steps (and always at the end)."""
    val_every: int = 1000
    """Render a validation view (colour + normals PNG) every N steps (0 = never)."""
    log_every: int = 25
    """Write TensorBoard scalars every N steps."""
    tensorboard: bool = True
    """Log scalars to RUN/tensorboard (needs the tensorboard package)."""
    max_seconds: float = 0.0
    """Stop after this much training time, in seconds (0 = no limit). Validation and I/O are not counted."""
    snapshot_seconds: tuple[float, ...] = ()
    """Also save checkpoints `snapshot_<s>s.pt` when the training time passes each of these budgets."""
