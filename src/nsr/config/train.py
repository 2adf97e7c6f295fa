"""The top-level training config: data, model, optimisation, run-time behaviour."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from nsr.cameras.refine import CameraRefineConfig
from nsr.models import IDRModelConfig, ModelConfig


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
class PocketFillConfig:
    """Fill hidden pockets of the SDF while training (see nsr.engine.pockets).

    Every `every` steps from `start` on, points are drawn in the bounding sphere and those that are
    positive, seen as empty by no training camera (depth maps of the model from the current poses) and
    enclosed by the surface are kept; until the next refresh, each step pushes `batch` of them to a
    negative SDF. Runs with trained cameras carve such pockets while the poses are still wrong."""

    every: int = 0
    """Steps between refreshes of the pocket points (0 = off)."""
    start: int = 0
    """First refresh at this step (after the poses have settled)."""
    samples: int = 1 << 20
    """Candidate points drawn in the bounding sphere at each refresh."""
    batch: int = 1024
    """Pocket points pushed per step."""
    weight: float = 10.0
    """Weight of the loss mean(relu(sdf(p) + s_p)), s_p: the point's SDF at the refresh."""
    tolerance: float = 0.01
    """A point counts as seen empty when it lies at most this much behind a camera's first surface
    (normalised units)."""
    max_side: int = 200
    """Long side of the depth maps, in pixels."""

    @property
    def enabled(self) -> bool:
        return self.every > 0 and self.weight > 0

    def refresh_due(self, step: int) -> bool:
        """Whether the pocket points are refreshed before training step `step` (0-based)."""
        return self.enabled and step >= self.start and (step - self.start) % self.every == 0


@dataclass
class TrainConfig:
    """A whole training run."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=IDRModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    cameras: CameraRefineConfig = field(default_factory=CameraRefineConfig)
    """Initial poses (ground truth, a noisy camera file or synthetic noise) and their refinement."""
    pockets: PocketFillConfig = field(default_factory=PocketFillConfig)
    """Filling hidden pockets during training (on in the `-cams` presets)."""
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
