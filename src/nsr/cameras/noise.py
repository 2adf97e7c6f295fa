"""Camera pose perturbation: the `--pose-noise ROT_DEG,TRANS_FRAC[,SEED]` flag, parsed and applied in one place."""

from __future__ import annotations

import numpy as np


def parse_pose_noise(text: str) -> tuple[float, float, int]:
    """`"ROT_DEG,TRANS_FRAC[,SEED]"` -> (rot_deg, trans_frac, seed); the seed defaults to 0.

    Raises:
        ValueError: with the expected format, for anything else (negative values included).
    """
    parts = [part.strip() for part in str(text).split(",")]
    try:
        if len(parts) not in (2, 3):
            raise ValueError
        rot_deg, trans_frac = float(parts[0]), float(parts[1])
        seed = int(parts[2]) if len(parts) == 3 else 0
    except ValueError:
        raise ValueError(
            f"pose noise {text!r}: expected ROT_DEG,TRANS_FRAC[,SEED], e.g. 2,0.05 or 2,0.05,7"
        ) from None
    if not (np.isfinite(rot_deg) and np.isfinite(trans_frac)) or rot_deg < 0 or trans_frac < 0:
        raise ValueError(f"pose noise {text!r}: ROT_DEG and TRANS_FRAC must be finite and >= 0")
    return rot_deg, trans_frac, seed


def _axis_angle(axis: np.ndarray, angle: float) -> np.ndarray:
    """(3, 3) rotation by `angle` radians about the unit vector `axis` (Rodrigues)."""
    x, y, z = axis
    skew = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    return np.eye(3) + np.sin(angle) * skew + (1.0 - np.cos(angle)) * skew @ skew


def perturb_poses(
    c2w: np.ndarray, rot_deg: float, trans_frac: float, seed: int = 0, center: np.ndarray | None = None
) -> np.ndarray:
    """Perturbed camera-to-world poses, for noisy-camera experiments.

    Each camera is rotated by exactly `rot_deg` degrees about a uniformly random axis through its centre
    (R' = R_noise @ R), and its centre moves by exactly `trans_frac` x its distance to `center` (default:
    the origin, the middle of the normalised frame) in a uniformly random direction. Deterministic for a
    seed; independent draws per camera.

    Args:
        c2w: (N, 4, 4) or (N, 3, 4) camera-to-world poses.

    Returns:
        (N, 4, 4) float64 new poses (last row 0 0 0 1).
    """
    poses = np.asarray(c2w, dtype=np.float64)
    num = poses.shape[0]
    out = np.tile(np.eye(4), (num, 1, 1))
    out[:, :3, :4] = poses[:, :3, :4]
    centre = np.zeros(3) if center is None else np.asarray(center, dtype=np.float64)
    rng = np.random.default_rng(seed)
    axes = rng.normal(size=(num, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    shifts = rng.normal(size=(num, 3))
    shifts /= np.linalg.norm(shifts, axis=1, keepdims=True)
    angle = np.radians(rot_deg)
    for i in range(num):
        out[i, :3, :3] = _axis_angle(axes[i], angle) @ out[i, :3, :3]
        distance = np.linalg.norm(out[i, :3, 3] - centre)
        out[i, :3, 3] += trans_frac * distance * shifts[i]
    return out
