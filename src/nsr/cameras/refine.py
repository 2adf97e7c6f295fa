"""Camera refinement: a learned pose correction per camera, and pose noise for experiments.

Parameterisation (docs/cameras.md): each camera i has a 6-vector `(omega_i, tau_i)`, zero at
initialisation. The refined camera-to-world transform is the initial one multiplied on the RIGHT by
a correction expressed in the camera's own frame (OpenCV axes): a rotation exp(omega_i) about the
pivot point p_i = (0, 0, d_i) on the optical axis, then a translation tau_i:

    c2w_i = c2w_init_i @ [[E_i, d_i (e_z - E_i e_z) + tau_i], [0, 0, 0, 1]],   E_i = exp(omega_i)
    R_i = R_init_i @ E_i
    c_i = c_init_i + R_init_i @ (d_i (e_z - E_i e_z) + tau_i)

With `pivot="scene"` (default) d_i is the depth of the scene centre (the normalised frame's origin)
in camera i, so a rotation orbits the camera around the object and keeps the object where it is in
the image, while tau moves the image: the two no longer compete for the same image motion, which a
rotation about the camera centre (`pivot="camera"`, d_i = 0) and a sideways translation do for a
distant object. `exp` is Rodrigues' formula: a zero vector gives the identity exactly and the camera
is unchanged bit for bit. Rotations are in radians, translations in the normalised frame's units.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


class CameraConfigError(ValueError):
    """A camera setting that cannot be used (reported to the user in one line)."""


class PoseNoiseError(CameraConfigError):
    """A pose-noise specification that cannot be parsed."""


@dataclass
class CameraRefineConfig:
    """Where the cameras come from and whether (and how fast) they are optimised."""

    trainable: bool = False
    """Optimise one pose correction per camera together with the surface."""
    lr: float = 1e-4
    """Adam learning rate of the pose corrections (radians and normalised-frame units per step; IDR: 1e-4)."""
    lr_milestones: tuple[float, ...] = ()
    """Fractions of the run at which the camera learning rate is multiplied by `lr_factor`."""
    lr_factor: float = 0.5
    """Decay factor of the camera learning rate at each milestone."""
    warmup_until: float = 0.0
    """Fraction of the run before the cameras move at full speed (the surface first settles on the
    initial poses)."""
    warmup: str = "linear"
    """`linear`: the camera learning rate ramps from 0 to `lr` until `warmup_until`; `frozen`: it is 0 until
    then."""
    pivot: str = "scene"
    """Rotation centre of the corrections: `scene` (the scene centre's depth on the optical axis) or
    `camera` (the camera centre); see nsr.cameras.refine."""
    fixed_views: tuple[int, ...] = ()
    """Views (indices in the scene's view order) whose pose is never changed, e.g. (0,) to fix the gauge."""
    init_file: str | None = None
    """Initial poses from this camera file (cameras.npz layout, relative to the scene folder or absolute),
    e.g. DTU's `cameras_linear_init.npz`; intrinsics still come from the scene's camera file."""
    pose_noise: str = ""
    """`ROT_DEG,TRANS_FRAC[,SEED]`: perturb the ground-truth poses (ignored when `init_file` is given).
    Each camera is rotated by exactly ROT_DEG degrees about a random axis through its centre, and its
    centre moves by TRANS_FRAC times its distance to the scene centre in a random direction. SEED: 0."""

    def validate(self) -> None:
        """Raise CameraConfigError for unusable values."""
        if self.warmup not in ("linear", "frozen"):
            raise CameraConfigError(f"cameras.warmup must be 'linear' or 'frozen', got {self.warmup!r}")
        if self.pivot not in ("scene", "camera"):
            raise CameraConfigError(f"cameras.pivot must be 'scene' or 'camera', got {self.pivot!r}")
        if self.lr < 0 or not 0 <= self.warmup_until <= 1:
            raise CameraConfigError(
                f"cameras.lr must not be negative and cameras.warmup_until must be a fraction of the run in [0, 1] "
                f"(got {self.lr}, {self.warmup_until})"
            )
        if self.pose_noise:
            PoseNoise.parse(self.pose_noise)

    def lr_factor_at(self, progress: float) -> float:
        """Multiplier of `lr` at a point of the run (`progress` in [0, 1]): warm-up times milestone decay."""
        warm = 1.0
        if self.warmup_until > 0 and progress < self.warmup_until:
            warm = 0.0 if self.warmup == "frozen" else progress / self.warmup_until
        return warm * self.lr_factor ** sum(1 for m in self.lr_milestones if progress >= m)

    def build(self, initial_c2w: np.ndarray | torch.Tensor) -> CameraRefinement:
        """The refinement module for (N, 4, 4) initial camera-to-world transforms."""
        return CameraRefinement(initial_c2w, self.fixed_views, pivot=self.pivot)


@dataclass(frozen=True)
class PoseNoise:
    """A parsed `ROT_DEG,TRANS_FRAC[,SEED]` specification."""

    rotation_deg: float
    translation_frac: float
    seed: int = 0

    @classmethod
    def parse(cls, text: str) -> PoseNoise:
        parts = [p.strip() for p in str(text).split(",")]
        usage = "expected ROT_DEG,TRANS_FRAC[,SEED], e.g. 3,0.03 or 3,0.03,7"
        if len(parts) not in (2, 3) or not all(parts):
            raise PoseNoiseError(f"pose noise {text!r}: {usage}")
        try:
            rot, frac = float(parts[0]), float(parts[1])
            seed = int(parts[2]) if len(parts) == 3 else 0
        except ValueError:
            raise PoseNoiseError(f"pose noise {text!r}: not numbers ({usage})") from None
        if not (math.isfinite(rot) and math.isfinite(frac)) or rot < 0 or frac < 0:
            raise PoseNoiseError(f"pose noise {text!r}: ROT_DEG and TRANS_FRAC must be finite and >= 0")
        if rot >= 180:
            raise PoseNoiseError(f"pose noise {text!r}: ROT_DEG must be below 180 degrees")
        return cls(rot, frac, seed)


def _unit_vectors(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.normal(size=(n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def axis_angle_matrix(axis: np.ndarray, angle: float) -> np.ndarray:
    """(3, 3) rotation by `angle` radians about the unit `axis` (right-handed)."""
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * (k @ k)


def perturb_poses(
    c2w: np.ndarray, noise: PoseNoise, centre: np.ndarray | tuple[float, float, float] = (0.0, 0.0, 0.0)
) -> np.ndarray:
    """Noisy copies of (N, 4, 4) camera-to-world transforms (seeded by `noise.seed`).

    Camera i gets R_i' = Q_i R_i with Q_i a rotation by exactly `rotation_deg` about a uniformly random
    axis (so the geodesic error of every camera is that angle; the centre stays put), then its centre
    moves by `translation_frac * |c_i - centre|` along a uniformly random direction.
    """
    c2w = np.asarray(c2w, dtype=np.float64)
    rng = np.random.default_rng(noise.seed)
    axes, directions = _unit_vectors(rng, len(c2w)), _unit_vectors(rng, len(c2w))
    out = c2w.copy()
    angle = math.radians(noise.rotation_deg)
    centre = np.asarray(centre, dtype=np.float64)
    for i in range(len(c2w)):
        out[i, :3, :3] = axis_angle_matrix(axes[i], angle) @ c2w[i, :3, :3]
        distance = np.linalg.norm(c2w[i, :3, 3] - centre)
        out[i, :3, 3] = c2w[i, :3, 3] + noise.translation_frac * distance * directions[i]
    return out


def so3_exp(omega: torch.Tensor) -> torch.Tensor:
    """Rodrigues: (N, 3) axis-angle vectors (radians) -> (N, 3, 3) rotations; exactly I at zero.

    The small-angle branch uses Taylor series of sin(t)/t and (1 - cos t)/t^2, so values and gradients
    are finite and exact to float precision at and near zero.
    """
    theta2 = (omega * omega).sum(-1)
    small = theta2 < 1e-6
    theta = torch.where(small, torch.ones_like(theta2), theta2).sqrt()
    a = torch.where(small, 1 - theta2 / 6 + theta2 * theta2 / 120, torch.sin(theta) / theta)
    b = torch.where(
        small, 0.5 - theta2 / 24 + theta2 * theta2 / 720, (1 - torch.cos(theta)) / (theta * theta)
    )
    zero = torch.zeros_like(omega[:, 0])
    x, y, z = omega.unbind(-1)
    k = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(-1, 3, 3)
    eye = torch.eye(3, dtype=omega.dtype, device=omega.device).expand_as(k)
    return eye + a[:, None, None] * k + b[:, None, None] * (k @ k)


class CameraRefinement(nn.Module):
    """One zero-initialised pose correction per camera (module docstring for the parameterisation).

    State: `correction` (N, 6) parameter = (omega, tau) per camera, `initial_c2w` (N, 4, 4) buffer
    (float64, the poses training started from), `pivot_depth` (N,) buffer (d_i) and `trainable_mask`
    (N,) buffer (0 for fixed views). Everything needed to reconstruct the cameras is in the state dict.
    """

    def __init__(
        self,
        initial_c2w: np.ndarray | torch.Tensor,
        fixed_views: tuple[int, ...] = (),
        pivot: str = "scene",
        scene_centre: tuple[float, float, float] = (0.0, 0.0, 0.0),
    ) -> None:
        super().__init__()
        initial = torch.as_tensor(np.asarray(initial_c2w), dtype=torch.float64)
        if initial.dim() != 3 or initial.shape[1:] != (4, 4):
            raise ValueError(f"initial_c2w must be (N, 4, 4), got {tuple(initial.shape)}")
        n = initial.shape[0]
        bad = [v for v in fixed_views if not 0 <= v < n]
        if bad:
            raise CameraConfigError(
                f"cameras.fixed_views {bad} out of range: the scene has {n} views (0..{n - 1})"
            )
        mask = torch.ones(n, dtype=torch.float32)
        mask[list(fixed_views)] = 0.0
        self.register_buffer("initial_c2w", initial)
        self.register_buffer("trainable_mask", mask)
        depth = torch.zeros(n, dtype=torch.float64)
        if pivot == "scene":
            offset = torch.tensor(scene_centre, dtype=torch.float64) - initial[:, :3, 3]
            depth = (offset * initial[:, :3, 2]).sum(-1)
        self.register_buffer("pivot_depth", depth)
        self.correction = nn.Parameter(torch.zeros(n, 6))

    @property
    def num_views(self) -> int:
        return int(self.initial_c2w.shape[0])

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor]) -> CameraRefinement:
        """Rebuild a module from its saved state dict (no config needed)."""
        module = cls(state["initial_c2w"].cpu())
        module.load_state_dict(state)
        return module

    def forward(self, views: torch.Tensor | None = None) -> torch.Tensor:
        """Refined camera-to-world transforms (dtype of `correction`), differentiable in `correction`.

        Args:
            views: (B,) long view indices; None for all N views.

        Returns:
            (B, 4, 4) (or (N, 4, 4)) camera-to-world transforms in the normalised frame.
        """
        dtype = self.correction.dtype
        correction = self.correction * self.trainable_mask.to(dtype)[:, None]
        initial, depth = self.initial_c2w.to(dtype), self.pivot_depth.to(dtype)
        if views is not None:
            correction, initial, depth = correction[views], initial[views], depth[views]
        return _apply(initial, correction, depth)

    def poses_with(self, view: int, corrections: torch.Tensor) -> torch.Tensor:
        """Camera `view` under other corrections: (K, 6) corrections (omega, tau) -> (K, 4, 4) camera-to-world
        transforms (dtype of `corrections`), e.g. candidate poses of a camera being re-localised. Fixed views
        are not masked here."""
        k, dtype = corrections.shape[0], corrections.dtype
        initial = self.initial_c2w[view].to(dtype).expand(k, 4, 4)
        return _apply(initial, corrections, self.pivot_depth[view].to(dtype).expand(k))

    @torch.no_grad()
    def poses(self) -> np.ndarray:
        """(N, 4, 4) float64 refined camera-to-world transforms (for evaluation and export)."""
        correction = (self.correction * self.trainable_mask[:, None]).double()
        return _apply(self.initial_c2w.double(), correction, self.pivot_depth.double()).cpu().numpy()


def _apply(initial: torch.Tensor, correction: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
    """(B, 4, 4) initial c2w, (B, 6) corrections, (B,) pivot depths -> (B, 4, 4) refined c2w."""
    rotation = so3_exp(correction[:, :3])
    r0 = initial[:, :3, :3]
    # Camera-frame offset of the centre: d (e_z - E e_z) + tau; exactly tau when E = I. e_z is made on the
    # device (a tensor from a list is a host copy, which a step captured as a CUDA graph cannot hold).
    e_z = torch.eye(3, dtype=rotation.dtype, device=rotation.device)[2]
    offset = depth[:, None] * (e_z - rotation[:, :, 2]) + correction[:, 3:]
    centre = initial[:, :3, 3] + (r0 @ offset[..., None])[..., 0]
    top = torch.cat([r0 @ rotation, centre[..., None]], dim=-1)
    return torch.cat([top, initial[:, 3:, :]], dim=1)
